// The User resource (blueprint's components.schemas.User) and its mapping from the users table.
// Identity belongs to auth/: login returns a User, and the users feature manages them.
import { Type, type Static } from 'typebox';
import { ROLES, type Role } from './rbac.js';

export const RoleSchema = Type.Union(
  [Type.Literal('ADMIN'), Type.Literal('PRACTITIONER'), Type.Literal('STAFF'), Type.Literal('MANAGER')],
  { description: 'Blueprint 2.2 roles' },
);
// The schema above must list exactly the roles of the matrix.
const _sameRoles: (typeof ROLES)[number] extends Static<typeof RoleSchema> ? true : never = true;
void _sameRoles;

export const User = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.String({ format: 'email' }),
    role: RoleSchema,
    firstName: Type.String(),
    lastName: Type.String(),
    practiceId: Type.String({ format: 'uuid' }),
    active: Type.Boolean(),
    mfaEnabled: Type.Boolean(),
    lastLoginAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'User', additionalProperties: false },
);
export type User = Static<typeof User>;

export const USER_COLUMNS = `id, practice_id, email, role, first_name, last_name, active, mfa_enabled,
  last_login_at, created_at, updated_at`;

export interface UserRow {
  id: string;
  practice_id: string;
  email: string;
  role: Role;
  first_name: string;
  last_name: string;
  active: boolean;
  mfa_enabled: boolean;
  last_login_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export function toUser(row: UserRow): User {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    firstName: row.first_name,
    lastName: row.last_name,
    practiceId: row.practice_id,
    active: row.active,
    mfaEnabled: row.mfa_enabled,
    lastLoginAt: row.last_login_at ? row.last_login_at.toISOString() : null,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** Emails are compared and stored lower-case and trimmed. */
export const normaliseEmail = (email: string) => email.trim().toLowerCase();
