// A real webhook receiver for tests: an HTTP server on 127.0.0.1 that records every request and
// answers as the test says (a status, a delay). Closed when the test file ends.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** What to answer next: a status (default 200), after an optional delay. */
  respond: (request: Received) => { status: number; delayMs?: number; body?: string };
  /** Stops listening (connections refused) until up(). */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(path = '/hooks'): Promise<Receiver> {
  const receiver = { received: [] as Received[], respond: () => ({ status: 200 }) } as unknown as Receiver;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const entry = { headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      receiver.received.push(entry);
      const answer = receiver.respond(entry);
      const send = () => {
        if (response.destroyed) return;
        response.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body ?? 'ok');
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs).unref();
      else send();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  receiver.url = `http://127.0.0.1:${port}${path}`;
  let listening = true;
  receiver.down = async () => {
    if (!listening) return;
    listening = false;
    const closing = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closing;
  };
  receiver.up = async () => {
    if (listening) return;
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    listening = true;
  };
  receiver.close = receiver.down;
  after(() => receiver.close());
  return receiver;
}
