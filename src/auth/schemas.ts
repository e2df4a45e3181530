import { Type } from 'typebox';
import { PASSWORD_MAX_LENGTH } from './passwords.js';

const Email = Type.String({ format: 'email', maxLength: 254 });

export const LoginBody = Type.Object(
  {
    email: Email,
    // Blueprint: minLength 8, a 400 like any limit of the contract. Counted by the login handler
    // after Unicode normalisation, as the password policy counts ("ﬃ" is three characters there),
    // so a password the policy accepted is never refused here as too short.
    password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH * 4, description: 'At least 8 characters (after Unicode NFKC normalisation)' }),
    mfaToken: Type.Optional(Type.String({ maxLength: 32, description: 'TOTP code, or a recovery code, when MFA is enabled' })),
  },
  { additionalProperties: false },
);

export const TokenResponse = Type.Object({
  accessToken: Type.String(),
  refreshToken: Type.String(),
  expiresIn: Type.Integer({ description: 'Access token lifetime in seconds' }),
  user: Type.Ref('User'),
});

export const RefreshBody = Type.Object({ refreshToken: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false });

export const LogoutBody = Type.Object(
  { refreshToken: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })) },
  { additionalProperties: false },
);

const CurrentPassword = (description: string) => Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH * 4, description });

export const MfaSetupBody = Type.Object(
  {
    password: CurrentPassword('The current password: a stolen access token alone must not be able to enrol its own authenticator'),
    algorithm: Type.Optional(
      Type.Union([Type.Literal('SHA256'), Type.Literal('SHA1')], {
        description: 'SHA256 (blueprint default); SHA1 for authenticator apps that ignore the algorithm parameter',
      }),
    ),
  },
  { additionalProperties: false },
);

export const MfaSetupResponse = Type.Object({
  secret: Type.String({ description: 'Base32 secret, for manual entry' }),
  otpauthUri: Type.String(),
  algorithm: Type.String(),
  digits: Type.Integer(),
  period: Type.Integer(),
});

const MfaCode = (description: string) => Type.String({ minLength: 1, maxLength: 32, description });

export const MfaTokenBody = Type.Object(
  { token: MfaCode('A current code from the authenticator app') },
  { additionalProperties: false },
);

export const MfaDisableBody = Type.Object(
  {
    password: CurrentPassword('The current password: a stolen access token alone must not be able to turn MFA off'),
    token: MfaCode('A current TOTP code, or a recovery code'),
  },
  { additionalProperties: false },
);

export const MfaVerifyResponse = Type.Object({
  mfaEnabled: Type.Literal(true),
  recoveryCodes: Type.Array(Type.String(), { description: 'Single-use; shown only now' }),
});

export const PasswordChangeBody = Type.Object(
  {
    currentPassword: CurrentPassword('The current password'),
    newPassword: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH * 4 }),
  },
  { additionalProperties: false },
);
