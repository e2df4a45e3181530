// npx tsx bench/metrics-overhead.ts — what metrics add to one request, timed alone (throughput on a
// shared machine drifts more than this): one observation of the request histogram plus one counter
// increment on a kept series, as src/observability/metrics.ts does per request; and the timing
// wrapper the database puts around each statement or transaction when metrics are on.
import { Counter, Histogram, Registry } from 'prom-client';

const N = 1_000_000;
const registry = new Registry();
const labelNames = ['method', 'route', 'status_code'];
const labels = { method: 'GET', route: '/v1/patients', status_code: '200' };
const histogram = new Histogram({ name: 'h', help: 'h', labelNames, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] });
const counter = new Counter({ name: 'c', help: 'c', labelNames, registers: [registry] });
const series = { duration: histogram.labels(labels), count: counter.labels(labels) };

let started = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  series.duration.observe(0.004);
  series.count.inc();
}
console.log(`request histogram + counter: ${(Number(process.hrtime.bigint() - started) / N).toFixed(0)} ns per request`);

const timed = <T>(work: () => Promise<T>): Promise<T> => {
  const at = performance.now();
  return work().then((result) => {
    series.duration.observe((performance.now() - at) / 1000);
    return result;
  });
};
const pending: Promise<number>[] = [];
started = process.hrtime.bigint();
for (let i = 0; i < N; i++) pending.push(timed(() => Promise.resolve(i)));
await Promise.all(pending);
console.log(`database timing wrapper: ${(Number(process.hrtime.bigint() - started) / N).toFixed(0)} ns per statement or transaction`);
