// Wire shapes of the services catalog: what a practice sells and books (a filler, a laser
// session, a facial), each with a duration (the default length of its appointments) and a price.
import { Type, type Static } from 'typebox';
import { PageQuery, paginated, PathId } from '../http/pagination.js';

// Letters, digits, spaces and the punctuation service names use ("Botox® – 20 units", "IPL (face)").
// Control characters and angle brackets are refused, so a name is never markup.
const LABEL_PATTERN = '^[^\\u0000-\\u001f\\u007f<>]+$';

const Name = Type.String({ minLength: 1, maxLength: 200, pattern: LABEL_PATTERN, examples: ['HydraFacial'] });
const categoryOptions = { minLength: 1, maxLength: 100, pattern: LABEL_PATTERN, examples: ['Facials'] };
const Category = Type.String(categoryOptions);
const DurationMinutes = Type.Integer({ minimum: 1, maximum: 720, description: 'Default appointment length', examples: [60] });
const PriceCents = Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'Price in cents (USD)', examples: [19900] });

export const ServiceCreate = Type.Object(
  {
    name: Name,
    category: Type.Optional(Type.String({ ...categoryOptions, description: 'Defaults to "General"' })),
    durationMinutes: DurationMinutes,
    priceCents: PriceCents,
    active: Type.Optional(Type.Boolean({ default: true, description: 'Inactive services stay on record but cannot be booked' })),
  },
  { additionalProperties: false },
);
export type ServiceCreate = Static<typeof ServiceCreate>;

export const ServiceUpdate = Type.Object(
  {
    name: Type.Optional(Name),
    category: Type.Optional(Category),
    durationMinutes: Type.Optional(DurationMinutes),
    priceCents: Type.Optional(PriceCents),
    active: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type ServiceUpdate = Static<typeof ServiceUpdate>;

export const Service = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.String(),
    category: Type.String(),
    durationMinutes: Type.Integer(),
    priceCents: Type.Integer(),
    active: Type.Boolean(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type Service = Static<typeof Service>;

export const ServiceListQuery = Type.Object(
  {
    ...PageQuery,
    active: Type.Optional(Type.Boolean({ description: 'Only active (true) or only inactive (false) services' })),
    category: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  { additionalProperties: false },
);
export type ServiceListQuery = Static<typeof ServiceListQuery>;

export const ServiceList = paginated(Service);

export const ServiceIdParams = Type.Object({ serviceId: PathId() });
