// The v2 (beta) wire shape of a patient, mapped from the same stored model as v1 (blueprint 5.2):
// contact details are grouped under `contact`; v1's `phoneNumber` is still sent, marked
// deprecated (deprecated in v2.0.0, alternative v2.patients.contact.phone, removal in v3.0.0):
// fields are never removed within a major version, only deprecated.
import { Type, type Static } from 'typebox';
import type { PatientRecord } from './model.js';
import { PaginationV1, PatientV1, toPatientV1 } from './schema.v1.js';

const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] });

export const PatientV2 = Type.Object(
  {
    ...PatientV1.properties,
    phoneNumber: Type.Unsafe<string | null>({
      type: ['string', 'null'],
      deprecated: true,
      description: 'Deprecated in v2.0.0: use contact.phone. Removed in v3.0.0.',
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

export function toPatientV2(record: PatientRecord): PatientV2 {
  return { ...toPatientV1(record), contact: { phone: record.phoneNumber, email: record.email } };
}
