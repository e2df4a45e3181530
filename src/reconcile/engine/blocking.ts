// Blocking: find, for each incoming record, the few practice records worth comparing in full,
// without comparing every pair. Every record emits many keys (phonetic name codes, date-of-birth
// pieces, phone, email, postcode + initial, ...); a practice record is a candidate when it shares
// ANY key (the union of blocks keeps recall near 100%), and candidates are ranked by the summed
// rarity (inverse block size) of the keys they share, so only the best `limit` go on to scoring.
import { phoneticCodes, type PreparedPerson } from './prepare.js';
import { mailboxName, type NameValue } from './compare.js';

function firstLetter(name: NameValue | null): string {
  return name?.joined[0] ?? '';
}

function firstCode(name: NameValue | null): string | null {
  const token = name?.tokens[0];
  if (token === undefined) return null;
  return phoneticCodes(token)[0] ?? null;
}

/** Every blocking key of one prepared person. Keys are namespaced strings ("d:19840928"). */
export function blockingKeys(person: PreparedPerson): string[] {
  const keys = new Set<string>();
  const names = [person.given, person.surname, ...person.otherSurnames];
  for (const name of names) {
    if (name === null) continue;
    for (const token of name.tokens) {
      if (token.length < 2) continue;
      for (const code of phoneticCodes(token)) keys.add(`n:${code}`);
      // Typos in the first letters change the phonetic code; the word's end survives them.
      if (token.length >= 5) keys.add(`t:${token.slice(-4)}`);
    }
  }
  for (const group of person.givenGroups) keys.add(`g:${group}`);
  // Surname code + given initial, in both orientations so a swapped first/last name still meets.
  const surnames = [person.surname, ...person.otherSurnames];
  for (const surname of surnames) {
    const surnameCode = firstCode(surname);
    if (surnameCode !== null) keys.add(`sg:${surnameCode}|${firstLetter(person.given)}`);
  }
  const givenCode = firstCode(person.given);
  if (givenCode !== null && person.surname !== null) keys.add(`sg:${givenCode}|${firstLetter(person.surname)}`);
  // The other reading of a whole name ("Dang Thi Lan": surname Dang) meets its patient the same way.
  const other = person.otherReading;
  const otherSurnameCode = firstCode(other?.surname ?? null);
  if (other !== null && otherSurnameCode !== null) keys.add(`sg:${otherSurnameCode}|${firstLetter(other.given)}`);

  for (const date of person.dob) {
    const year = date.slice(0, 4);
    const month = date.slice(4, 6);
    const day = date.slice(6, 8);
    keys.add(`d:${date}`);
    keys.add(`dym:${year}${month}`);
    keys.add(`dmd:${month}${day}`);
    keys.add(`dyd:${year}${day}`);
    keys.add(`dsw:${year}${month < day ? month + day : day + month}`);
  }
  for (const phone of person.phones) keys.add(`ph:${phone.last7}`);
  for (const email of person.emails) {
    keys.add(`e:${email.canonical}`);
    const mailbox = mailboxName(email);
    if (mailbox.length >= 5) keys.add(`el:${mailbox}`);
  }
  const { postcode, number, words } = person.address;
  if (postcode !== null) {
    keys.add(`zg:${postcode}|${firstLetter(person.given)}`);
    keys.add(`zs:${postcode}|${firstLetter(person.surname)}`);
  }
  if (number !== null && words[0] !== undefined) {
    const code = phoneticCodes(words[0])[0];
    if (code !== undefined) keys.add(`a:${number}|${code}`);
  }
  for (const id of person.memberIds) keys.add(`m:${id}`);
  return [...keys];
}

export interface BlockIndex {
  readonly size: number;
  readonly blocks: ReadonlyMap<string, Int32Array>;
}

/** Inverted index key -> practice record positions. */
export function buildBlockIndex(practice: readonly PreparedPerson[]): BlockIndex {
  const lists = new Map<string, number[]>();
  practice.forEach((person, index) => {
    for (const key of blockingKeys(person)) {
      const list = lists.get(key);
      if (list === undefined) lists.set(key, [index]);
      else list.push(index);
    }
  });
  const blocks = new Map<string, Int32Array>();
  for (const [key, list] of lists) blocks.set(key, Int32Array.from(list));
  return { size: practice.length, blocks };
}

export interface CandidateSearch {
  /** Candidates kept per incoming record, best-ranked first. */
  limit: number;
  /**
   * Blocks larger than this are skipped: a key shared by a fifth of the practice ("n:JN", John)
   * finds nobody in particular and would only cost time.
   */
  maxBlockSize: number;
}

export function defaultCandidateSearch(practiceSize: number): CandidateSearch {
  return { limit: 8, maxBlockSize: Math.max(200, Math.ceil(practiceSize * 0.04)) };
}

/**
 * The `limit` best-scoring positions, best first (ties: lower position first), without sorting
 * every touched record: a record with a common name touches thousands.
 */
function topByScore(touched: Int32Array, count: number, scores: Float64Array, limit: number): number[] {
  const best: number[] = [];
  const better = (a: number, b: number): boolean =>
    (scores[a] as number) > (scores[b] as number) || ((scores[a] as number) === (scores[b] as number) && a < b);
  for (let i = 0; i < count; i += 1) {
    const position = touched[i] as number;
    if (best.length === limit && !better(position, best[limit - 1] as number)) continue;
    let at = best.length === limit ? limit - 1 : best.length;
    if (best.length < limit) best.push(position);
    while (at > 0 && better(position, best[at - 1] as number)) {
      best[at] = best[at - 1] as number;
      at -= 1;
    }
    best[at] = position;
  }
  return best;
}

/** Reusable scratch space so a run of many queries allocates once. */
export class CandidateFinder {
  private readonly scores: Float64Array;
  private readonly touched: Int32Array;
  comparedBlocks = 0;

  constructor(private readonly index: BlockIndex, private readonly search: CandidateSearch) {
    this.scores = new Float64Array(index.size);
    this.touched = new Int32Array(index.size);
  }

  /** Practice positions to compare with this incoming record, most promising first. */
  find(person: PreparedPerson): number[] {
    let touchedCount = 0;
    const { scores, touched } = this;
    for (const key of blockingKeys(person)) {
      const block = this.index.blocks.get(key);
      if (block === undefined || block.length > this.search.maxBlockSize) continue;
      this.comparedBlocks += 1;
      const weight = Math.log(1 + this.index.size / block.length);
      for (let i = 0; i < block.length; i += 1) {
        const position = block[i] as number;
        if (scores[position] === 0) touched[touchedCount++] = position;
        scores[position] = (scores[position] as number) + weight;
      }
    }
    const kept = topByScore(touched, touchedCount, scores, this.search.limit);
    for (let i = 0; i < touchedCount; i += 1) scores[touched[i] as number] = 0;
    return kept;
  }
}
