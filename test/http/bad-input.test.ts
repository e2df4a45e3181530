// Bad input for every operation of the generated OpenAPI document: wrong types, missing required
// fields, unknown fields, out-of-range numbers, huge strings, unusual Unicode, wrong content
// types, SQL and script fragments, malformed ids, plus property-based random JSON. Whatever is
// sent: never a 5xx, always the error envelope, and a rejected request writes nothing.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { Database } from '../../src/db/database.js';
import { withSystem } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { bearer, createTestPractice, type TestPractice } from '../helpers/identity.js';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  format?: string;
  enum?: unknown[];
  $ref?: string;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
};

interface Operation {
  method: string;
  path: string;
  parameters: Array<{ name: string; in: string; schema: Schema }>;
  body: Schema | null;
}

for (const target of databaseTargets()) {
  describe(`bad input on ${target.kind}`, async () => {
  const db = await migratedDatabase(target);
  const { app } = await startTestApp(db);
  const practice = await createTestPractice(app, 'Fuzz Spa');
  type Document = {
    paths: Record<
      string,
      Record<string, { parameters?: Operation['parameters']; requestBody?: { content: Record<string, { schema: Schema }> }; responses?: Record<string, { content?: Record<string, unknown> }> }>
    >;
    components: { schemas: Record<string, Schema> };
  };
  // Every version's document; paths are relative to their version's server.
  const documents: Array<{ version: string; doc: Document }> = [];
  for (const version of ['v1', 'v2']) {
    documents.push({ version, doc: (await app.inject({ url: `/${version}/openapi.json` })).json() as Document });
  }
  const doc = { components: { schemas: Object.assign({}, ...documents.map((d) => d.doc.components.schemas)) as Record<string, Schema> } };

  function resolve(schema: Schema | undefined): Schema {
    if (schema?.$ref) {
      const name = schema.$ref.replace('#/components/schemas/', '');
      return resolve(doc.components.schemas[name]);
    }
    return schema ?? {};
  }

  const operations: Operation[] = documents.flatMap(({ version, doc: versionDoc }) =>
    Object.entries(versionDoc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      // A stream that starts never ends under inject(); the stream's own bad input (types, ids to
      // resume from) is tested with a real client in test/events.
      .filter(([, op]) => op.responses?.['200']?.content?.['text/event-stream'] === undefined)
      .map(([method, op]) => ({
      method: method.toUpperCase(),
      path: `/${version}${path}`,
      parameters: op.parameters ?? [],
      body: op.requestBody ? resolve(op.requestBody.content['application/json']?.schema) : null,
    })),
    ),
  );

  const SQL_AND_SCRIPT = [
    "'; DROP TABLE patients; --",
    "Robert'); DELETE FROM users WHERE ('1'='1",
    '1 OR 1=1',
    '<script>alert(document.cookie)</script>',
    '${7*7}{{7*7}}',
    '../../../../etc/passwd',
  ];
  const ODD_UNICODE = ['\ud800', '\udfff\ud800', '\u0000', 'Zoë\u0301\u200b\u202e', '𝕸𝖊𝖉 🧴', '\uFEFF'];
  const HUGE = 'x'.repeat(200_000);
  const MALFORMED_IDS = ['not-a-uuid', "1' OR '1'='1", '00000000-0000-0000-0000-00000000000g', '%00', 'a'.repeat(150), '..%2F..%2Fetc'];

  function wrongValuesFor(schema: Schema): unknown[] {
    const s = resolve(schema);
    const type = Array.isArray(s.type) ? s.type[0] : s.type;
    const values: unknown[] = [null, {}, [], true];
    switch (type) {
      case 'string':
        values.push(12345, HUGE, ...SQL_AND_SCRIPT, ...ODD_UNICODE, '');
        // Dates at the edges of what the database can represent.
        if (s.format === 'date' || s.format === 'date-time') values.push('9999-12-31', '0000-01-01', '9999-12-31T23:59:59Z', '-000001-01-01');
        break;
      case 'integer':
      case 'number':
        values.push('seven', 1.5, -1e308, 1e308, Number.MAX_SAFE_INTEGER + 2, (s.maximum ?? 1e9) + 1, (s.minimum ?? -1e9) - 1);
        break;
      case 'boolean':
        values.push('yes', 1, 'true');
        break;
      case 'array':
        values.push('not-an-array', [null, 1, 'x'], Array.from({ length: 20_000 }, () => 1));
        break;
      default:
        values.push('text', 42);
    }
    return values;
  }

  const snapshotTables = async (database: Database) =>
    withSystem(database, async (tx) => {
      const counts: Record<string, number> = {};
      for (const table of ['practices', 'users', 'api_keys', 'refresh_tokens', 'patients', 'services', 'appointments', 'mfa_recovery_codes', 'reconciliation_runs']) {
        const exists = await tx.query(`SELECT 1 FROM pg_tables WHERE tablename = $1`, [table]);
        if (exists.rows.length === 0) continue;
        counts[table] = (await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
      }
      const changed = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE updated_at > now() - interval '1 hour'`);
      counts.usersUpdated = changed.rows[0]!.n;
      return counts;
    });

  function freshHeaders(who: TestPractice['users']['ADMIN']) {
    // A new token per request: a fuzzed body may be a valid logout, which revokes the one it used.
    return { authorization: `Bearer ${bearer(app, { id: who.id, email: who.email, role: who.role, practiceId: practice.id })}` };
  }

  async function send(app: FastifyInstance, op: Operation, url: string, payload?: unknown, contentType = 'application/json') {
    const body = payload === undefined ? undefined : contentType === 'application/json' ? JSON.stringify(payload) : String(payload);
    return app.inject({
      method: op.method as 'POST',
      url,
      headers: { ...freshHeaders(practice.users.ADMIN), ...(body === undefined ? {} : { 'content-type': contentType }) },
      ...(body === undefined ? {} : { payload: body }),
    });
  }

  function checkResponse(response: Awaited<ReturnType<FastifyInstance['inject']>>, label: string) {
    assert.ok(response.statusCode < 500, `${label}: ${response.statusCode} ${response.body.slice(0, 300)}`);
    if (response.statusCode >= 400) {
      const body = response.json() as { error?: { code?: string; requestId?: string; details?: unknown[] } };
      assert.ok(body.error && typeof body.error.code === 'string' && Array.isArray(body.error.details), `${label}: not the envelope: ${response.body.slice(0, 200)}`);
      assert.equal(body.error.requestId, response.headers['x-request-id'], label);
    }
  }

  /** Percent-encodes; text that is not valid UTF-16 (a lone surrogate) goes as invalid UTF-8 bytes. */
  function encodeQueryValue(text: string): string {
    try {
      return encodeURIComponent(text);
    } catch {
      return '%ED%A0%80%FF%FE';
    }
  }

  function concreteUrl(op: Operation, id = '00000000-0000-4000-8000-000000000000') {
    return op.path.replace(/\{[^}]+\}/g, id);
  }

  test('the document has operations to exercise', () => {
    assert.ok(operations.length >= 25, `only ${operations.length} operations`);
  });

  test('a malformed id of any length the router passes is the route’s 404 on every GET and DELETE by id', async () => {
    const byId = operations.filter((op) => op.path.includes('{') && (op.method === 'GET' || op.method === 'DELETE'));
    assert.ok(byId.length >= 6, `only ${byId.length} operations`);
    for (const op of byId) {
      for (const id of ['x'.repeat(150), 'x'.repeat(300), 'x'.repeat(2000)]) {
        const response = await send(app, op, concreteUrl(op, id));
        assert.equal(response.statusCode, 404, `${op.method} ${op.path} with a ${id.length}-character id: ${response.body.slice(0, 200)}`);
      }
    }
  });

  describe('bodies are JSON in UTF-8, nothing else', () => {
    const patientsBefore = () => withSystem(db, async (tx) => (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM patients')).rows[0]!.n);
    const post = (payload: string | Buffer, contentType: string) =>
      app.inject({ method: 'POST', url: '/v1/patients', headers: { ...freshHeaders(practice.users.ADMIN), 'content-type': contentType }, payload });

    test('a JSON body sent as text/plain is 415 on every operation that takes a body, and writes nothing', async () => {
      const before = await snapshotTables(db);
      for (const op of operations.filter((o) => o.body !== null)) {
        const response = await send(app, op, concreteUrl(op), JSON.stringify({ firstName: 'Plain', lastName: 'Text', name: 'Plain' }), 'text/plain');
        assert.equal(response.statusCode, 415, `${op.method} ${op.path}: ${response.body.slice(0, 200)}`);
        assert.equal((response.json() as { error: { code: string } }).error.code, 'UNSUPPORTED_MEDIA_TYPE');
      }
      assert.deepEqual(await snapshotTables(db), before);
    });

    test('refuses bytes that are not UTF-8 (a Latin-1 é) instead of storing a damaged name', async () => {
      const before = await patientsBefore();
      const latin1 = Buffer.concat([Buffer.from('{"firstName":"Ren'), Buffer.from([0xe9]), Buffer.from('","lastName":"Latin"}')]);
      const response = await post(latin1, 'application/json');
      assert.equal(response.statusCode, 400, response.body);
      assert.equal((response.json() as { error: { code: string } }).error.code, 'INVALID_JSON');
      assert.equal(await patientsBefore(), before);
    });

    test('refuses half a character spelled as an escape (\\ud800) instead of storing U+FFFD; a whole pair is fine', async () => {
      const before = await patientsBefore();
      for (const notes of [String.raw`abc\ud800def`, String.raw`\udfff\ud800`]) {
        const response = await post(`{"firstName":"Half","lastName":"Surrogate","notes":"${notes}"}`, 'application/json');
        assert.equal(response.statusCode, 400, response.body);
        assert.equal((response.json() as { error: { code: string } }).error.code, 'INVALID_JSON');
      }
      assert.equal(await patientsBefore(), before);
      const whole = await post(String.raw`{"firstName":"Whole","lastName":"Surrogate","notes":"smile \ud83d\ude00"}`, 'application/json');
      assert.equal(whole.statusCode, 201, whole.body);
      assert.equal((whole.json() as { notes: string }).notes, 'smile 😀');
    });

    test('a charset other than UTF-8 is 415; charset=utf-8 and a byte-order mark are accepted', async () => {
      const body = JSON.stringify({ firstName: 'René', lastName: 'Charset' });
      const other = await post(Buffer.from(body, 'latin1'), 'application/json; charset=iso-8859-1');
      assert.equal(other.statusCode, 415, other.body);
      const declared = await post(body, 'application/json; charset=UTF-8');
      assert.equal(declared.statusCode, 201, declared.body);
      assert.equal((declared.json() as { firstName: string }).firstName, 'René');
      const withBom = await post(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ firstName: 'Bom', lastName: 'Charset' }))]), 'application/json');
      assert.equal(withBom.statusCode, 201, withBom.body);
    });

    test('refuses prototype poisoning in a JSON body (__proto__, constructor.prototype)', async () => {
      for (const payload of ['{"firstName":"Proto","lastName":"Type","__proto__":{"admin":true}}', '{"firstName":"Proto","lastName":"Type","constructor":{"prototype":{"admin":true}}}']) {
        const response = await post(payload, 'application/json');
        assert.equal(response.statusCode, 400, response.body);
      }
    });
  });

  for (const op of operations) {
    describe(`${op.method} ${op.path}`, () => {
      test('bad input never causes a 5xx, always gets the envelope, and a rejection writes nothing', async () => {
        const before = await snapshotTables(db);
        let accepted = 0;
        const check = async (url: string, payload: unknown, label: string, contentType?: string) => {
          const response = await send(app, op, url, payload, contentType);
          checkResponse(response, label);
          if (response.statusCode < 400) accepted += 1;
        };

        for (const id of op.path.includes('{') ? [...MALFORMED_IDS, '\ud800'] : []) {
          await check(concreteUrl(op, encodeQueryValue(id)), op.body ? {} : undefined, `id ${id}`);
        }
        const url = concreteUrl(op);
        for (const param of op.parameters.filter((p) => p.in === 'query')) {
          for (const value of [...wrongValuesFor(param.schema).filter((v) => typeof v !== 'object'), ...SQL_AND_SCRIPT]) {
            const text = typeof value === 'string' ? value.slice(0, 5000) : String(value);
            await check(`${url}?${param.name}=${encodeQueryValue(text)}`, op.body ? {} : undefined, `query ${param.name}=${text.slice(0, 30)}`);
          }
        }
        if (op.body) {
          for (const wholeBody of [[], 'text', 42, null, true]) await check(url, wholeBody, `body ${JSON.stringify(wholeBody)}`);
          await check(url, {}, 'empty object');
          await check(url, { unexpectedField: 'x' }, 'unknown field only');
          await check(url, 'field=value', 'form encoded', 'application/x-www-form-urlencoded');
          await check(url, '<a/>', 'xml', 'application/xml');
          await check(url, '{"broken": ', 'malformed json', 'application/json; charset=utf-8');
          for (const [name, schema] of Object.entries(op.body.properties ?? {})) {
            for (const value of wrongValuesFor(schema)) {
              await check(url, { [name]: value }, `${name}=${JSON.stringify(value)?.slice(0, 40)}`);
            }
          }
          await fc.assert(
            fc.asyncProperty(fc.dictionary(fc.constantFrom(...Object.keys(op.body.properties ?? { x: {} }), 'extra'), fc.anything({ maxDepth: 2 })), async (payload) => {
              await check(url, payload, `random ${JSON.stringify(payload).slice(0, 60)}`);
            }),
            { numRuns: 15, seed: 20261125 },
          );
        }
        if (accepted === 0) assert.deepEqual(await snapshotTables(db), before, 'a rejected request wrote to the database');
      });
    });
  }

  });
}
