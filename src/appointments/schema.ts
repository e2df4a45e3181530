// Wire shapes of appointments (blueprint 1.4: AppointmentCreate, Appointment, the list query).
import { Type, type Static, type TSchema } from 'typebox';
import { PageQuery, paginated, PathId } from '../http/pagination.js';
import { StringEnum } from '../http/validation.js';
import { APPOINTMENT_STATUSES } from './rules.js';

/** OpenAPI 3.0's `nullable: true` (Ajv and fast-json-stringify both understand it). */
function nullable<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

const Uuid = Type.String({ format: 'uuid' });
const Instant = (description: string) =>
  Type.String({ format: 'date-time', maxLength: 40, description, examples: ['2027-03-14T10:00:00-04:00'] });
// Free text a clinic types; control characters other than newlines and tabs are refused.
const Notes = Type.String({ maxLength: 2000, pattern: '^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$' });
const Room = Type.String({
  minLength: 1,
  maxLength: 50,
  pattern: '^[^\\u0000-\\u001f\\u007f<>]+$',
  description: 'A room name; compared case-insensitively. Two appointments can\'t share a room at once.',
  examples: ['Laser 1'],
});

export const AppointmentStatus = StringEnum(APPOINTMENT_STATUSES, {
  description: 'SCHEDULED, CONFIRMED, COMPLETED, CANCELLED, or NO_SHOW (patient did not come)',
});

export const AppointmentCreate = Type.Object(
  {
    patientId: Uuid,
    practitionerId: Type.String({ format: 'uuid', description: 'A user of the practice with the PRACTITIONER role' }),
    serviceId: Uuid,
    startTime: Instant('ISO 8601 with an offset (Z or ±hh:mm)'),
    endTime: Type.Optional(Instant('Defaults to startTime plus the service duration')),
    room: Type.Optional(nullable(Room)),
    notes: Type.Optional(nullable(Notes)),
  },
  { additionalProperties: false },
);
export type AppointmentCreate = Static<typeof AppointmentCreate>;

export const AppointmentUpdate = Type.Object(
  {
    status: Type.Optional(AppointmentStatus),
    cancellationReason: Type.Optional(
      Type.String({ minLength: 1, maxLength: 500, description: 'Required when status is CANCELLED' }),
    ),
    startTime: Type.Optional(Instant('New start (reschedule); the length is kept unless endTime is given')),
    endTime: Type.Optional(Instant('New end (reschedule)')),
    practitionerId: Type.Optional(Uuid),
    room: Type.Optional(nullable(Room)),
    notes: Type.Optional(nullable(Notes)),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type AppointmentUpdate = Static<typeof AppointmentUpdate>;

const NullableString = Type.Unsafe<string | null>({ type: 'string', nullable: true });
const NullableInstant = Type.Unsafe<string | null>({ type: 'string', format: 'date-time', nullable: true });

export const Appointment = Type.Object(
  {
    id: Uuid,
    patientId: Uuid,
    practitionerId: Uuid,
    serviceId: Uuid,
    startTime: Type.String({ format: 'date-time' }),
    endTime: Type.String({ format: 'date-time' }),
    room: NullableString,
    notes: NullableString,
    status: AppointmentStatus,
    priceCents: Type.Integer({ description: "The service's price when booked" }),
    cancellationReason: NullableString,
    cancelledAt: NullableInstant,
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type Appointment = Static<typeof Appointment>;

export const AppointmentListQuery = Type.Object(
  {
    startDate: Type.Optional(
      Type.String({ format: 'date', description: "First calendar day, in the practice's time zone (inclusive)" }),
    ),
    endDate: Type.Optional(
      Type.String({ format: 'date', description: "Last calendar day, in the practice's time zone (inclusive)" }),
    ),
    status: Type.Optional(AppointmentStatus),
    practitionerId: Type.Optional(Uuid),
    patientId: Type.Optional(Uuid),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type AppointmentListQuery = Static<typeof AppointmentListQuery>;

export const AppointmentList = paginated(Appointment);

export const AppointmentIdParams = Type.Object({ appointmentId: PathId() });
