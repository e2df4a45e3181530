// A second synthetic generator, for calibration: a practice and an export whose only difficulty is
// either typos (the "typo-only" mode) or typos plus look-alikes that are NOT the patient and that
// no email or phone tells apart (the "look-alike" mode):
//   mother/daughter  same surname, street, town, postcode and landline as a patient; another
//                    first name; born 24-28 years earlier or later; no email
//   twin             same surname, street, town, postcode and birth date as a patient; another
//                    first name; no email, no phone
// Every export row is in one column layout (first/last name, DOB, phone, email, address, zip), no
// gender column. True matches carry typos only: one or two edits in a name, one or two slips in the
// date of birth, a phone left out, a missing email, address or postcode. Deterministic
// per seed. Documented in docs/reconciliation.md ("Calibration").
import { compareGivenNames, GIVEN_LEVELS } from '../../src/reconcile/engine/compare.js';
import type { PracticePatient } from '../../src/reconcile/engine/engine.js';
import { emptyRecord } from '../../src/reconcile/engine/fields.js';
import { preparePerson } from '../../src/reconcile/engine/prepare.js';
import { seededRandom, typo, type Random, type SyntheticSplit } from './synthetic.js';

const GIVEN_F = ['Olivia', 'Emma', 'Charlotte', 'Amelia', 'Sophia', 'Isabella', 'Ava', 'Mia', 'Evelyn', 'Harper',
  'Camila', 'Gianna', 'Abigail', 'Luna', 'Ella', 'Elizabeth', 'Sofia', 'Emily', 'Avery', 'Mila', 'Scarlett',
  'Eleanor', 'Madison', 'Layla', 'Penelope', 'Aria', 'Chloe', 'Grace', 'Ellie', 'Nora', 'Hazel', 'Zoey',
  'Riley', 'Victoria', 'Lily', 'Aurora', 'Violet', 'Nova', 'Hannah', 'Emilia', 'Zoe', 'Stella', 'Everly',
  'Isla', 'Leah', 'Lillian', 'Addison', 'Willow', 'Lucy', 'Paisley', 'Brenda', 'Donna', 'Sandra', 'Carol',
  'Ruth', 'Sharon', 'Michelle', 'Laura', 'Sarah', 'Kimberly', 'Deborah', 'Jessica', 'Shirley', 'Cynthia',
  'Angela', 'Melissa', 'Amy', 'Anna', 'Rebecca', 'Virginia', 'Kathleen', 'Pamela', 'Martha', 'Debra'];
const SURNAMES = ['Okonkwo', 'Halloran', 'Vasquez', 'Lindgren', 'Tanaka', 'Moreau', 'Brandt', 'Castillo',
  'Delgado', 'Ferreira', 'Gallagher', 'Horvath', 'Ibrahim', 'Jansen', 'Kowalczyk', 'Larsen', 'Mancini',
  'Novak', 'Ortega', 'Petersen', 'Quinn', 'Romero', 'Sandoval', 'Thornton', 'Ueda', 'Valdez', 'Whitfield',
  'Xiong', 'Yilmaz', 'Zamora', 'Abbott', 'Barrett', 'Chambers', 'Dalton', 'Ellison', 'Fleming', 'Garner',
  'Hensley', 'Ingram', 'Jennings', 'Keller', 'Lambert', 'Mercer', 'Norris', 'Osborne', 'Pruitt', 'Ramsey',
  'Sutton', 'Tucker', 'Vaughn', 'Walsh', 'Yates', 'Nguyen', 'Smith', 'Garcia', 'Johnson', 'Lee', 'Brown'];
const STREETS = ['Alder', 'Birchwood', 'Cypress', 'Dogwood', 'Evergreen', 'Fairview', 'Glenwood', 'Harbor',
  'Ironwood', 'Jasmine', 'Kingsley', 'Laurel', 'Mission', 'Northgate', 'Orchard', 'Pinecrest'];
const TOWNS: readonly [string, string, string][] = [['Tempe', 'AZ', '852'], ['Plano', 'TX', '750'],
  ['Tampa', 'FL', '336'], ['Irvine', 'CA', '926'], ['Boulder', 'CO', '803'], ['Raleigh', 'NC', '276']];

