// npm run lint:openapi — the OpenAPI document of each API version, as served, through Spectral
// with the project's ruleset (.spectral.yaml). Exits non-zero on any error. The same check runs in
// npm test (test/http/meta.test.ts); this prints the findings for a person to read.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.js';
import { testConfig } from '../src/config.js';
import { openPglite } from '../src/db/database.js';

const db = await openPglite({ dataDir: undefined });
const app = await buildApp(testConfig({ logLevel: 'silent' }), { db });
const dir = mkdtempSync(join(tmpdir(), 'openapi-'));
let failed = false;
try {
  for (const version of ['v1', 'v2']) {
    const response = await app.inject({ url: `/${version}/openapi.json` });
    if (response.statusCode !== 200) throw new Error(`/${version}/openapi.json answered ${response.statusCode}`);
    const file = join(dir, `openapi-${version}.json`);
    writeFileSync(file, response.body);
    console.log(`== ${version}`);
    try {
      execFileSync(process.execPath, ['node_modules/.bin/spectral', 'lint', file, '--ruleset', '.spectral.yaml', '--fail-severity', 'error'], { stdio: 'inherit' });
    } catch {
      failed = true;
    }
  }
} finally {
  await app.close();
  await db.close();
}
process.exitCode = failed ? 1 : 0;
