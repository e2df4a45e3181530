// Units of work. Request handlers reach the database only through these two functions, so the
// practice filter and the role that row-level security keys on are never forgotten.
import type { Database, Queryable } from './database.js';

/**
 * A transaction scoped to one practice: it runs as medspa_app with app.practice_id set, so
 * row-level security hides every other practice's rows even from a query missing its filter.
 */
export async function withPractice<T>(db: Database, practiceId: string, work: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(work, practiceScope(practiceId));
}

/**
 * One statement in the practice's scope, sent with BEGIN and COMMIT in a single round trip: the
 * hot read path (a list and its audit row, written by the same statement).
 */
export async function readInPractice<T>(db: Database, practiceId: string, statement: { sql: string; params: unknown[] }) {
  return db.statementInTransaction<T>(practiceScope(practiceId), statement.sql, statement.params);
}

// The id is inlined so that scoping travels with BEGIN in one round trip; it is only ever a UUID
// from a verified token or key, and anything else is refused here, before any SQL is sent.
function practiceScope(practiceId: string): string {
  if (!UUID.test(practiceId)) throw new TypeError('practice id must be a UUID');
  return `SET LOCAL ROLE medspa_app; SET LOCAL app.practice_id = '${practiceId}'`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The cross-practice path (login by email, first start, audit sealing). Rare on purpose:
 * grep for withSystem to review every place that can see more than one practice.
 */
export function withSystem<T>(db: Database, work: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(work, 'SET LOCAL ROLE medspa_system');
}
