// tsc only emits JavaScript; the SQL migrations and other data files travel with the build.
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

// The review page's style sheet travels too (src/web/reconciliations/); its tsconfig.json does not matter at run time.
const NON_CODE = /\.(sql|txt|json|html|md|css)$/;

function copyAssets(from, to) {
  for (const name of readdirSync(from)) {
    const source = join(from, name);
    const target = join(to, name);
    if (statSync(source).isDirectory()) copyAssets(source, target);
    else if (NON_CODE.test(name)) cpSync(source, target);
  }
}

copyAssets('src', 'dist');
