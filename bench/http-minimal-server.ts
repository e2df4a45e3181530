// The yardstick for bench/http-patients.ts: the least a server can do to answer the same request.
// node:http, an HS256 JWT verified by hand, one keyset SELECT of 20 rows through a pg pool,
// JSON.stringify. No framework, no logging, no rate limit, no transaction, no audit.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';

function verifyHs256(token: string, secret: string): { practiceId: string } | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2]!, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp: number; practiceId: string };
  return claims.exp * 1000 > Date.now() ? claims : null;
}

export interface MinimalServer {
  url: string;
  close(): Promise<void>;
}

export async function startMinimalServer(options: { connectionString: string; searchPath: string; poolSize: number; secret: string }): Promise<MinimalServer> {
  const pool = new pg.Pool({ connectionString: options.connectionString, max: options.poolSize, options: `-c search_path=${options.searchPath}` });
  const server: Server = createServer((req, res) => {
    const claims = verifyHs256((req.headers.authorization ?? '').replace(/^Bearer /, ''), options.secret);
    if (claims === null) {
      res.writeHead(401).end();
      return;
    }
    pool
      .query(
        `SELECT id, first_name, last_name, date_of_birth, email, phone_number, gender, address, status, notes,
                external_ids, created_at, updated_at, deleted_at
           FROM patients WHERE practice_id = $1
          ORDER BY lower(last_name), lower(first_name), id LIMIT 20`,
        [claims.practiceId],
      )
      .then(
        ({ rows }) => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: rows }));
        },
        () => res.writeHead(500).end(),
      );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.end();
    },
  };
}
