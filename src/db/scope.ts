// Units of work. Request handlers reach the database only through these two functions, so the
// practice filter and the role that row-level security keys on are never forgotten.
import type { Database, Queryable } from './database.js';

/**
 * A transaction scoped to one practice: it runs as medspa_app with app.practice_id set, so
 * row-level security hides every other practice's rows even from a query missing its filter.
 */
export function withPractice<T>(db: Database, practiceId: string, work: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT set_config('role', 'medspa_app', true), set_config('app.practice_id', $1, true)", [
      practiceId,
    ]);
    return work(tx);
  });
}

/**
 * The cross-practice path (login by email, first start, audit sealing). Rare on purpose:
 * grep for withSystem to review every place that can see more than one practice.
 */
export function withSystem<T>(db: Database, work: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT set_config('role', 'medspa_system', true)");
    return work(tx);
  });
}
