// Production settings that are right on a laptop and wrong for a clinic: refused at start, each
// with its own line (issue 13, item 6). The variables' own parsing rules are tested with the code
// that uses them; this file covers the production refusals.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigRefusals, loadConfig } from '../src/config.js';
import { spawnServer, tempDir } from './helpers/process.js';

const PRODUCTION = {
  NODE_ENV: 'production',
  JWT_SECRET: 'a-production-signing-secret-of-32-characters+',
  ENCRYPTION_KEY: 'a-production-encryption-key-of-32-characters',
};

function refusalsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (error) {
    if (error instanceof ConfigRefusals) return error.refusals.map((refusal) => refusal.variable);
    throw error;
  }
}

describe('production refuses settings that would expose PHI or lose data', () => {
  test('the embedded database and plain HTTP on every address are each refused, in one go', () => {
    assert.deepEqual(refusalsOf(PRODUCTION), ['DATABASE_URL', 'HOST']);
  });

  test('PGlite in production only when explicitly allowed', () => {
    assert.deepEqual(refusalsOf({ ...PRODUCTION, HOST: '127.0.0.1' }), ['DATABASE_URL']);
    assert.deepEqual(refusalsOf({ ...PRODUCTION, HOST: '127.0.0.1', ALLOW_EMBEDDED_DATABASE: 'true' }), []);
  });

  test('plain HTTP on a public address is refused unless a TLS-terminating proxy is declared', () => {
    const postgres = { ...PRODUCTION, DATABASE_URL: 'postgres://db.internal/medspa' };
    assert.deepEqual(refusalsOf({ ...postgres, HOST: '0.0.0.0' }), ['HOST']);
    assert.deepEqual(refusalsOf({ ...postgres, HOST: '10.1.2.3', TRUST_PROXY: '10.1.0.5' }), []);
    assert.deepEqual(refusalsOf({ ...postgres, HOST: '::1' }), []);
    assert.deepEqual(refusalsOf({ ...postgres, HOST: 'localhost' }), []);
  });

  test('development keeps its zero-setup defaults', () => {
    assert.deepEqual(refusalsOf({ NODE_ENV: 'development', DATA_DIR: tempDir('medspa-config-') }), []);
  });

  test('the process prints one line per refusal and exits 78 without touching data', async () => {
    const server = await spawnServer({ env: { ...PRODUCTION, HOST: '0.0.0.0', DATABASE_URL: '' } });
    const exit = await server.waitForExit(30_000);
    assert.equal(exit.code, 78);
    const lines = server.stderr().split('\n').filter((line) => line.trim() !== '');
    assert.equal(lines.length, 2, server.stderr());
    assert.match(lines[0]!, /^Configuration error: DATABASE_URL: .*ALLOW_EMBEDDED_DATABASE=true/);
    assert.match(lines[1]!, /^Configuration error: HOST: 0\.0\.0\.0 would serve PHI over plain HTTP/);
    assert.equal(server.stdout(), '');
  });
});
