// The v1 wire shapes of a patient (blueprint 1.3) and their mapping to the stored model.
// v1 carries the phone as `phoneNumber`; v2 carries `contact.phone` from the same stored field,
// in schema.v2.ts beside this file: no version checks inside handlers.
import { Type, type Static, type TSchema } from 'typebox';
import { PathId } from '../http/pagination.js';
import { StringEnum } from '../http/validation.js';
import { PATIENT_STATUSES, type PatientRecord, type PatientShapes, type PatientWrite } from './model.js';

/** `type: [T, "null"]` rather than anyOf: Ajv then never coerces "" to null behind the client's back. */
export function nullable<T extends TSchema & { type: string }>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, type: [schema.type, 'null'] });
}

export const NAME_MAX = 100;
export const NOTES_MAX = 10_000;
export const IMPORT_MAX_ROWS = 10_000;

// Any script's letters and combining marks, apostrophes (straight and curly), hyphens, spaces.
// Everything else (digits, <, >, ;, quotes other than apostrophes, control characters) is refused.
const NAME_PATTERN = "^[\\p{L}\\p{M}'\u2019\\- ]+$";

// No `examples` here: OpenAPI linters check examples with regular expressions that lack the
// Unicode flag, so a correct example would be reported as not matching \p{L}.
const Name = (description: string) =>
  Type.String({ minLength: 1, maxLength: NAME_MAX, pattern: NAME_PATTERN, description: `${description} (e.g. O'Brien, Zoë, María-José)` });

export const PatientStatusV1 = StringEnum(PATIENT_STATUSES, {
  description: 'ACTIVE (default), VIP, or INACTIVE (set by DELETE)',
});

export const AddressV1 = Type.Object(
  {
    line1: Type.Optional(Type.String({ maxLength: 200 })),
    line2: Type.Optional(Type.String({ maxLength: 200 })),
    city: Type.Optional(Type.String({ maxLength: 100 })),
    state: Type.Optional(Type.String({ maxLength: 100 })),
    postalCode: Type.Optional(Type.String({ maxLength: 20 })),
    country: Type.Optional(
      Type.String({ pattern: '^[A-Za-z]{2}$', description: 'ISO 3166-1 alpha-2 code, e.g. US' }),
    ),
  },
  { additionalProperties: false },
);

const ExternalIdsV1 = Type.Unsafe<Record<string, string>>({
  type: 'object',
  description: 'Identifiers in other systems by system name, e.g. {"alle": "A12345", "aspire": "77-001"}',
  patternProperties: { '^[A-Za-z0-9_.:-]{1,64}$': { type: 'string', minLength: 1, maxLength: 200 } },
  additionalProperties: false,
  maxProperties: 20,
});

export const Email = Type.String({ format: 'email', maxLength: 254, description: 'Stored lower case' });
export const Phone = Type.String({
  maxLength: 40,
  description: 'Any common notation; stored in E.164. Without +, read as a number of address.country (default US).',
  examples: ['+12125550123'],
});
const DateOfBirth = Type.String({ format: 'date', description: 'YYYY-MM-DD, 1900-01-01 to today' });
const Gender = Type.String({ maxLength: 50 });
const Notes = Type.String({ maxLength: NOTES_MAX });

const createProperties = {
  firstName: Name('Given name'),
  lastName: Name('Family name'),
  dateOfBirth: Type.Optional(nullable(DateOfBirth)),
  email: Type.Optional(nullable(Email)),
  phoneNumber: Type.Optional(nullable(Phone)),
  gender: Type.Optional(nullable(Gender)),
  address: Type.Optional(nullable(AddressV1)),
  status: Type.Optional(PatientStatusV1),
  notes: Type.Optional(nullable(Notes)),
  externalIds: Type.Optional(ExternalIdsV1),
};

export const PatientCreateV1 = Type.Object(createProperties, { additionalProperties: false });
export type PatientCreateV1 = Static<typeof PatientCreateV1>;

export const PatientUpdateV1 = Type.Object(
  {
    ...createProperties,
    firstName: Type.Optional(Name('Given name')),
    lastName: Type.Optional(Name('Family name')),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type PatientUpdateV1 = Static<typeof PatientUpdateV1>;

const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] });

