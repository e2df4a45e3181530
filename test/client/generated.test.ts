// CI fails when the SDK's generated types are stale: the served OpenAPI documents are rendered
// again in memory, exactly as `npm run sdk:generate` writes them, and compared with the committed
// packages/client/src/v1.ts and v2.ts.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { API_VERSIONS, generatedFile, renderAll } from '../../packages/client/generate.js';

test('the committed client types match the served OpenAPI documents', async () => {
  const expected = await renderAll();
  for (const version of API_VERSIONS) {
    const committed = await readFile(generatedFile(version), 'utf8').catch(() => '');
    assert.ok(
      committed === expected[version],
      `packages/client/src/${version}.ts is stale against /${version}/openapi.json: run \`npm run sdk:generate\` and commit the result`,
    );
  }
});
