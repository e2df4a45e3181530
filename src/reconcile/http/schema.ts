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
    kind: StringEnum(JOB_KINDS, { description: 'PATIENTS: members -> patients. APPOINTMENTS: redemptions or sales -> completed appointments. TRANSACTIONS: redemptions -> sales (not yet available).' }),
    algorithm: Type.Optional(StringEnum(ALGORITHMS, { default: 'HYBRID' })),
    confidence: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1, default: 0.8, description: 'Rows at or above it are `accepted`.' })),
    reviewFloor: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1, description: `Rows between it and confidence are \`review\`; below, \`unmatched\`. Default ${DEFAULT_REVIEW_FLOOR} (or confidence if lower).` })),
    source: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{0,49}$', description: 'The other system ("alle", "aspire"): applied links are stored as externalIds[source] = the row\'s member id.' })),
    charset: Type.Optional(Type.String({ maxLength: 40, description: 'utf-8 or windows-1252; detected when absent.' })),
    onRowError: Type.Optional(StringEnum(['fail', 'skip'] as const, { default: 'fail', description: 'skip: rows that cannot be read are reported and the others processed.' })),
    oneToOne: Type.Optional(Type.Boolean({ default: false })),
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
    }),
    createdBy: Type.Object({ type: StringEnum(['user', 'api_key'] as const), id: Type.String() }),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  },
  { $id: 'ReconciliationJob' },
);
export type Job = Static<typeof Job>;

export const JobListQuery = Type.Object({ ...PageQuery, status: Type.Optional(StringEnum(JOB_STATUSES)) }, { additionalProperties: false });

export const MatchesQuery = Type.Object(
  { ...PageQuery, band: Type.Optional(StringEnum(BANDS)), undecided: Type.Optional(Type.Boolean({ description: 'Only rows without a decision.' })) },
  { additionalProperties: false },
);

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
        entityId: Type.Optional(Type.String({ format: 'uuid' })),
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
});

export const ExportQuery = Type.Object(
  {
    format: Type.Optional(StringEnum(['csv', 'json'] as const, { default: 'csv' })),
    rows: Type.Optional(StringEnum(['all', 'exceptions'] as const, { default: 'all', description: 'exceptions: review and unmatched rows, and rejected ones.' })),
  },
  { additionalProperties: false },
);
