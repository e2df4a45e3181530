// Med-spa service and product vocabulary: brand and generic names mapped to one product, and
// products grouped into classes, so "onabotulinumtoxinA" on a loyalty redemption finds the
// practice's "Botox - Forehead Lines" appointment and "Juvederm" finds "HA filler".
import { readFileSync } from 'node:fs';
import { foldText } from './text.js';

interface ProductName {
  /** Folded for matching. */
  folded: string;
  /** As written in the dictionary, for evidence a person reads. */
  display: string;
}

interface Product {
  key: string;
  /** Class of treatment: products of one class can stand in for each other on a vague export. */
  kind: string;
  /** The brand shown in evidence. */
  brand: string;
  /** The longest name found in a service text wins. */
  names: readonly ProductName[];
}

/** Parses data/products.txt: `key | class | Name, Other Name, ...` a line, `#` comments. */
export function parseProductDictionary(text: string): Product[] {
  const products: Product[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [key, kind, list] = line.split('|').map((part) => part.trim());
    if (!key || !kind || !list) throw new Error(`products dictionary: a line needs "key | class | names": ${line.slice(0, 60)}`);
    const names = list.split(',').map((name) => name.trim()).filter((name) => name !== '')
      .map((display) => ({ folded: foldText(display), display }))
      .filter((name) => name.folded !== '');
    products.push({ key, kind, brand: names[0]?.display ?? key, names });
  }
  return products;
}

let dictionary: readonly Product[] | null = null;

/** The shipped dictionary, read once per process (or worker thread). */
function products(): readonly Product[] {
  dictionary ??= parseProductDictionary(readFileSync(new URL('./data/products.txt', import.meta.url), 'utf8'));
  return dictionary;
}

/** Generic words that name a class, not a product ("filler", "neurotoxin"). */
const CLASS_WORDS: readonly [string, string][] = [
  ['neurotoxin', 'neurotoxin'], ['botulinum', 'neurotoxin'], ['tox', 'neurotoxin'], ['wrinkle relaxer', 'neurotoxin'],
  ['filler', 'filler'], ['dermal filler', 'filler'], ['hyaluronic acid', 'filler'], ['ha filler', 'filler'],
  ['lip filler', 'filler'], ['laser', 'laser'], ['body contouring', 'fat-reduction'], ['fat reduction', 'fat-reduction'],
];

export interface ServiceIdentity {
  product: string | null;
  kind: string | null;
  words: readonly string[];
  /** The product's brand, and the name of it that was found in the text ("Botox", "onabotulinumtoxinA"). */
  brand?: string;
  found?: string;
}

function containsPhrase(folded: string, phrase: string): boolean {
  return ` ${folded} `.includes(` ${phrase} `);
}

const identified = new Map<string, ServiceIdentity>();

/** What a free-text service or product name refers to (cached: exports repeat the same few memos). */
export function identifyService(name: string | null): ServiceIdentity {
  if (name === null) return { product: null, kind: null, words: [] };
  let identity = identified.get(name);
  if (identity === undefined) {
    identity = identifyUncached(name);
    if (identified.size > 50_000) identified.clear();
    identified.set(name, identity);
  }
  return identity;
}

function identifyUncached(name: string): ServiceIdentity {
  const folded = foldText(name);
  const squashed = folded.replace(/ /g, '');
  let best: { product: Product; name: ProductName } | null = null;
  for (const product of products()) {
    for (const name of product.names) {
      const phrase = name.folded;
      const found = containsPhrase(folded, phrase) || (phrase.length >= 6 && squashed.includes(phrase.replace(/ /g, '')));
      if (found && (best === null || phrase.length > best.name.folded.length)) best = { product, name };
    }
  }
  if (best !== null) return { product: best.product.key, kind: best.product.kind, words: folded.split(' '), brand: best.product.brand, found: best.name.display };
  for (const [phrase, kind] of CLASS_WORDS) {
    if (containsPhrase(folded, phrase)) return { product: null, kind, words: folded.split(' ') };
  }
  return { product: null, kind: null, words: folded === '' ? [] : folded.split(' ') };
}

/**
 * Log Bayes factor that two service names describe the same treatment:
 * same product +3, a class word against a product of that class +1.5, two brands of one class
 * +0.3, known but different products -3, otherwise shared words +1 or nothing.
 */
const NO_EVIDENCE = Object.freeze({ logBf: 0, similarity: 0 });
const SAME_PRODUCT = Object.freeze({ logBf: 3, similarity: 1 });
const CLASS_AND_PRODUCT = Object.freeze({ logBf: 1.5, similarity: 0.8 });
const BRANDS_OF_ONE_CLASS = Object.freeze({ logBf: 0.3, similarity: 0.5 });
const DIFFERENT_PRODUCTS = Object.freeze({ logBf: -3, similarity: 0 });
const SHARED_WORD = Object.freeze({ logBf: 1, similarity: 0.6 });
const NOTHING_SHARED = Object.freeze({ logBf: 0, similarity: 0.2 });

// The answers are shared constants: the transactions matcher asks for millions of pairs.
export function serviceEvidence(a: ServiceIdentity, b: ServiceIdentity): { readonly logBf: number; readonly similarity: number } {
  if (a.words.length === 0 || b.words.length === 0) return NO_EVIDENCE;
  if (a.product !== null && a.product === b.product) return SAME_PRODUCT;
  if (a.kind !== null && a.kind === b.kind) {
    if (a.product === null || b.product === null) return CLASS_AND_PRODUCT;
    return BRANDS_OF_ONE_CLASS;
  }
  if (a.kind !== null && b.kind !== null) return DIFFERENT_PRODUCTS;
  const shared = a.words.some((word) => word.length > 2 && b.words.includes(word));
  return shared ? SHARED_WORD : NOTHING_SHARED;
}
