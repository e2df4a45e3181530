// The metrics listener (METRICS_HOST:METRICS_PORT, 127.0.0.1:9464 by default): GET /metrics in
// the Prometheus text format, nothing else. A server of its own, never a route of the API: the
// public port can't serve it by mistake, a scrape passes no auth, rate limit or audit, and a
// flood of API traffic does not stop the figures that show it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AppMetrics } from './metrics.js';

export interface MetricsServer {
  /** The port it listens on (the chosen one when started with port 0). */
  port: number;
  close(): Promise<void>;
}

interface Logger {
  error(obj: object, msg: string): void;
}

export async function startMetricsServer(metrics: AppMetrics, options: { host: string; port: number; log: Logger }): Promise<MetricsServer> {
  metrics.collectProcessMetrics();
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: the metrics are at GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        response.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        options.log.error({ err: error }, 'collecting metrics failed');
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('collecting metrics failed\n');
      },
    );
  });
  // Scrapers keep their connection; nothing here should hold a shutdown open for long.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
