// A unit of work in one round trip on PostgreSQL: a scope statement (the transaction's role and
// settings) and the statement itself, both prepared once per connection, sent with a single Sync.
// The extended protocol runs every message up to a Sync as one implicit transaction, so the scope's
// transaction-local settings cover the statement and vanish with the commit, exactly as SET LOCAL
// inside BEGIN … COMMIT, without the two extra statements or a plan per request.
//
// It is a pg "submittable": pg's Query with its own message sequence. pg's bookkeeping of named
// statements keys on the query's `name` and assumes one statement per query, so this keeps its own
// per connection and leaves `name` unset.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { prepareValue } from 'pg/lib/utils.js';

interface Scope {
  sql: string;
  params: readonly unknown[];
}

/** The slice of pg's Connection this query writes to. */
interface Connection {
  stream: { cork?: () => void; uncork?: () => void };
  parse(message: { name: string; text: string }): void;
  bind(message: { statement: string; values: Array<string | Buffer | null> }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(message: { portal?: string }): void;
  close(message: { type: 'S'; name: string }): void;
  sync(): void;
}

/** Statement names each connection has prepared successfully. */
const preparedOn = new WeakMap<Connection, Set<string>>();
const names = new Map<string, string>();

/** A stable name per SQL text, so every connection prepares a given statement under one name. */
function statementName(sql: string): string {
  let name = names.get(sql);
  if (name === undefined) {
    name = `medspa_${createHash('sha256').update(sql).digest('hex').slice(0, 24)}`;
    names.set(sql, name);
  }
  return name;
}

const PgQuery = pg.Query as unknown as new (config: { text: string }) => {
  handleCommandComplete(message: unknown, connection: unknown): void;
  handleReadyForQuery(connection: unknown): void;
  handleError(error: Error, connection: unknown): void;
};

export class ScopedStatementQuery extends PgQuery {
  private readonly scope: Scope;
  private readonly sql: string;
  private readonly params: readonly unknown[];
  private scopeCompleted = false;
  private connection: Connection | null = null;

  constructor(scope: Scope, sql: string, params: readonly unknown[]) {
    super({ text: sql });
    this.scope = scope;
    this.sql = sql;
    this.params = params;
  }

  /**
   * Called by pg's client when the connection is free. Parameters are converted first, so a value
   * pg cannot write fails the query before any message is sent; then every message leaves in one
   * write (corked).
   */
  submit(connection: Connection): Error | null {
    let scopeValues: Array<string | Buffer | null>;
    let values: Array<string | Buffer | null>;
    try {
      scopeValues = this.scope.params.map((value) => prepareValue(value));
      values = this.params.map((value) => prepareValue(value));
    } catch (error) {
      return error as Error;
    }
    this.connection = connection;
    let prepared = preparedOn.get(connection);
    if (prepared === undefined) preparedOn.set(connection, (prepared = new Set()));
    connection.stream.cork?.();
    try {
      sendStatement(connection, prepared, this.scope.sql, scopeValues, false);
      sendStatement(connection, prepared, this.sql, values, true);
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  /** The scope's completion is not part of the result: the caller sees the statement's alone. */
  override handleCommandComplete(message: unknown, connection: unknown): void {
    if (!this.scopeCompleted) {
      this.scopeCompleted = true;
      return;
    }
    super.handleCommandComplete(message, connection);
  }

  /** pg calls this only after an error-free run: both statements now exist on the connection. */
  override handleReadyForQuery(connection: unknown): void {
    const prepared = this.connection === null ? undefined : preparedOn.get(this.connection);
    prepared?.add(statementName(this.scope.sql));
    prepared?.add(statementName(this.sql));
    super.handleReadyForQuery(connection);
  }

  /** The failure may have come before or after either Parse: prepare both afresh next time. */
  override handleError(error: Error, connection: unknown): void {
    const prepared = this.connection === null ? undefined : preparedOn.get(this.connection);
    prepared?.delete(statementName(this.scope.sql));
    prepared?.delete(statementName(this.sql));
    super.handleError(error, connection);
  }
}

function sendStatement(connection: Connection, prepared: Set<string>, sql: string, values: Array<string | Buffer | null>, describe: boolean): void {
  const name = statementName(sql);
  if (!prepared.has(name)) {
    // After a failed attempt the statement may or may not exist: Close is harmless either way.
    connection.close({ type: 'S', name });
    connection.parse({ name, text: sql });
  }
  connection.bind({ statement: name, values });
  if (describe) connection.describe({ type: 'P', name: '' });
  connection.execute({});
}
