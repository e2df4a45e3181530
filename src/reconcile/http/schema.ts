// Wire shapes of /v2/reconciliations (docs/reconciliation.md).
import { Type, type Static } from 'typebox';
import { PageQuery, PathId } from '../../http/pagination.js';
import { StringEnum } from '../../http/validation.js';
import { ALGORITHMS } from '../schema.js';
import { BANDS, DECISIONS } from '../review/store.js';
import { JOB_KINDS, JOB_STATUSES } from '../jobs/store.js';

import { DEFAULT_REVIEW_FLOOR } from '../engine/decide.js';

export { DEFAULT_REVIEW_FLOOR };

export const CreateJobQuery = Type.Object(
  {
    kind: StringEnum(JOB_KINDS, { description: 'PATIENTS: members -> patients. APPOINTMENTS: redemptions or sales -> completed appointments. TRANSACTIONS: reward redemptions -> the sales they discounted (multipart `redemptions` and `sales`; without `sales`, the practice\'s completed appointments at their charged price are the sales).' }),
    algorithm: Type.Optional(StringEnum(ALGORITHMS, { default: 'HYBRID' })),
    confidence: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1, default: 0.8, description: 'Rows at or above it are `accepted`.' })),
    reviewFloor: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1, description: `Rows between it and confidence are \`review\`; below, \`unmatched\`. Default ${DEFAULT_REVIEW_FLOOR} (or confidence if lower).` })),
    source: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{0,49}$', description: 'The other system ("alle", "aspire"): applied links are stored as externalIds[source] = the row\'s member id.' })),
    charset: Type.Optional(Type.String({ maxLength: 40, description: 'utf-8 or windows-1252; detected when absent.' })),
    onRowError: Type.Optional(StringEnum(['fail', 'skip'] as const, { default: 'fail', description: 'skip: rows that cannot be read are reported and the others processed.' })),
    oneToOne: Type.Optional(Type.Boolean({ default: false })),
    maxLagDays: Type.Optional(Type.Integer({ minimum: 0, maximum: 365, default: 30, description: 'TRANSACTIONS: a redemption may post 0 to this many days after its sale (never before it).' })),
    maxRedemptionsPerSale: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 1, description: 'TRANSACTIONS: redemptions one sale may carry; 0 = no limit.' })),
    amountToleranceCents: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, default: 100, description: 'TRANSACTIONS: an amount fits within the larger of this many cents ...' })),
    amountTolerancePercent: Type.Optional(Type.Number({ minimum: 0, maximum: 50, default: 2, description: 'TRANSACTIONS: ... and this percent of the expected amount (fees, rounding).' })),
    fieldMapping: Type.Optional(Type.String({ maxLength: 10_000, description: 'JSON object: column -> canonical field (firstName, lastName, dateOfBirth, email, phone, memberId, ...) or "ignore".' })),
  },
  { additionalProperties: false },
);
export type CreateJobQuery = Static<typeof CreateJobQuery>;

export const JobParams = Type.Object({ id: PathId() }, { additionalProperties: false });

const Column = Type.Object({
  column: Type.String(),
  readAs: Type.Union([Type.String(), Type.Null()]),
  how: StringEnum(['mapping', 'recognised', 'ignored'] as const),
});
const BadRow = Type.Object({ line: Type.Integer(), column: Type.Union([Type.String(), Type.Null()]), message: Type.String() });

