// The billing manager's review page at /app/reconciliations (docs/reconciliation.md#the-review-page-appreconciliations):
// a static page of this origin that drives the /v2 API with the user's own bearer token.
//
// - Assets are an allow-list (page, script, style sheet), read at start: a path outside it is the
//   API's 404, so no request can name a file on disk (no traversal by construction).
// - The script is compiled from reconciliations/app.ts: by `npm run build` into dist/ (production,
//   `npm start`), or, when running from src/ under tsx (`npm run dev`, tests), by TypeScript's
//   transpileModule once at start. typescript is a devDependency, so only the source path needs it.
// - The page's CSP allows only this origin's script, style sheet and API (no inline code, nothing
//   from elsewhere); cache headers make the browser revalidate (ETag) so a deploy is seen at once.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { notFound } from '../http/errors.js';

export const PAGE_PATH = '/app/reconciliations';

export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const folder = new URL('./reconciliations/', import.meta.url);

function asset(body: Buffer | string, type: string): Asset {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return { body: bytes, type, etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"` };
}

/** The compiled script next to this module (dist/), else the source transpiled (src/ under tsx). */
async function pageScript(): Promise<string> {
  const compiled = new URL('app.js', folder);
  if (existsSync(compiled)) return readFileSync(compiled, 'utf8');
  const source = readFileSync(new URL('app.ts', folder), 'utf8');
  const ts = (await import('typescript')).default;
  return ts.transpileModule(source, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, removeComments: false },
    fileName: 'app.ts',
  }).outputText;
}

async function loadAssets(): Promise<Map<string, Asset>> {
  return new Map([
    ['', asset(readFileSync(new URL('index.html', folder)), 'text/html; charset=utf-8')],
    ['app.js', asset(await pageScript(), 'text/javascript; charset=utf-8')],
    ['style.css', asset(readFileSync(new URL('style.css', folder)), 'text/css; charset=utf-8')],
  ]);
}

function send(request: FastifyRequest, reply: FastifyReply, file: Asset): FastifyReply {
  void reply
    .header('content-security-policy', PAGE_CSP)
    .header('cache-control', 'no-cache')
    .header('etag', file.etag);
  if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
  return reply.type(file.type).send(file.body);
}

export const webRoutes: FastifyPluginAsync = async (app) => {
  const assets = await loadAssets();
  const page = assets.get('')!;
  const route = { schema: { hide: true }, config: { public: true } } as const;

  // The page itself: public (it holds no data; everything it shows comes from the API after login).
  for (const url of [PAGE_PATH, `${PAGE_PATH}/`]) {
    app.get(url, route, async (request, reply) => send(request, reply, page));
  }
  app.get<{ Params: { file: string } }>(`${PAGE_PATH}/:file`, route, async (request, reply) => {
    // Only the allow-list: '..', '%2e%2e', 'index.html' or any other name is a 404.
    const file = request.params.file === '' ? undefined : assets.get(request.params.file);
    if (file === undefined) throw notFound('File');
    return send(request, reply, file);
  });
};
