// Claiming work rows from a PostgreSQL table: the one mechanism for background work (webhook
// deliveries today, reconciliation jobs next), no coordinator and nothing to install.
//
// A queue is any table with a uuid `id`, `claimed_by text` and `lease_until timestamptz`. A claim
// is one UPDATE over a `SELECT … FOR UPDATE SKIP LOCKED`: concurrent claimers (other instances,
// other workers of this one) skip each other's rows instead of waiting, so no row goes to two of
// them. The claim writes a lease: a worker that dies (SIGKILL, a lost machine) leaves its rows
// claimed until `lease_until`, after which the next claim takes them again. Each claim gets a
// fresh token in `claimed_by`, and finishing a row is fenced by it: a worker whose lease ran out
// and whose row was claimed again can no longer overwrite the new claimer's result.
//
// Why not a queue library: none of the well-kept PostgreSQL queues (pg-boss, graphile-worker) runs
// on PGlite, which is the zero-setup default; this is one statement on both.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/database.js';

export interface ClaimQueue {
  /** The table (a constant from code, never input). */
  table: string;
  /** SQL condition on the table's row, aliased `t`: which rows are ready to run. */
  ready: string;
  /** ORDER BY of the ready rows (columns of `t`), so the oldest work goes first. */
  order: string;
  /**
   * What a claim returns: a SELECT over the claimed rows, aliased `c` (all of the table's
   * columns), joining what the worker needs, so claiming and loading are one round trip.
   */
  select?: string;
}

export interface ClaimOptions {
  /** Who claims, for operators reading the table (instance id); the token adds a random part. */
  owner: string;
  limit: number;
  leaseMs: number;
}

export interface Claim<T> {
  /** Fences the completion of these rows (finishFenced). */
  token: string;
  rows: T[];
}

/**
 * The SQL of a claim; $1 token, $2 lease in ms, $3 limit. ARRAY(…) makes the locking subquery run
 * exactly once (a plain IN may be re-evaluated by the planner and lock more rows than it returns).
 */
export function claimSql(queue: ClaimQueue): string {
  return `WITH c AS (
    UPDATE ${queue.table} t SET claimed_by = $1, lease_until = now() + $2 * interval '1 millisecond'
     WHERE t.id = ANY (ARRAY(SELECT t.id FROM ${queue.table} t
                     WHERE (${queue.ready}) AND (t.lease_until IS NULL OR t.lease_until < now())
                     ORDER BY ${queue.order} LIMIT $3 FOR UPDATE OF t SKIP LOCKED))
    RETURNING t.*)
  ${queue.select ?? 'SELECT c.* FROM c'}`;
}

/** A claim as one statement with its parameters, for any runner (a transaction, a scoped statement). */
export function claimStatement(queue: ClaimQueue, options: ClaimOptions): { token: string; sql: string; params: unknown[] } {
  const token = `${options.owner}:${randomUUID()}`;
  return { token, sql: claimSql(queue), params: [token, options.leaseMs, options.limit] };
}

/** Claims up to `limit` ready rows whose lease is free (never held, or expired). */
export async function claim<T>(tx: Queryable, queue: ClaimQueue, options: ClaimOptions): Promise<Claim<T>> {
  const statement = claimStatement(queue, options);
  const { rows } = await tx.query<T>(statement.sql, statement.params);
  return { token: statement.token, rows };
}

/**
 * The condition a completion UPDATE must add for row `alias` finished under `tokenExpr`: only
 * the claim that still holds the row may finish it (and so release its lease).
 */
export const heldBy = (alias: string, tokenExpr: string) => `${alias}.claimed_by = ${tokenExpr}`;

/** Gives rows back without running them (shutdown): the next claim may take them at once. */
export async function release(tx: Queryable, table: string, token: string, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const { rowCount } = await tx.query(
    `UPDATE ${table} t SET claimed_by = NULL, lease_until = NULL WHERE t.id = ANY($1::uuid[]) AND ${heldBy('t', '$2')}`,
    [ids, token],
  );
  return rowCount;
}