export const Job = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    kind: StringEnum(JOB_KINDS),
    status: StringEnum(JOB_STATUSES),
    algorithm: StringEnum(ALGORITHMS),
    confidence: Type.Number(),
    reviewFloor: Type.Number(),
    source: Type.Union([Type.String(), Type.Null()]),
    progress: Type.Object({
      phase: Type.String(),
      rowsRead: Type.Integer(),
      pairsScored: Type.Integer({ description: 'Known once scoring has finished.' }),
      percent: Type.Number({ minimum: 0, maximum: 100 }),
      etaSeconds: Type.Union([Type.Number(), Type.Null()]),
    }),
    counts: Type.Object({
      rows: Type.Integer(), accepted: Type.Integer(), review: Type.Integer(), unmatched: Type.Integer(),
      badRows: Type.Integer(), candidates: Type.Integer(),
    }),
    timings: Type.Object({
      createdAt: Type.String({ format: 'date-time' }),
      startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
      finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
      appliedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
      queuedMs: Type.Union([Type.Number(), Type.Null()]),
      runningMs: Type.Union([Type.Number(), Type.Null()]),
    }),
    input: Type.Object({
      format: StringEnum(['csv', 'json'] as const),
      fileName: Type.Union([Type.String(), Type.Null()]),
      bytes: Type.Integer(),
      encoding: Type.String(),
      delimiter: Type.Union([Type.String(), Type.Null()]),
      columns: Type.Array(Column),
      badRows: Type.Array(BadRow, { description: 'Rows left out (onRowError=skip), at most 1,000 listed.' }),
      sales: Type.Union([
        Type.Object({
          source: StringEnum(['file', 'practice'] as const, { description: 'file: the uploaded sales file; practice: the practice\'s completed appointments, read when the job runs.' }),
          fileName: Type.Union([Type.String(), Type.Null()]),
          rows: Type.Integer(),
          bytes: Type.Integer(),
          columns: Type.Array(Column),
        }),
        Type.Null(),
      ], { description: 'TRANSACTIONS: the sales the redemptions were matched against (null for other kinds).' }),
    }),
    createdBy: Type.Object({ type: StringEnum(['user', 'api_key'] as const), id: Type.String() }),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
    modelVersion: Type.Union([Type.Integer(), Type.Null()], {
      description: 'PATIENTS jobs with ML_MODEL or HYBRID: the version of the practice\'s learned model the job was scored with (0: none yet; see GET /reconciliations/model). null: not run yet, or a kind or algorithm that does not learn.',
    }),
  },
  { $id: 'ReconciliationJob' },
);
export type Job = Static<typeof Job>;

export const JobListQuery = Type.Object({ ...PageQuery, status: Type.Optional(StringEnum(JOB_STATUSES)) }, { additionalProperties: false });

export const MatchesQuery = Type.Object(
  { ...PageQuery, band: Type.Optional(StringEnum(BANDS)), undecided: Type.Optional(Type.Boolean({ description: 'Only rows without a decision.' })) },
  { additionalProperties: false },
);

export const SalesQuery = Type.Object(
  { ...PageQuery, linked: Type.Optional(Type.Boolean({ description: 'false: only the sales no redemption links to (the unmatched sales); true: only the linked ones.' })) },
  { additionalProperties: false },
);

export const SaleRow = Type.Object({
  saleIndex: Type.Integer({ minimum: 0, description: '0-based data row of the sales file (or of the practice\'s sales as the job read them).' }),
  entityId: Type.String({ description: 'How matches name this sale: its invoice number, "row:N", or the appointment id.' }),
  linkedBy: Type.Array(Type.Integer(), { description: 'Redemption rows (recordIndex) that link to it now: accepted, or proposed in review without a decision.' }),
  row: Type.Record(Type.String(), Type.Unknown(), { description: 'The sale as the file gave it.' }),
});

export const MatchRow = Type.Object({
  recordIndex: Type.Integer({ minimum: 0, description: '0-based data row of the file (line = recordIndex + 2 for a CSV with one header line and no embedded newlines).' }),
  band: StringEnum(BANDS),
  entityId: Type.Union([Type.String(), Type.Null()], { description: "The engine's choice (null when unmatched)." }),
  confidence: Type.Number(),
  candidates: Type.Array(Type.Object({
    entityId: Type.String(),
    confidence: Type.Number(),
    evidence: Type.Array(Type.String(), { examples: [['DOB equal', 'surname typo 1 edit', 'phone same last 7 digits']] }),
  })),
  decision: Type.Union([StringEnum(DECISIONS), Type.Null()]),
  decidedEntityId: Type.Union([Type.String(), Type.Null()]),
  decidedBy: Type.Union([Type.Object({ type: Type.String(), id: Type.String() }), Type.Null()]),
  decidedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  appliedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  appliedEntityId: Type.Union([Type.String(), Type.Null()]),
  applyError: Type.Union([Type.String(), Type.Null()]),
});

