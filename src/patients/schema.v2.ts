// The v2 (beta) wire shapes of a patient, mapped from the same stored model as v1 (blueprint 5.2):
// contact details are grouped under `contact`; v1's `phoneNumber` is still accepted and sent,
// marked deprecated (deprecated in v2.0.0, alternative v2.patients.contact.phone, removal in
// v3.0.0): fields are never removed within a major version, only deprecated.
import { Type, type Static } from 'typebox';
import type { ErrorDetail } from '../http/errors.js';
import {
  normaliseEmail,
  normalisePhone,
  phoneCountryFor,
  type Address,
  type PatientInput,
  type PatientRecord,
  type PatientShapes,
  type PatientWrite,
} from './model.js';
import {
  Email,
  nullable,
  PaginationV1,
  PatientCreateV1,
  PatientUpdateV1,
  PatientV1,
  Phone,
  toPatientV1,
} from './schema.v1.js';

const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] });

const PHONE_NUMBER_DEPRECATION = 'Deprecated in v2.0.0: use contact.phone. Removed in v3.0.0.';

export const PatientV2 = Type.Object(
  {
    ...PatientV1.properties,
    phoneNumber: Type.Unsafe<string | null>({
      type: ['string', 'null'],
      deprecated: true,
      description: PHONE_NUMBER_DEPRECATION,
    }),
    contact: Type.Object(
      {
        phone: NullableString,
        email: NullableString,
      },
      { additionalProperties: false, description: 'How to reach the patient (phone in E.164)' },
    ),
  },
  { additionalProperties: false },
);
export type PatientV2 = Static<typeof PatientV2>;

export const PatientListV2 = Type.Object({ data: Type.Array(PatientV2), pagination: PaginationV1 });

// What a client writes: the same contact object it reads. `null` clears a value, as at the top level.
const ContactWriteV2 = Type.Object(
  {
    phone: Type.Optional(nullable(Phone)),
    email: Type.Optional(nullable(Email)),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'The same as phoneNumber and email; sending both forms with different values is a 400',
  },
);

const DeprecatedPhoneNumber = Type.Optional(
  Type.Unsafe<string | null>({ ...nullable(Phone), deprecated: true, description: PHONE_NUMBER_DEPRECATION }),
);

export const PatientCreateV2 = Type.Object(
  { ...PatientCreateV1.properties, phoneNumber: DeprecatedPhoneNumber, contact: Type.Optional(ContactWriteV2) },
  { additionalProperties: false },
);
export type PatientCreateV2 = Static<typeof PatientCreateV2>;

export const PatientUpdateV2 = Type.Object(
  { ...PatientUpdateV1.properties, phoneNumber: DeprecatedPhoneNumber, contact: Type.Optional(ContactWriteV2) },
  { additionalProperties: false, minProperties: 1 },
);
export type PatientUpdateV2 = Static<typeof PatientUpdateV2>;

export function toPatientV2(record: PatientRecord): PatientV2 {
  return { ...toPatientV1(record), contact: { phone: record.phoneNumber, email: record.email } };
}

/** Each contact field and the model field (and v1 name) it is another name for. */
const CONTACT_ALIASES = [
  { contact: 'phone', field: 'phoneNumber' },
  { contact: 'email', field: 'email' },
] as const;

/** Whether two spellings of a phone number or an email are the same value once stored. */
function sameValue(field: 'phoneNumber' | 'email', a: string | null, b: string | null, address: Address | null | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  const stored = (value: string) => {
    const result = field === 'phoneNumber' ? normalisePhone(value.trim(), phoneCountryFor(address)) : normaliseEmail(value);
    return 'value' in result ? result.value : null;
  };
  const first = stored(a);
  return first !== null && first === stored(b);
}

/**
 * A v2 create or update body as model input: `contact.phone` is the stored phoneNumber and
 * `contact.email` the stored email. The deprecated top-level names still work; both forms at once
 * must agree (the same number in another notation does), otherwise the body is refused naming both.
 */
export function fromPatientWriteV2(body: PatientCreateV2 | PatientUpdateV2, prefix = ''): PatientWrite {
  const { contact, ...rest } = body;
  const input: PatientInput = { ...rest };
  const names: PatientWrite['names'] = {};
  const errors: ErrorDetail[] = [];
  for (const alias of CONTACT_ALIASES) {
    const value = contact?.[alias.contact];
    if (value === undefined) continue;
    const other = input[alias.field];
    const wireName = `contact.${alias.contact}`;
    if (other !== undefined && !sameValue(alias.field, other, value, input.address)) {
      const message = (name: string) => `differs from ${name}: send one of them, or both with the same value`;
      errors.push({ field: `${prefix}${wireName}`, message: message(alias.field) }, { field: `${prefix}${alias.field}`, message: message(wireName) });
      continue;
    }
    input[alias.field] = value;
    names[alias.field] = wireName;
  }
  return { input, names, errors };
}

export const patientShapesV2: PatientShapes = {
  Patient: PatientV2,
  PatientList: PatientListV2,
  PatientCreate: PatientCreateV2,
  PatientUpdate: PatientUpdateV2,
  toPatient: toPatientV2,
  fromWrite: (body, prefix) => fromPatientWriteV2(body as PatientCreateV2 | PatientUpdateV2, prefix),
};
