import { Writable } from 'node:stream';
import { after } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from '../../src/app.js';
import { testConfig, type Config } from '../../src/config.js';
import type { Database } from '../../src/db/database.js';

export interface TestApp {
  app: FastifyInstance;
  /** Every JSON log line written so far. */
  logs: Array<Record<string, unknown>>;
  /** The raw log text, to search for strings that must never appear. */
  rawLog(): string;
}

export async function startTestApp(db: Database, overrides: Partial<Config> = {}, options: AppOptions = {}): Promise<TestApp> {
  const chunks: string[] = [];
  const logStream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  // Rate limits are off unless a test turns them on: most tests make more logins than 5 per 15 minutes.
  const app = await buildApp(testConfig({ logLevel: 'info', rateLimitEnabled: false, ...overrides }), { db, logStream, ...options });
  after(() => app.close());
  return {
    app,
    get logs() {
      return chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    rawLog: () => chunks.join(''),
  };
}
