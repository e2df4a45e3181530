// Med-spa service and product vocabulary: brand and generic names mapped to one product, and
// products grouped into classes, so "onabotulinumtoxinA" on a loyalty redemption finds the
// practice's "Botox - Forehead Lines" appointment and "Juvederm" finds "HA filler".
import { foldText } from './text.js';

interface Product {
  key: string;
  /** Class of treatment: products of one class can stand in for each other on a vague export. */
  kind: string;
  /** Folded phrases; the longest phrase found in a service name wins. */
  phrases: readonly string[];
}

const PRODUCTS: readonly Product[] = [
  { key: 'botox', kind: 'neurotoxin', phrases: ['botox', 'onabotulinumtoxina', 'onabotulinum', 'botox cosmetic'] },
  { key: 'dysport', kind: 'neurotoxin', phrases: ['dysport', 'abobotulinumtoxina'] },
  { key: 'xeomin', kind: 'neurotoxin', phrases: ['xeomin', 'incobotulinumtoxina'] },
  { key: 'jeuveau', kind: 'neurotoxin', phrases: ['jeuveau', 'prabotulinumtoxina', 'newtox'] },
  { key: 'daxxify', kind: 'neurotoxin', phrases: ['daxxify', 'daxibotulinumtoxina'] },
  { key: 'juvederm', kind: 'filler', phrases: ['juvederm', 'voluma', 'volbella', 'vollure', 'volux', 'skinvive', 'juvederm ultra'] },
  { key: 'restylane', kind: 'filler', phrases: ['restylane', 'lyft', 'kysse', 'defyne', 'refyne', 'contour', 'silk'] },
  { key: 'rha', kind: 'filler', phrases: ['rha', 'rha redensity'] },
  { key: 'sculptra', kind: 'filler', phrases: ['sculptra', 'poly l lactic acid', 'plla'] },
  { key: 'radiesse', kind: 'filler', phrases: ['radiesse', 'calcium hydroxylapatite'] },
  { key: 'kybella', kind: 'fat-reduction', phrases: ['kybella', 'deoxycholic acid', 'deoxycholic'] },
  { key: 'coolsculpting', kind: 'fat-reduction', phrases: ['coolsculpting', 'cool sculpting', 'cryolipolysis', 'coolsculpt'] },
  { key: 'emsculpt', kind: 'body', phrases: ['emsculpt', 'em sculpt'] },
  { key: 'hydrafacial', kind: 'facial', phrases: ['hydrafacial', 'hydra facial', 'hydrodermabrasion'] },
  { key: 'laser-hair-removal', kind: 'laser', phrases: ['laser hair removal', 'lhr', 'hair removal', 'laser hair'] },
  { key: 'ipl', kind: 'laser', phrases: ['ipl', 'photofacial', 'bbl', 'broadband light', 'intense pulsed light'] },
  { key: 'resurfacing', kind: 'laser', phrases: ['laser resurfacing', 'co2', 'fraxel', 'halo', 'moxi', 'erbium'] },
  { key: 'chemical-peel', kind: 'peel', phrases: ['chemical peel', 'peel', 'vi peel', 'glycolic peel', 'tca peel'] },
  { key: 'microneedling', kind: 'skin', phrases: ['microneedling', 'micro needling', 'collagen induction', 'skinpen', 'morpheus8', 'rf microneedling'] },
  { key: 'prp', kind: 'skin', phrases: ['prp', 'platelet rich plasma', 'vampire facial'] },
  { key: 'latisse', kind: 'product', phrases: ['latisse', 'bimatoprost'] },
  { key: 'facial', kind: 'facial', phrases: ['facial', 'dermaplaning', 'microdermabrasion'] },
];

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
}

function containsPhrase(folded: string, phrase: string): boolean {
  return ` ${folded} `.includes(` ${phrase} `);
}

/** What a free-text service or product name refers to. */
export function identifyService(name: string | null): ServiceIdentity {
  if (name === null) return { product: null, kind: null, words: [] };
  const folded = foldText(name);
  const squashed = folded.replace(/ /g, '');
  let best: { product: Product; length: number } | null = null;
  for (const product of PRODUCTS) {
    for (const phrase of product.phrases) {
      const found = containsPhrase(folded, phrase) || (phrase.length >= 6 && squashed.includes(phrase.replace(/ /g, '')));
      if (found && (best === null || phrase.length > best.length)) best = { product, length: phrase.length };
    }
  }
  if (best !== null) return { product: best.product.key, kind: best.product.kind, words: folded.split(' ') };
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
export function serviceEvidence(a: ServiceIdentity, b: ServiceIdentity): { logBf: number; similarity: number } {
  if (a.words.length === 0 || b.words.length === 0) return { logBf: 0, similarity: 0 };
  if (a.product !== null && a.product === b.product) return { logBf: 3, similarity: 1 };
  if (a.kind !== null && a.kind === b.kind) {
    if (a.product === null || b.product === null) return { logBf: 1.5, similarity: 0.8 };
    return { logBf: 0.3, similarity: 0.5 };
  }
  if (a.kind !== null && b.kind !== null) return { logBf: -3, similarity: 0 };
  const shared = a.words.filter((word) => word.length > 2 && b.words.includes(word)).length;
  return shared > 0 ? { logBf: 1, similarity: 0.6 } : { logBf: 0, similarity: 0.2 };
}
