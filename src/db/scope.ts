// Units of work. Request handlers reach the database only through the functions here, so the
// practice filter and the role that row-level security keys on are never forgotten.
import type { Database, Queryable, ScopeStatement } from './database.js';

/**
 * A transaction scoped to one practice: it runs as medspa_app with app.practice_id set, so
 * row-level security hides every other practice's rows even from a query missing its filter.
 */
export async function withPractice<T>(db: Database, practiceId: string, work: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(work, practiceScope(practiceId));
}

/**
 * One statement in the practice's scope, as its own transaction: the hot read path, a single round
 * trip on PostgreSQL. Same role and setting as withPractice, set by a prepared statement.
 *
 * The statement runs with a generic plan, made once per connection: its plan must not depend on
 * its parameter values (a practice filter, a status, a LIMIT/OFFSET page are fine). PostgreSQL
 * would otherwise plan it afresh on every execution, because a generic plan's estimate for
 * `LIMIT $n` (a tenth of the rows) never looks as cheap as the custom plan for LIMIT 20: that
 * planning, under row-level security, was most of the database's time per patient-list request.
 */
export async function readInPractice<T>(db: Database, practiceId: string, statement: { sql: string; params: unknown[] }) {
  assertUuid(practiceId);
  return db.scopedStatement<T>(practiceScopeStatement(practiceId), statement.sql, statement.params);
}

/** One statement on the cross-practice path (the audit writer's batches), as its own transaction. */
export async function statementAsSystem<T>(db: Database, statement: { sql: string; params: unknown[] }) {
  return db.scopedStatement<T>(SYSTEM_SCOPE, statement.sql, statement.params);
}

// set_config(…, true) is SET LOCAL as a function, so it can take a parameter and be prepared. The
// WHERE clause is false but needs the values, so every call runs and the statement returns no row.
const practiceScopeStatement = (practiceId: string): ScopeStatement => ({
  sql: `SELECT FROM (SELECT set_config('role', 'medspa_app', true) AS r, set_config('app.practice_id', $1, true) AS p,
                            set_config('plan_cache_mode', 'force_generic_plan', true) AS g) AS s
         WHERE s.r IS NULL OR s.p IS NULL OR s.g IS NULL`,
  params: [practiceId],
});
const SYSTEM_SCOPE: ScopeStatement = {
  sql: `SELECT FROM (SELECT set_config('role', 'medspa_system', true) AS r) AS s WHERE s.r IS NULL`,
  params: [],
};

function assertUuid(practiceId: string): void {
  if (!isUuid(practiceId)) throw new TypeError('practice id must be a UUID');
}

// The id is inlined so that scoping travels with BEGIN in one round trip; it is only ever a UUID
// from a verified token or key, and anything else is refused here, before any SQL is sent.
function practiceScope(practiceId: string): string {
  assertUuid(practiceId);
  return `SET LOCAL ROLE medspa_app; SET LOCAL app.practice_id = '${practiceId}'`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID in its text form, any case: the one test for ids everywhere (practice ids here, path ids in routes). */
export const isUuid = (value: string) => UUID.test(value);

/**
 * The cross-practice path (login by email, first start, audit sealing). Rare on purpose: grep for
 * withSystem and statementAsSystem to review every place that can see more than one practice.
 */
export function withSystem<T>(db: Database, work: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(work, 'SET LOCAL ROLE medspa_system');
}