interface Person {
  id: string;
  given: string;
  surname: string;
  dob: [number, number, number];
  street: string;
  town: readonly [string, string, string];
  zip: string;
  phone: string;
  email: string | null;
}

export interface LookAlikeOptions {
  practiceSize: number;
  incomingSize: number;
  /** false: typo-only data (matches and unrelated new people); true: also mother/daughter and twin rows. */
  lookAlikes: boolean;
  /** Share of export rows that are practice patients. */
  matchedShare: number;
}

const DEFAULTS: LookAlikeOptions = { practiceSize: 1500, incomingSize: 1200, lookAlikes: true, matchedShare: 0.6 };

const pick = <T>(random: Random, values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;
const chance = (random: Random, p: number): boolean => random() < p;
const pad2 = (n: number): string => String(n).padStart(2, '0');
const digits = (random: Random, n: number): string => Array.from({ length: n }, () => String(Math.floor(random() * 10))).join('');

function newPerson(random: Random, id: string): Person {
  const given = pick(random, GIVEN_F);
  const surname = pick(random, SURNAMES);
  const town = pick(random, TOWNS);
  return {
    id, given, surname,
    dob: [1950 + Math.floor(random() * 55), 1 + Math.floor(random() * 12), 1 + Math.floor(random() * 28)],
    street: `${1 + Math.floor(random() * 9000)} ${pick(random, STREETS)} ${pick(random, ['St', 'Ave', 'Rd', 'Ln'])}`,
    town, zip: town[2] + digits(random, 2), phone: `${2 + Math.floor(random() * 7)}${digits(random, 9)}`,
    email: chance(random, 0.7) ? `${given}.${surname}${Math.floor(random() * 90) + 10}@example.com`.toLowerCase() : null,
  };
}

function practicePatient(person: Person): PracticePatient {
  const [y, m, d] = person.dob;
  return {
    id: person.id, firstName: person.given, lastName: person.surname, dateOfBirth: `${y}-${pad2(m)}-${pad2(d)}`,
    email: person.email, phoneNumber: `+1${person.phone}`,
    address: { line1: person.street, city: person.town[0], state: person.town[1], postalCode: person.zip, country: 'US' },
  };
}

/** One digit of the date wrong, as a keying slip makes it. */
function dobTypo(random: Random, [y, m, d]: [number, number, number]): [number, number, number] {
  const which = Math.floor(random() * 3);
  if (which === 0) return [y + (chance(random, 0.5) ? 1 : -1), m, d];
  if (which === 1) return [y, m === 12 ? 11 : m + 1, d];
  return [y, m, d === 28 ? 18 : d + 1];
}

interface RowParts {
  given: string; surname: string; dob: [number, number, number] | null; phone: string | null; email: string | null;
  street: string | null; town: string | null; zip: string | null;
}

function row(parts: RowParts): Record<string, unknown> {
  const dob = parts.dob === null ? '' : `${pad2(parts.dob[1])}/${pad2(parts.dob[2])}/${parts.dob[0]}`;
  const phone = parts.phone === null ? '' : `(${parts.phone.slice(0, 3)}) ${parts.phone.slice(3, 6)}-${parts.phone.slice(6)}`;
  return {
    'First Name': parts.given, 'Last Name': parts.surname, 'DOB': dob, 'Phone': phone, 'Email': parts.email ?? '',
    'Address': parts.street ?? '', 'City': parts.town ?? '', 'Zip': parts.zip ?? '',
  };
}

/** The patient's own row from another system: typos only. */
function matchRow(random: Random, person: Person): Record<string, unknown> {
  const given = chance(random, 0.08) ? typo(random, typo(random, person.given)) : chance(random, 0.15) ? typo(random, person.given) : person.given;
  const surname = chance(random, 0.12) ? typo(random, person.surname) : person.surname;
  const roll = random();
  const dob = roll < 0.1 ? null : roll < 0.16 ? dobTypo(random, person.dob) : roll < 0.2 ? dobTypo(random, dobTypo(random, person.dob)) : person.dob;
  const addressMissing = chance(random, 0.15);
  return row({
    given, surname, dob,
    phone: chance(random, 0.35) ? null : person.phone,
    email: chance(random, 0.5) ? null : person.email,
    street: addressMissing ? null : person.street,
    town: addressMissing ? null : person.town[0],
    zip: chance(random, 0.1) ? null : person.zip,
  });
}

function givenNameOf(name: string): ReturnType<typeof preparePerson>['given'] {
  const record = emptyRecord();
  record.firstName = name;
  return preparePerson(record).given;
}

/**
 * A first name that is really another name: not one already used by that family, and not a
 * nickname, typo or near-spelling of one (twins are not called Elizabeth and Ellie).
 */
function otherGivenName(random: Random, taken: ReadonlySet<string>): string {
  const takenNames = [...taken].map(givenNameOf);
  for (;;) {
    const given = pick(random, GIVEN_F);
    const candidate = givenNameOf(given);
    if (takenNames.every((other) => compareGivenNames(candidate, other).level === GIVEN_LEVELS - 1)) return given;
  }
}

/** Mode "look-alike" or "typo-only" (see the top of the file). truth[i] is the patient's id, or null. */
export function generateLookAlikeSplit(seed: number, options: Partial<LookAlikeOptions> = {}): SyntheticSplit {
  const settings = { ...DEFAULTS, ...options };
  const random = seededRandom(seed);
  const people = Array.from({ length: settings.practiceSize }, (_, i) => newPerson(random, `la_${String(i + 1).padStart(6, '0')}`));
  // First names already used at an address or a birth date of a surname: a look-alike takes another.
  const namesAt = new Map<string, Set<string>>();
  const remember = (key: string, given: string): void => {
    const set = namesAt.get(key) ?? new Set<string>();
    set.add(given);
    namesAt.set(key, set);
  };
  for (const person of people) {
    remember(`${person.surname}|${person.street}`, person.given);
    remember(`${person.surname}|${person.dob.join('-')}`, person.given);
  }
  const incoming: Record<string, unknown>[] = [];
  const truth: (string | null)[] = [];
  const kinds: string[] = [];
  for (let i = 0; i < settings.incomingSize; i += 1) {
    const source = pick(random, people);
    if (chance(random, settings.matchedShare)) {
      incoming.push(matchRow(random, source));
      truth.push(source.id);
      kinds.push('match');
      continue;
    }
    const roll = random();
    if (settings.lookAlikes && roll < 0.4) {
      const taken = namesAt.get(`${source.surname}|${source.street}`) ?? new Set<string>();
      const years = (24 + Math.floor(random() * 5)) * (source.dob[0] > 1975 ? -1 : 1);
      incoming.push(row({
        given: otherGivenName(random, taken), surname: source.surname,
        dob: [source.dob[0] + years, 1 + Math.floor(random() * 12), 1 + Math.floor(random() * 28)],
        phone: source.phone, email: null, street: source.street, town: source.town[0], zip: source.zip,
      }));
      kinds.push('mother-daughter');
    } else if (settings.lookAlikes && roll < 0.7) {
      const taken = namesAt.get(`${source.surname}|${source.dob.join('-')}`) ?? new Set<string>();
      incoming.push(row({
        given: otherGivenName(random, taken), surname: source.surname, dob: [...source.dob],
        phone: null, email: null, street: source.street, town: source.town[0], zip: source.zip,
      }));
      kinds.push('twin');
    } else {
      const stranger = newPerson(random, 'none');
      incoming.push(row({
        given: stranger.given, surname: stranger.surname, dob: stranger.dob, phone: stranger.phone,
        email: stranger.email, street: stranger.street, town: stranger.town[0], zip: stranger.zip,
      }));
      kinds.push('new');
    }
    truth.push(null);
  }
  const mode = settings.lookAlikes ? 'look-alike' : 'typo-only';
  return { name: `${mode}-${seed}`, practice: people.map(practicePatient), incoming, truth, kinds };
}
