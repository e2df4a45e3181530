// One delivery attempt over HTTP(S): the SSRF guard at delivery time, then a POST connected to
// exactly the vetted address (the socket's `lookup` answers with it, so nothing re-resolves), the
// Host header and TLS server name still the URL's. No redirect is followed, the whole attempt has
// one deadline, and at most RESPONSE_READ_BYTES of the answer are read.
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { hostOf, RefusedTarget, vetTarget, type ResolvedAddress, type Resolver } from './address.js';

const RESPONSE_READ_BYTES = 4096;
/** What the delivery list keeps of a receiver's answer. */
const RESPONSE_KEPT_CHARS = 256;

export interface AttemptResult {
  /** 2xx. */
  delivered: boolean;
  /** 410 Gone: the receiver asked to be unsubscribed. */
  gone: boolean;
  statusCode: number | null;
  /** Why it failed, for the delivery list (never a secret, never the body we sent). */
  error: string | null;
  latencyMs: number;
  response: string | null;
}

export interface Transport {
  resolve: Resolver;
  allowLoopback: boolean;
  timeoutMs: number;
}

/** Keep-alive pools shared by every attempt of a worker (a busy receiver reuses its sockets). */
export function createAgents(maxSockets: number) {
  return {
    'http:': new http.Agent({ keepAlive: true, maxSockets }),
    'https:': new https.Agent({ keepAlive: true, maxSockets }),
  };
}
export type Agents = ReturnType<typeof createAgents>;

/** A socket lookup that can only ever answer the vetted address (also when asked for all of them). */
function pinnedLookup(target: ResolvedAddress): LookupFunction {
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  }) as unknown as LookupFunction;
}

const printable = (text: string) => text.replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, RESPONSE_KEPT_CHARS);

export async function attempt(url: URL, headers: Record<string, string>, body: string, transport: Transport, agents: Agents): Promise<AttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const failed = (error: string, statusCode: number | null = null, response: string | null = null): AttemptResult => ({
    delivered: false,
    gone: false,
    statusCode,
    error,
    latencyMs: elapsed(),
    response,
  });
  if (url.protocol !== 'https:' && !(transport.allowLoopback && url.protocol === 'http:')) return failed('refused: only https URLs are delivered to');
  let target: ResolvedAddress;
  try {
    target = await vetTarget(url, transport.resolve, transport.allowLoopback);
  } catch (error) {
    if (error instanceof RefusedTarget) return failed(error.message);
    throw error;
  }
  const host = hostOf(url);
  const isHttps = url.protocol === 'https:';
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve(result);
    };
    const request = (isHttps ? https : http).request({
      method: 'POST',
      hostname: host,
      port: url.port || (isHttps ? 443 : 80),
      path: `${url.pathname}${url.search}`,
      agent: agents[isHttps ? 'https:' : 'http:'],
      lookup: pinnedLookup(target),
      ...(isHttps && target.address !== host ? { servername: host } : {}),
      headers: {
        ...headers,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'user-agent': 'MedSpaSync-Webhooks/1',
      },
    });
    const deadline = setTimeout(() => {
      request.destroy();
      finish(failed(`timed out after ${transport.timeoutMs} ms`));
    }, transport.timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => finish(failed(`connection failed: ${error.code ?? error.message}`)));
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let read = 0;
      const done = () => {
        const status = response.statusCode ?? 0;
        const text = printable(Buffer.concat(chunks).toString('utf8')) || null;
        if (status >= 200 && status < 300) finish({ delivered: true, gone: false, statusCode: status, error: null, latencyMs: elapsed(), response: text });
        else if (status === 410) finish({ ...failed('the receiver answered 410 Gone', status, text), gone: true });
        else if (status >= 300 && status < 400) finish(failed(`redirect (${status}) not followed`, status, text));
        else finish(failed(`the receiver answered ${status}`, status, text));
      };
      response.on('data', (chunk: Buffer) => {
        if (read >= RESPONSE_READ_BYTES) return;
        chunks.push(chunk.subarray(0, RESPONSE_READ_BYTES - read));
        read += chunk.length;
        if (read >= RESPONSE_READ_BYTES) {
          // Enough to show; the rest is not ours to buffer. The socket goes, not back to the pool.
          response.destroy();
          done();
        }
      });
      response.on('end', done);
      response.on('error', () => done());
    });
    request.end(body);
  });
}