export const PatientV1 = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    firstName: Type.String(),
    lastName: Type.String(),
    dateOfBirth: Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'date' }),
    email: NullableString,
    phoneNumber: NullableString,
    gender: NullableString,
    address: nullable(AddressV1),
    status: PatientStatusV1,
    notes: NullableString,
    externalIds: Type.Record(Type.String(), Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    deletedAt: Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type PatientV1 = Static<typeof PatientV1>;

export const PaginationV1 = Type.Object(
  {
    page: Type.Integer(),
    limit: Type.Integer(),
    total: Type.Integer(),
    totalPages: Type.Integer(),
  },
  { additionalProperties: false },
);

export const PATIENT_SORTS = ['lastName', '-lastName', 'createdAt', '-createdAt'] as const;
export type PatientSort = (typeof PATIENT_SORTS)[number];

export const PatientListQueryV1 = Type.Object(
  {
    page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    status: Type.Optional(PatientStatusV1),
    q: Type.Optional(
      Type.String({ minLength: 1, maxLength: 100, description: 'Matches part of the name, email or phone number (3 characters or more; 1-2 characters match the start of a name word or email part)' }),
    ),
    sort: StringEnum(PATIENT_SORTS, {
      default: 'lastName',
      description: 'lastName (then firstName) or createdAt; "-" for descending. Ties break on id: the order is stable.',
    }),
  },
  { additionalProperties: false },
);
export type PatientListQueryV1 = Static<typeof PatientListQueryV1>;

export const PatientListV1 = Type.Object({ data: Type.Array(PatientV1), pagination: PaginationV1 });

export const PatientIdParams = Type.Object(
  // Any string up to a sane length: a malformed id is a 404 like any other unknown id, not a 400.
  { patientId: PathId() },
  { additionalProperties: false },
);

export const IMPORT_MODES = ['atomic', 'partial'] as const;
export type ImportMode = (typeof IMPORT_MODES)[number];

export const PatientImportV1 = Type.Object(
  {
    mode: StringEnum(IMPORT_MODES, {
      default: 'atomic',
      description: 'atomic: every row or none is created. partial: valid rows are created, the rest reported.',
    }),
    // Rows are validated one by one in the handler (against PatientCreate), so that one bad row is
    // reported by its index instead of failing the whole body with a generic 400.
    patients: Type.Array(Type.Unknown({ description: 'A PatientCreate object' }), {
      minItems: 1,
      maxItems: IMPORT_MAX_ROWS,
      description: 'PatientCreate objects',
    }),
  },
  { additionalProperties: false },
);
export type PatientImportV1 = Static<typeof PatientImportV1>;

const ErrorDetailV1 = Type.Object({ field: Type.String(), message: Type.String() });

export const ImportRowResultV1 = Type.Object({
  row: Type.Integer({ description: 'Index of the row in `patients`, from 0' }),
  status: StringEnum(['created', 'failed', 'skipped'] as const),
  id: Type.Optional(Type.String({ format: 'uuid' })),
  existingPatientId: Type.Optional(Type.String({ format: 'uuid' })),
  errors: Type.Optional(Type.Array(ErrorDetailV1)),
});

export const PatientImportResultV1 = Type.Object({
  mode: StringEnum(IMPORT_MODES),
  total: Type.Integer(),
  created: Type.Integer(),
  failed: Type.Integer(),
  results: Type.Array(ImportRowResultV1),
});
export type PatientImportResultV1 = Static<typeof PatientImportResultV1>;

/** The stored model as v1 shows it. */
export function toPatientV1(record: PatientRecord): PatientV1 {
  return {
    id: record.id,
    firstName: record.firstName,
    lastName: record.lastName,
    dateOfBirth: record.dateOfBirth,
    email: record.email,
    phoneNumber: record.phoneNumber,
    gender: record.gender,
    address: record.address,
    status: record.status,
    notes: record.notes,
    externalIds: record.externalIds,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    deletedAt: record.deletedAt,
  };
}

/** A v1 create or update body as model input: the names coincide in v1 (v2 maps contact.phone). */
export function fromPatientWriteV1(body: PatientCreateV1 | PatientUpdateV1): PatientWrite {
  return { input: { ...body }, names: {}, errors: [] };
}

export const patientShapesV1: PatientShapes = {
  Patient: PatientV1,
  PatientList: PatientListV1,
  PatientCreate: PatientCreateV1,
  PatientUpdate: PatientUpdateV1,
  toPatient: toPatientV1,
  fromWrite: (body) => fromPatientWriteV1(body as PatientCreateV1 | PatientUpdateV1),
};
