// The SSRF guard's pure core: which addresses a webhook may reach, and names that resolve to them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyAddress, ipv6Groups, refusalFor, RefusedTarget, vetTarget, type Resolver } from '../../src/webhooks/address.js';
import { jittered } from '../../src/webhooks/worker.js';
import { DEFAULT_WEBHOOK_RETRY_SCHEDULE, loadConfig } from '../../src/config.js';

describe('address classes', () => {
  const cases: Array<[string, string | null]> = [
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['172.32.0.1', null],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.10.10', 'link-local'],
    ['100.64.0.1', 'cgnat'],
    ['100.100.100.200', 'metadata'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['93.184.216.34', null],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fd12:3456::1', 'private'],
    ['fd00:ec2::254', 'metadata'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:10.1.2.3', 'private'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['2002:0a00:0001::1', 'private'],
    ['2606:4700::1111', null],
  ];
  for (const [address, expected] of cases) {
    test(`${address} is ${expected ?? 'public'}`, () => assert.equal(classifyAddress(address), expected));
  }

  test('an IPv6 address expands to eight groups, a dotted tail included', () => {
    assert.deepEqual(ipv6Groups('::ffff:10.0.0.1'), [0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001]);
    assert.deepEqual(ipv6Groups('2001:db8::8:1'), [0x2001, 0xdb8, 0, 0, 0, 0, 8, 1]);
  });

  test('WEBHOOK_ALLOW_LOOPBACK relaxes loopback and private addresses, never metadata or link-local', () => {
    assert.equal(refusalFor('127.0.0.1', true), null);
    assert.equal(refusalFor('10.0.0.1', true), null);
    assert.match(refusalFor('169.254.169.254', true)!, /metadata/);
    assert.match(refusalFor('fd00:ec2::254', true)!, /metadata/);
    assert.match(refusalFor('::ffff:169.254.169.254', true)!, /metadata/);
    assert.match(refusalFor('169.254.1.1', true)!, /link-local/);
    assert.match(refusalFor('127.0.0.1', false)!, /loopback/);
  });
});

describe('vetting a target (DNS rebinding: the name is resolved at every check)', () => {
  const resolverOf = (table: Record<string, string[]>): Resolver => async (host) => {
    const addresses = table[host];
    if (!addresses) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

  test('refuses a name that resolves to 10.x', async () => {
    const resolve = resolverOf({ 'hooks.example.test': ['10.0.0.1'] });
    await assert.rejects(vetTarget(new URL('https://hooks.example.test/x'), resolve, false), (error: unknown) => error instanceof RefusedTarget && /resolves to 10\.0\.0\.1/.test((error as Error).message));
  });

  test('refuses a name when any one of its addresses is private, whatever the order', async () => {
    const resolve = resolverOf({ 'mixed.example.test': ['93.184.216.34', '192.168.0.10'] });
    await assert.rejects(vetTarget(new URL('https://mixed.example.test/'), resolve, false), RefusedTarget);
  });

  test('a name that resolves to metadata is refused even with WEBHOOK_ALLOW_LOOPBACK', async () => {
    const resolve = resolverOf({ 'rebind.example.test': ['169.254.169.254'] });
    await assert.rejects(vetTarget(new URL('http://rebind.example.test/latest/meta-data'), resolve, true), /metadata/);
  });

  test('returns the vetted public address the socket is then pinned to', async () => {
    const resolve = resolverOf({ 'ok.example.test': ['93.184.216.34'] });
    assert.deepEqual(await vetTarget(new URL('https://ok.example.test/'), resolve, false), { address: '93.184.216.34', family: 4 });
  });

  test('IPv6 literals in brackets are vetted as addresses', async () => {
    await assert.rejects(vetTarget(new URL('https://[::ffff:127.0.0.1]/'), resolverOf({}), false), /loopback/);
  });
});

describe('the retry schedule', () => {
  test('defaults to ~0, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h, 24 h, 24 h: more than 24 hours even at the lowest jitter', () => {
    const schedule = loadConfig({ NODE_ENV: 'test' }).events.webhooks.retryScheduleMs;
    assert.equal(DEFAULT_WEBHOOK_RETRY_SCHEDULE, '30s,2m,10m,30m,1h,3h,6h,12h,24h,24h');
    const lowest = schedule.reduce((sum, wait) => sum + jittered(wait, () => 0), 0);
    const highest = schedule.reduce((sum, wait) => sum + jittered(wait, () => 1), 0);
    assert.ok(lowest > 24 * 3_600_000, `lowest span ${lowest}`);
    assert.equal(highest, schedule.reduce((a, b) => a + b, 0));
  });

  test('a bad schedule stops the start naming the variable', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'test', WEBHOOK_RETRY_SCHEDULE: '30s,soon' }), /WEBHOOK_RETRY_SCHEDULE/);
    assert.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), ENCRYPTION_KEY: 'y'.repeat(40), WEBHOOK_ALLOW_LOOPBACK: 'true' }), /WEBHOOK_ALLOW_LOOPBACK/);
  });
});
