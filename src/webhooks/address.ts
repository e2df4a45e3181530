// The SSRF guard: which addresses a webhook may be delivered to. A subscription's URL is checked
// when it is saved and again at every delivery, because a name that resolved to a public address
// yesterday may resolve to 127.0.0.1 today (DNS rebinding). The delivery then connects to exactly
// the address vetted here (delivery.ts passes it as the socket's `lookup`), so nothing re-resolves.
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** Why an address is refused; null: a public unicast address. */
export type AddressClass =
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'cgnat'
  | 'multicast'
  | 'unspecified'
  | 'reserved';

/** The classes WEBHOOK_ALLOW_LOOPBACK=true lets through (local development and tests). Never metadata. */
const RELAXABLE = new Set<AddressClass>(['loopback', 'private']);

type V4Range = [base: number, bits: number, cls: AddressClass];

const v4 = (dotted: string) => dotted.split('.').reduce((n, part) => n * 256 + Number(part), 0);

// Most specific first: 169.254.169.254 is a metadata address before it is link-local.
const V4_RANGES: V4Range[] = [
  [v4('169.254.169.254'), 32, 'metadata'], // AWS, GCP, Azure, OpenStack instance metadata
  [v4('100.100.100.200'), 32, 'metadata'], // Alibaba Cloud metadata
  [v4('0.0.0.0'), 8, 'unspecified'],
  [v4('10.0.0.0'), 8, 'private'],
  [v4('100.64.0.0'), 10, 'cgnat'],
  [v4('127.0.0.0'), 8, 'loopback'],
  [v4('169.254.0.0'), 16, 'link-local'],
  [v4('172.16.0.0'), 12, 'private'],
  [v4('192.0.0.0'), 24, 'reserved'],
  [v4('192.0.2.0'), 24, 'reserved'],
  [v4('192.88.99.0'), 24, 'reserved'],
  [v4('192.168.0.0'), 16, 'private'],
  [v4('198.18.0.0'), 15, 'reserved'],
  [v4('198.51.100.0'), 24, 'reserved'],
  [v4('203.0.113.0'), 24, 'reserved'],
  [v4('224.0.0.0'), 4, 'multicast'],
  [v4('240.0.0.0'), 4, 'reserved'], // includes 255.255.255.255
];

function classifyV4(address: string): AddressClass | null {
  const n = v4(address);
  for (const [base, bits, cls] of V4_RANGES) {
    const size = 2 ** (32 - bits);
    if (n >= base && n < base + size) return cls;
  }
  return null;
}

/** An IPv6 address as eight 16-bit groups (accepts `::` and a dotted IPv4 tail). */
export function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase().replace(/%.*$/, ''); // a zone id (fe80::1%eth0) names no other host
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const n = v4(dotted[1]!);
    text = `${text.slice(0, dotted.index)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const missing = 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right];
  return groups.map((group) => parseInt(group, 16));
}

const embeddedV4 = (high: number, low: number) => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;

function classifyV6(address: string): AddressClass | null {
  const g = ipv6Groups(address);
  const zeroUpTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && g[7] === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach the IPv4 address inside.
  if (zeroUpTo(5) && g[5] === 0xffff) return classifyV4(embeddedV4(g[6]!, g[7]!));
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return classifyV4(embeddedV4(g[6]!, g[7]!));
  if (g[0] === 0x2002) return classifyV4(embeddedV4(g[1]!, g[2]!)) ?? 'reserved'; // 6to4 relays: no business of ours
  if (zeroUpTo(6)) return 'reserved'; // IPv4-compatible (deprecated)
  if (g[0] === 0xfd00 && g[1] === 0x0ec2 && g.slice(2, 7).every((x) => x === 0) && g[7] === 0x254) return 'metadata'; // AWS IMDS over IPv6
  if ((g[0]! & 0xfe00) === 0xfc00) return 'private'; // unique local fc00::/7
  if ((g[0]! & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0]! & 0xffc0) === 0xfec0) return 'reserved'; // site-local (deprecated)
  if ((g[0]! & 0xff00) === 0xff00) return 'multicast';
  if (g[0] === 0x2001 && g[1] === 0x0db8) return 'reserved'; // documentation
  if (g[0] === 0x2001 && g[1] === 0) return 'reserved'; // Teredo: the IPv4 peer is hidden inside
  if (g[0] === 0x0100 && g.slice(1, 4).every((x) => x === 0)) return 'reserved'; // discard-only
  return null;
}

/** The class of an IP literal (null: public); throws for a string that is not an IP address. */
export function classifyAddress(address: string): AddressClass | null {
  const family = isIP(address.replace(/%.*$/, ''));
  if (family === 4) return classifyV4(address);
  if (family === 6) return classifyV6(address);
  throw new TypeError('not an IP address');
}

/** Why the address may not be a webhook target, or null when it may. */
export function refusalFor(address: string, allowLoopback: boolean): string | null {
  const cls = classifyAddress(address);
  if (cls === null || (allowLoopback && RELAXABLE.has(cls))) return null;
  return `${address} is a ${cls} address`;
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses (dns.lookup, i.e. what a socket would use). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((entry) => ({ address: entry.address, family: entry.family === 6 ? 6 : 4 }));

export class RefusedTarget extends Error {
  override readonly name = 'RefusedTarget';
}

/** A URL's host without the brackets of an IPv6 literal. */
export const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1');

/**
 * The address to connect to for `url`: every address the name resolves to must be allowed (one
 * bad address refuses the name: the resolver's order is not ours to trust), and the first is used.
 * Throws RefusedTarget with a reason a person can act on.
 */
export async function vetTarget(url: URL, resolve: Resolver, allowLoopback: boolean): Promise<ResolvedAddress> {
  const host = hostOf(url);
  const literal = isIP(host);
  if (literal !== 0) {
    const refusal = refusalFor(host, allowLoopback);
    if (refusal !== null) throw new RefusedTarget(`refused: ${refusal}`);
    return { address: host, family: literal === 6 ? 6 : 4 };
  }
  let addresses: ResolvedAddress[];
  try {
    addresses = await resolve(host);
  } catch (error) {
    throw new RefusedTarget(`${host} does not resolve (${(error as { code?: string }).code ?? 'lookup failed'})`);
  }
  if (addresses.length === 0) throw new RefusedTarget(`${host} does not resolve`);
  for (const entry of addresses) {
    const refusal = refusalFor(entry.address, allowLoopback);
    if (refusal !== null) throw new RefusedTarget(`refused: ${host} resolves to ${refusal}`);
  }
  return addresses[0]!;
}
