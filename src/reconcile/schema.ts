// Request and response schemas of /v1/ai/reconcile (blueprint 1.5). ReconciliationMatch is a
// named schema ($id) added with app.addSchema, so it appears in the OpenAPI components.schemas
// and the response refers to it, as the blueprint's `$ref: '#/components/schemas/ReconciliationMatch'`.
import { Type, type Static } from 'typebox';
import { PathId } from '../http/pagination.js';
import { StringEnum } from '../http/validation.js';
import type { Algorithm, ReconciliationMatch as EngineMatch } from './engine/engine.js';

export const ALGORITHMS = ['FUZZY_MATCH', 'ML_MODEL', 'HYBRID'] as const satisfies readonly Algorithm[];
export const TARGETS = ['PATIENTS', 'APPOINTMENTS'] as const;
export const MAX_RECORDS = 10_000;

export const ReconciliationMatch = Type.Object(
  {
    recordIndex: Type.Integer({ minimum: 0, description: 'Position of the input record in `data`.' }),
    entityType: StringEnum(['PATIENT', 'APPOINTMENT'], { description: 'PATIENT for target PATIENTS, APPOINTMENT for APPOINTMENTS.' }),
    entityId: Type.String({ description: "Id of the practice's patient or appointment the record matches." }),
    confidence: Type.Number({
      minimum: 0,
      maximum: 1,
      description: 'Calibrated probability that the match is right (among matches at >= c, at least c are right).',
    }),
    fieldScores: Type.Object(
      {},
      {
        additionalProperties: Type.Number({ minimum: 0, maximum: 1 }),
        description: 'Agreement per compared field, 0 (disagrees) to 1 (identical); fields missing on either side are absent.',
        examples: [{ firstName: 0.93, lastName: 1, dateOfBirth: 1, phone: 1 }],
      },
    ),
    candidates: Type.Array(
      Type.Object({ entityId: Type.String(), confidence: Type.Number({ minimum: 0, maximum: 1 }) }),
      { maxItems: 3, description: 'Up to 3 runner-up practice records with their confidences, best first.' },
    ),
  },
  {
    $id: 'ReconciliationMatch',
    description: 'The practice record one input record was matched to, with the evidence. At most one per input record.',
  },
);

/** A reference to the named schema, typed as the engine's match. */
const MatchRef = Type.Unsafe<EngineMatch>({ $ref: 'ReconciliationMatch#' });

export const ReconcileRequest = Type.Object(
  {
    data: Type.Array(Type.Object({}, { additionalProperties: true }), {
      minItems: 1,
      maxItems: MAX_RECORDS,
      description:
        'The records to match (1 to 10,000): free-form objects as exported by another system. Keys are recognised ' +
        'case- and punctuation-insensitively ("First Name", first_name, DOB, Mobile, Zip, ...); see fieldMapping. ' +
        'A record with no usable field is reported in `unmatched`, not refused.',
    }),
    algorithm: Type.Optional(
      StringEnum(ALGORITHMS, {
        default: 'HYBRID',
        description: 'FUZZY_MATCH: weighted similarity. ML_MODEL: Fellegi-Sunter model learned (EM) from the practice\'s data. HYBRID: the model plus rules for look-alikes.',
      }),
    ),
    confidence: Type.Optional(
      Type.Number({ minimum: 0.1, maximum: 1, default: 0.8, description: 'Threshold: matches below it are reported unmatched.' }),
    ),
    target: Type.Optional(
      StringEnum(TARGETS, {
        default: 'PATIENTS',
        description: "What to match against: the practice's patients, or its COMPLETED appointments (loyalty redemptions, POS lines).",
      }),
    ),
    fieldMapping: Type.Optional(
      Type.Object(
        {},
        {
          additionalProperties: Type.String({ maxLength: 100 }),
          maxProperties: 200,
          description: 'Input key -> canonical field (firstName, lastName, dateOfBirth, email, phone, postalCode, ...), or "ignore". Wins over automatic key recognition.',
          examples: [{ 'Client Given': 'firstName', Cell: 'phone', Notes: 'ignore' }],
        },
      ),
    ),
    oneToOne: Type.Optional(
      Type.Boolean({ default: false, description: 'Match each practice record at most once (best-scoring input record wins).' }),
    ),
  },
  { additionalProperties: false },
);
export type ReconcileRequest = Static<typeof ReconcileRequest>;

export const ReconcileResponse = Type.Object({
  runId: Type.String({ format: 'uuid', description: 'Id of the stored run: GET /ai/reconcile/{runId} returns this result again.' }),
  matches: Type.Array(MatchRef),
  confidence: Type.Number({ minimum: 0, maximum: 1, description: 'Mean confidence of the returned matches (0 when none).' }),
  processingTime: Type.Number({ minimum: 0, description: 'Milliseconds from the request being accepted to the result being ready.' }),
  unmatched: Type.Array(Type.Integer({ minimum: 0 }), {
    description: 'Positions in `data` of records with no match at or above the threshold.',
  }),
  algorithm: StringEnum(ALGORITHMS),
  target: StringEnum(TARGETS),
});
export type ReconcileResponse = Static<typeof ReconcileResponse>;

export const RunParams = Type.Object(
  // Any string up to a sane length: a malformed id is a 404 like any other unknown id.
  { runId: PathId() },
  { additionalProperties: false },
);

export const ReconcileRun = Type.Object({
  runId: Type.String({ format: 'uuid' }),
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: Type.Object({ type: StringEnum(['user', 'api_key']), id: Type.String() }),
  algorithm: StringEnum(ALGORITHMS),
  target: StringEnum(TARGETS),
  confidenceThreshold: Type.Number(),
  oneToOne: Type.Boolean(),
  counts: Type.Object({
    records: Type.Integer({ description: 'Input records.' }),
    matched: Type.Integer(),
    unmatched: Type.Integer(),
    candidates: Type.Integer({ description: 'Practice records the input was compared against.' }),
  }),
  matches: Type.Array(MatchRef),
  confidence: Type.Number(),
  processingTime: Type.Number(),
  unmatched: Type.Array(Type.Integer({ minimum: 0 })),
});
export type ReconcileRun = Static<typeof ReconcileRun>;
