// CI fails when the SDK's generated types are stale: the served OpenAPI documents are rendered
// again in memory, exactly as `npm run sdk:generate` writes them, and compared with the committed
// packages/client/src/v1.ts and v2.ts.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { API_VERSIONS, generatedFile, renderTypes, servedDocuments } from '../../packages/client/generate.js';

describe('the client SDK against the served OpenAPI documents', async () => {
  const documents = await servedDocuments();

  test('the committed client types match the served documents', async () => {
    for (const version of API_VERSIONS) {
      const committed = await readFile(generatedFile(version), 'utf8').catch(() => '');
      assert.ok(
        committed === (await renderTypes(version, documents[version])),
        `packages/client/src/${version}.ts is stale against /${version}/openapi.json: run \`npm run sdk:generate\` and commit the result`,
      );
    }
  });

  test('no query parameter with a default is marked required (a client would have to send it)', () => {
    type Parameter = { in: string; name: string; required?: boolean; schema?: { default?: unknown } };
    for (const version of API_VERSIONS) {
      for (const [path, item] of Object.entries(documents[version].paths ?? {})) {
        for (const [method, operation] of Object.entries(item as Record<string, { parameters?: Parameter[] }>)) {
          for (const parameter of operation.parameters ?? []) {
            if (parameter.in !== 'query' || parameter.schema?.default === undefined) continue;
            assert.notEqual(parameter.required, true, `${version} ${method.toUpperCase()} ${path}: ?${parameter.name} has a default`);
          }
        }
      }
    }
  });
});