export const DecisionsBody = Type.Object(
  {
    decisions: Type.Optional(Type.Array(
      Type.Object({
        recordIndex: Type.Integer({ minimum: 0 }),
        action: StringEnum(DECISIONS, { description: 'accept the engine\'s choice, reject it, choose another candidate (entityId), or new: create a patient from the row on apply.' }),
        entityId: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'For choose: one of the row\'s candidates (a patient or appointment id, or a sale: its invoice number or "row:N").' })),
      }, { additionalProperties: false }),
      { minItems: 1, maxItems: 1000 },
    )),
    band: Type.Optional(StringEnum(BANDS, { description: 'Bulk: decide every undecided row of this band with `action`.' })),
    action: Type.Optional(StringEnum(['accept', 'reject', 'new'] as const)),
  },
  { additionalProperties: false },
);
export type DecisionsBody = Static<typeof DecisionsBody>;

export const DecisionsResult = Type.Object({ decided: Type.Integer(), recordIndexes: Type.Array(Type.Integer()) });

export const ApplyResult = Type.Object({
  linked: Type.Integer({ description: 'Patients given the row\'s member id in externalIds[source].' }),
  created: Type.Integer({ description: 'Patients created from "new" rows.' }),
  failed: Type.Integer(),
  rows: Type.Array(Type.Object({ recordIndex: Type.Integer(), entityId: Type.Union([Type.String(), Type.Null()]), error: Type.Union([Type.String(), Type.Null()]) })),
  labelled: Type.Integer({ description: 'PATIENTS: labelled pairs the decisions added to the practice\'s training set (comparison levels only, no values).' }),
  modelVersion: Type.Union([Type.Integer(), Type.Null()], { description: 'The model version these labels made (null: no new labels, no new version).' }),
});

const Rate = Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()]);

export const LearnedModel = Type.Object({
  version: Type.Integer({ minimum: 0, description: '0: no labels yet. Each apply that adds labels makes the next version; the next PATIENTS job (ML_MODEL or HYBRID) uses the latest.' }),
  status: StringEnum(['no labels yet', 'trained'] as const),
  trainingSetSize: Type.Integer({ minimum: 0, description: 'Labelled pairs: a reviewer\'s accept or choose is a match, reject or new makes the suggestion a non-match.' }),
  labels: Type.Object({ matches: Type.Integer({ minimum: 0 }), nonMatches: Type.Integer({ minimum: 0 }) }),
  metrics: Type.Union([
    Type.Object({
      evaluated: Type.Integer(),
      threshold: Type.Number({ description: 'The accept threshold of the job whose apply made this version.' }),
      precision: Rate,
      recall: Rate,
    }, { description: 'Leave-one-out over the labelled pairs: each scored by the model made of the others (docs/reconciliation.md).' }),
    Type.Null(),
  ]),
  usedBy: Type.Array(StringEnum(ALGORITHMS), { description: 'The algorithms that use the model.' }),
  jobId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'The applied job that made this version.' }),
  createdAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
export type LearnedModel = Static<typeof LearnedModel>;

export const ExportQuery = Type.Object(
  {
    format: Type.Optional(StringEnum(['csv', 'json'] as const, { default: 'csv' })),
    rows: Type.Optional(StringEnum(['all', 'exceptions', 'unmatched-sales'] as const, { default: 'all', description: 'exceptions: review and unmatched rows, and rejected ones. unmatched-sales (TRANSACTIONS): the sales no redemption links to, with the sales file\'s columns.' })),
  },
  { additionalProperties: false },
);
