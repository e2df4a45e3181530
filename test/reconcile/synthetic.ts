// A synthetic med-spa data generator (made-up people, deterministic per seed) for tests and the
// engine benchmark. It produces a practice's patients, including households, twins and
// same-name strangers, and a messy export of the kind loyalty programs, point-of-sale systems
// and old EHRs send: nicknames, typos, married names, swapped names, every phone and date format,
// email plus-tags and dots, missing fields, and look-alikes that must NOT be matched.
import type { PracticeAppointment, PracticePatient } from '../../src/reconcile/engine/engine.js';

export type Random = () => number;

/** mulberry32: a tiny seeded PRNG so every run of a test sees the same data. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(random: Random, values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;
const chance = (random: Random, p: number): boolean => random() < p;
const pad2 = (n: number): string => String(n).padStart(2, '0');

// Given names with the nickname a front desk or a loyalty app might record instead.
const FEMALE: readonly [string, string[]][] = [
  ['Elizabeth', ['Liz', 'Beth', 'Betsy', 'Lizzie']], ['Katherine', ['Kate', 'Katie', 'Kathy']],
  ['Margaret', ['Maggie', 'Peggy', 'Meg']], ['Jennifer', ['Jen', 'Jenny']], ['Jessica', ['Jess']],
  ['Rebecca', ['Becky', 'Becca']], ['Victoria', ['Vicky', 'Tori']], ['Samantha', ['Sam']],
  ['Christina', ['Chris', 'Tina']], ['Patricia', ['Pat', 'Trish']], ['Alexandra', ['Alex', 'Lexi']],
  ['Deborah', ['Debbie', 'Deb']], ['Stephanie', ['Steph']], ['Kimberly', ['Kim']], ['Susan', ['Sue', 'Susie']],
  ['Maria', []], ['Sofia', []], ['Olivia', ['Liv']], ['Emma', []], ['Emily', ['Em']], ['Ava', []],
  ['Isabella', ['Bella', 'Izzy']], ['Mia', []], ['Chloe', []], ['Grace', []], ['Natalie', ['Nat']],
  ['Lauren', []], ['Ashley', []], ['Megan', []], ['Amanda', ['Mandy']], ['Nicole', ['Nikki']],
  ['Danielle', ['Dani']], ['Rachel', []], ['Priya', []], ['Mei', []], ['Aaliyah', []], ['Camila', []],
  ['Valentina', []], ['Zoe', []], ['Hannah', []], ['Abigail', ['Abby']], ['Madison', ['Maddie']],
  ['Gabrielle', ['Gabby']], ['Jacqueline', ['Jackie']], ['Caroline', ['Carrie']], ['Allison', ['Ally']],
  ['Theresa', ['Tess', 'Terri']], ['Veronica', ['Ronnie']], ['Lucia', []], ['Ximena', []], ['Anjali', []],
];
const MALE: readonly [string, string[]][] = [
  ['William', ['Bill', 'Will', 'Billy']], ['Robert', ['Bob', 'Rob', 'Bobby']], ['Michael', ['Mike', 'Mikey']],
  ['James', ['Jim', 'Jimmy']], ['Richard', ['Rick', 'Rich']], ['Thomas', ['Tom', 'Tommy']],
  ['Christopher', ['Chris']], ['Daniel', ['Dan', 'Danny']], ['Matthew', ['Matt']], ['Anthony', ['Tony']],
  ['Joseph', ['Joe', 'Joey']], ['David', ['Dave']], ['Andrew', ['Andy', 'Drew']], ['Jonathan', ['Jon']],
  ['Benjamin', ['Ben']], ['Nicholas', ['Nick']], ['Alexander', ['Alex']], ['Edward', ['Ed', 'Ted']],
  ['Carlos', []], ['Luis', []], ['Wei', []], ['Arjun', []], ['Omar', []], ['Mateo', []], ['Ethan', []],
  ['Noah', []], ['Liam', []], ['Lucas', []], ['Kevin', []], ['Brian', []], ['Jason', []], ['Ryan', []],
];
const SURNAMES: readonly string[] = [
  'Garcia', 'Smith', 'Johnson', 'Nguyen', 'Martinez', 'Brown', 'Lopez', 'Williams', 'Rodriguez', 'Kim',
  'Patel', 'Lee', 'Hernandez', 'Chen', 'Davis', 'Miller', 'Wilson', 'Anderson', 'Taylor', 'Thomas',
  'Moore', 'Jackson', 'Martin', 'Thompson', 'White', 'Harris', 'Clark', 'Lewis', 'Robinson', 'Walker',
  'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres', 'Hill', 'Flores', 'Green', 'Adams', 'Nelson',
  'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts', 'Gomez', 'Phillips', 'Evans',
  'Turner', 'Diaz', 'Parker', 'Cruz', 'Edwards', 'Collins', 'Reyes', 'Stewart', 'Morris', 'Morales',
  'Murphy', 'Cook', 'Rogers', 'Gutierrez', 'Ortiz', 'Morgan', 'Cooper', 'Peterson', 'Bailey', 'Reed',
  "O'Brien", 'McDonald', 'Van der Berg', 'Nakamura', 'Kowalski', 'Okafor', 'Schmidt', 'Rossi', 'Dubois',
  'Fitzgerald', 'Castellano', 'Abernathy', 'Lindqvist', 'Petrovic', 'Haddad', 'Mendoza', 'Alvarez',
  'Brennan', 'Whitaker', 'Sorensen', 'Takahashi', 'Oyelaran', 'Quintero', 'Villanueva', 'Kaminski',
  'Delacroix', 'Ashworth', 'Pemberton', 'Zielinski', 'Montgomery', 'Halvorsen', 'Beaumont', 'Iglesias',
];
const STREETS = ['Oak', 'Maple', 'Cedar', 'Pine', 'Elm', 'Willow', 'Lakeview', 'Sunset', 'Highland', 'Park',
  'Magnolia', 'Juniper', 'Sycamore', 'Birch', 'Hawthorne', 'Ridgecrest', 'Meadowbrook', 'Riverside', 'Canyon',
  'Bayshore', 'Primrose', 'Sagebrush', 'Larkspur', 'Foxglove'];
const STREET_TYPES: readonly [string, string][] = [['Street', 'St'], ['Avenue', 'Ave'], ['Road', 'Rd'],
  ['Drive', 'Dr'], ['Lane', 'Ln'], ['Court', 'Ct'], ['Boulevard', 'Blvd'], ['Place', 'Pl']];
const CITIES: readonly [string, string, string][] = [
  ['Scottsdale', 'AZ', '852'], ['Austin', 'TX', '787'], ['Miami', 'FL', '331'], ['San Diego', 'CA', '921'],
  ['Denver', 'CO', '802'], ['Nashville', 'TN', '372'], ['Charlotte', 'NC', '282'], ['Boise', 'ID', '837'],
  ['Portland', 'OR', '972'], ['Naperville', 'IL', '605'],
];
const DOMAINS = ['gmail.com', 'yahoo.com', 'outlook.com', 'icloud.com', 'hotmail.com', 'aol.com'];

interface Person {
  id: string;
  given: string;
  nicknames: string[];
  surname: string;
  maidenName: string | null;
  gender: 'F' | 'M';
  dob: [number, number, number];
  email: string | null;
  mobile: string | null;
  homePhone: string | null;
  street: { number: number; name: string; type: [string, string]; unit: string | null };
  city: [string, string, string];
  zip: string;
  memberId: string | null;
}

function phoneDigits(random: Random): string {
  const area = 200 + Math.floor(random() * 780);
  const exchange = 200 + Math.floor(random() * 780);
  const line = Math.floor(random() * 10_000);
  return `${area}${exchange}${String(line).padStart(4, '0')}`;
}

function emailFor(random: Random, given: string, surname: string, year: number): string {
  const g = given.toLowerCase().replace(/[^a-z]/g, '');
  const s = surname.toLowerCase().replace(/[^a-z]/g, '');
  const style = Math.floor(random() * 5);
  const local = [`${g}.${s}`, `${g}${s}`, `${g[0]}${s}`, `${g}${s}${year % 100}`, `${g}_${s}${Math.floor(random() * 90 + 10)}`][style] as string;
  return `${local}@${pick(random, DOMAINS)}`;
}

function newPerson(random: Random, id: string, overrides: Partial<Person> = {}): Person {
  const gender = overrides.gender ?? (chance(random, 0.78) ? 'F' : 'M'); // med spa clientele skew female
  const [given, nicknames] = pick(random, gender === 'F' ? FEMALE : MALE);
  const surname = overrides.surname ?? pick(random, SURNAMES);
  const year = 1950 + Math.floor(random() * 55);
  const dob: [number, number, number] = overrides.dob ?? [year, 1 + Math.floor(random() * 12), 1 + Math.floor(random() * 28)];
  const city = overrides.city ?? pick(random, CITIES);
  const person: Person = {
    id, given, nicknames, surname, maidenName: null, gender, dob,
    email: chance(random, 0.92) ? emailFor(random, given, surname, dob[0]) : null,
    mobile: chance(random, 0.9) ? phoneDigits(random) : null,
    homePhone: null,
    street: overrides.street ?? {
      number: 1 + Math.floor(random() * 9800), name: pick(random, STREETS), type: pick(random, STREET_TYPES),
      unit: chance(random, 0.15) ? `Apt ${1 + Math.floor(random() * 40)}` : null,
    },
    city,
    zip: overrides.zip ?? `${city[2]}${pad2(Math.floor(random() * 100))}`,
    memberId: chance(random, 0.3) ? `A${Math.floor(random() * 9e7 + 1e7)}` : null,
    ...overrides,
  };
  if (person.gender === 'F' && chance(random, 0.08)) {
    person.maidenName = person.surname;
    person.surname = pick(random, SURNAMES); // married since an earlier record was made
  }
  return person;
}

function toPracticePatient(person: Person): PracticePatient {
  const [y, m, d] = person.dob;
  const phone = person.mobile ?? person.homePhone;
  return {
    id: person.id,
    firstName: person.given,
    lastName: person.surname,
    dateOfBirth: `${y}-${pad2(m)}-${pad2(d)}`,
    email: person.email,
    phoneNumber: phone === null ? null : `+1${phone}`,
    gender: person.gender === 'F' ? 'female' : 'male',
    address: {
      line1: `${person.street.number} ${person.street.name} ${person.street.type[0]}`,
      line2: person.street.unit,
      city: person.city[0], state: person.city[1], postalCode: person.zip, country: 'US',
    },
    externalIds: person.memberId === null ? null : { alle: person.memberId },
  };
}

// ---------------------------------------------------------------- corruption of an export row

const KEYBOARD_NEIGHBOURS: Record<string, string> = {
  a: 'sq', b: 'vn', c: 'xv', d: 'sf', e: 'wr', f: 'dg', g: 'fh', h: 'gj', i: 'uo', j: 'hk', k: 'jl', l: 'k',
  m: 'n', n: 'bm', o: 'ip', p: 'o', q: 'wa', r: 'et', s: 'ad', t: 'ry', u: 'yi', v: 'cb', w: 'qe', x: 'zc',
  y: 'tu', z: 'x',
};

/** One keyboard typo: substitution, deletion, insertion or transposition, not on the first letter. */
export function typo(random: Random, value: string): string {
  if (value.length < 3) return value;
  const at = 1 + Math.floor(random() * (value.length - 1));
  const kind = Math.floor(random() * 4);
  const char = value[at] ?? 'a';
  const neighbour = pick(random, (KEYBOARD_NEIGHBOURS[char.toLowerCase()] ?? 'e').split(''));
  if (kind === 0) return value.slice(0, at) + neighbour + value.slice(at + 1);
  if (kind === 1) return value.slice(0, at) + value.slice(at + 1);
  if (kind === 2) return value.slice(0, at) + neighbour + value.slice(at);
  if (at + 1 >= value.length) return value.slice(0, at - 1) + char + (value[at - 1] ?? '');
  return value.slice(0, at) + (value[at + 1] ?? '') + char + value.slice(at + 2);
}

function formatPhone(random: Random, digits: string): string {
  const a = digits.slice(0, 3);
  const b = digits.slice(3, 6);
  const c = digits.slice(6);
  return pick(random, [`(${a}) ${b}-${c}`, `${a}-${b}-${c}`, `${a}.${b}.${c}`, `+1 ${a} ${b} ${c}`, `1${digits}`,
    `+1${digits}`, `${digits}`, `001 ${a} ${b} ${c}`, `1-${a}-${b}-${c}`]);
}

function formatDob(random: Random, [y, m, d]: [number, number, number], style: string): string {
  switch (style) {
    case 'us': return `${pad2(m)}/${pad2(d)}/${y}`;
    case 'us-short': return `${m}/${d}/${String(y).slice(2)}`;
    case 'eu': return `${pad2(d)}/${pad2(m)}/${y}`;
    case 'iso': return `${y}-${pad2(m)}-${pad2(d)}`;
    default: return chance(random, 0.5) ? `${y}${pad2(m)}${pad2(d)}` : `${pad2(m)}-${pad2(d)}-${y}`;
  }
}

function corruptEmail(random: Random, email: string): string {
  const [local = '', domain = ''] = email.split('@');
  const roll = random();
  if (roll < 0.25) return email.toUpperCase();
  if (roll < 0.45) return `${local}+${pick(random, ['spa', 'alle', 'promo', 'botox'])}@${domain}`;
  if (roll < 0.6 && domain === 'gmail.com') return `${local.replace(/\./g, '')}@googlemail.com`;
  if (roll < 0.72) return `${local}@${pick(random, DOMAINS.filter((other) => other !== domain))}`;
  return email;
}

interface ExportStyle {
  name: string;
  dob: string;
  build(fields: ExportFields): Record<string, unknown>;
}

interface ExportFields {
  first: string | null; last: string | null; dob: string | null; email: string | null; phone: string | null;
  street: string | null; unit: string | null; city: string | null; state: string | null; zip: string | null;
  memberId: string | null; gender: string | null;
}

const EXPORT_STYLES: readonly ExportStyle[] = [
  {
    name: 'loyalty', dob: 'us',
    build: (f) => ({ 'Member ID': f.memberId, 'First Name': f.first, 'Last Name': f.last, 'Email Address': f.email,
      'Phone': f.phone, 'Date of Birth': f.dob, 'Zip': f.zip }),
  },
  {
    name: 'pos', dob: 'us-short',
    build: (f) => ({ customer_name: f.last !== null && f.first !== null ? `${f.last}, ${f.first}` : (f.first ?? f.last),
      mobile: f.phone, email: f.email, birthdate: f.dob, address_1: f.street, city: f.city, state: f.state, postal_code: f.zip }),
  },
  {
    name: 'ehr', dob: 'iso',
    build: (f) => ({ fname: f.first, lname: f.last, DOB: f.dob, Sex: f.gender, 'Cell': f.phone, 'E-mail': f.email,
      street: f.street, address_2: f.unit, town: f.city, province: f.state, postcode: f.zip }),
  },
  {
    name: 'intl', dob: 'eu',
    build: (f) => ({ given_name: f.first, family_name: f.last, date_of_birth: f.dob, email: f.email, phone_number: f.phone,
      'Address Line 1': f.street, suburb: f.city, state: f.state, ZIP: f.zip }),
  },
  {
    name: 'camel', dob: 'other',
    build: (f) => ({ firstName: f.first, lastName: f.last, dateOfBirth: f.dob, email: f.email, phoneNumber: f.phone,
      address: { line1: f.street, line2: f.unit, city: f.city, state: f.state, postalCode: f.zip }, externalIds: f.memberId ? { alle: f.memberId } : undefined }),
  },
];

export interface ExportOptions {
  /** Probability of each corruption (defaults are deliberately harsher than most real exports). */
  nickname: number; givenTypo: number; surnameTypo: number; swapNames: number; dobSwap: number; dobTypo: number;
  dobMissing: number; emailMissing: number; phoneMissing: number; phoneTypo: number; addressMissing: number;
  emailVariant: number;
}

const DEFAULT_EXPORT: ExportOptions = {
  nickname: 0.2, givenTypo: 0.08, surnameTypo: 0.08, swapNames: 0.03, dobSwap: 0.03, dobTypo: 0.03,
  dobMissing: 0.12, emailMissing: 0.2, phoneMissing: 0.2, phoneTypo: 0.05, addressMissing: 0.4, emailVariant: 0.5,
};

function exportRow(random: Random, person: Person, style: ExportStyle, options: ExportOptions): Record<string, unknown> {
  let first: string = person.given;
  if (person.nicknames.length > 0 && chance(random, options.nickname)) first = pick(random, person.nicknames);
  else if (chance(random, options.givenTypo)) first = typo(random, first);
  let last: string = person.surname;
  // An older system may still hold the maiden name.
  if (person.maidenName !== null && chance(random, 0.5)) last = person.maidenName;
  if (chance(random, options.surnameTypo)) last = typo(random, last);
  if (chance(random, 0.3)) { first = first.toUpperCase(); last = last.toUpperCase(); }
  if (chance(random, options.swapNames)) [first, last] = [last, first];

  let dob: [number, number, number] = [...person.dob];
  if (chance(random, options.dobSwap) && dob[2] <= 12) dob = [dob[0], dob[2], dob[1]];
  else if (chance(random, options.dobTypo)) dob = [dob[0], dob[1], Math.max(1, Math.min(28, dob[2] + (chance(random, 0.5) ? 1 : 10)))];
  const dobText = chance(random, options.dobMissing) ? null : formatDob(random, dob, style.dob);

  let email = person.email;
  if (email !== null && chance(random, options.emailVariant)) email = corruptEmail(random, email);
  if (chance(random, options.emailMissing)) email = null;
  let phoneDigitsValue = chance(random, 0.5) ? (person.mobile ?? person.homePhone) : (person.homePhone ?? person.mobile);
  if (phoneDigitsValue !== null && chance(random, options.phoneTypo)) {
    const at = 3 + Math.floor(random() * 7);
    phoneDigitsValue = phoneDigitsValue.slice(0, at) + String((Number(phoneDigitsValue[at]) + 1) % 10) + phoneDigitsValue.slice(at + 1);
  }
  const phone = phoneDigitsValue === null || chance(random, options.phoneMissing) ? null : formatPhone(random, phoneDigitsValue);
  const addressMissing = chance(random, options.addressMissing);
  const streetType = chance(random, 0.5) ? person.street.type[0] : person.street.type[1];
  return style.build({
    first, last, dob: dobText, email, phone,
    street: addressMissing ? null : `${person.street.number} ${person.street.name} ${streetType}`,
    unit: addressMissing ? null : person.street.unit,
    city: addressMissing ? null : person.city[0],
    state: addressMissing ? null : person.city[1],
    zip: addressMissing && chance(random, 0.5) ? null : person.zip,
    memberId: chance(random, 0.7) ? person.memberId : null,
    gender: person.gender,
  });
}

// ---------------------------------------------------------------- the data set

export interface SyntheticSplit {
  name: string;
  practice: PracticePatient[];
  incoming: Record<string, unknown>[];
  truth: (string | null)[];
  /** Why each incoming row exists: "match", "new", "relative", "twin", "namesake". */
  kinds: string[];
}

export interface SyntheticOptions {
  practiceSize: number;
  incomingSize: number;
  /** Share of incoming rows that are practice patients (the rest are new people and look-alikes). */
  matchedShare: number;
  /** Share of practice patients living with relatives also in the practice. */
  householdShare: number;
  export: Partial<ExportOptions>;
}

const DEFAULT_SYNTHETIC: SyntheticOptions = {
  practiceSize: 2000, incomingSize: 1500, matchedShare: 0.7, householdShare: 0.25, export: {},
};

/**
 * Builds a practice and an incoming export. Look-alikes that must stay unmatched:
 * relatives (same surname, address, home phone; different given name and DOB), twins of practice
 * patients (same surname, address and DOB; different given name and email) and namesakes
 * (same first and last name, nothing else in common).
 */
export function generateSyntheticSplit(seed: number, options: Partial<SyntheticOptions> = {}): SyntheticSplit {
  const settings = { ...DEFAULT_SYNTHETIC, ...options };
  const exportOptions = { ...DEFAULT_EXPORT, ...settings.export };
  const random = seededRandom(seed);
  const people: Person[] = [];
  let nextId = 1;
  const newId = (): string => `pt_${String(nextId++).padStart(6, '0')}`;

  while (people.length < settings.practiceSize) {
    const person = newPerson(random, newId());
    people.push(person);
    if (chance(random, settings.householdShare) && people.length < settings.practiceSize - 3) {
      // A household: a shared landline, the same address and surname, relatives of other ages; sometimes twins.
      person.homePhone = phoneDigits(random);
      const members = 1 + Math.floor(random() * 2);
      for (let i = 0; i < members; i += 1) {
        const twin = chance(random, 0.3);
        const dob: [number, number, number] = twin ? [...person.dob]
          : [person.dob[0] + (chance(random, 0.5) ? 25 : -25) + Math.floor(random() * 5), 1 + Math.floor(random() * 12), 1 + Math.floor(random() * 28)];
        if (dob[0] > 2012) dob[0] = 2012 - Math.floor(random() * 10);
        const relative = newPerson(random, newId(), {
          surname: person.surname, street: person.street, city: person.city, zip: person.zip, dob,
        });
        relative.surname = person.surname;
        relative.maidenName = null;
        relative.homePhone = person.homePhone;
        if (relative.given === person.given) {
          relative.given = relative.gender === 'F' ? 'Natalie' : 'Oliver';
          relative.nicknames = [];
        }
        if (chance(random, 0.4)) relative.email = null;
        people.push(relative);
      }
    }
  }
  people.length = settings.practiceSize;

  const incoming: Record<string, unknown>[] = [];
  const truth: (string | null)[] = [];
  const kinds: string[] = [];
  for (let i = 0; i < settings.incomingSize; i += 1) {
    const style = pick(random, EXPORT_STYLES);
    const source = pick(random, people);
    if (chance(random, settings.matchedShare)) {
      incoming.push(exportRow(random, source, style, exportOptions));
      truth.push(source.id);
      kinds.push('match');
      continue;
    }
    const roll = random();
    let stranger: Person;
    let kind: string;
    if (roll < 0.2) {
      // A relative not in the practice: same surname, address and landline, another first name and generation.
      stranger = newPerson(random, 'none', {
        surname: source.surname, street: source.street, city: source.city, zip: source.zip,
        dob: [source.dob[0] + (source.dob[0] < 1980 ? 27 : -27), 1 + Math.floor(random() * 12), 1 + Math.floor(random() * 28)],
      });
      stranger.surname = source.surname;
      stranger.homePhone = source.homePhone ?? source.mobile;
      stranger.mobile = null;
      kind = 'relative';
    } else if (roll < 0.35) {
      // A twin not in the practice: same surname, address and date of birth, own first name and email.
      stranger = newPerson(random, 'none', {
        surname: source.surname, street: source.street, city: source.city, zip: source.zip, dob: [...source.dob],
      });
      stranger.surname = source.surname;
      kind = 'twin';
    } else if (roll < 0.5) {
      // A namesake: same first and last name, otherwise a different person.
      stranger = newPerson(random, 'none');
      stranger.given = source.given;
      stranger.nicknames = source.nicknames;
      stranger.surname = source.surname;
      stranger.maidenName = null;
      kind = 'namesake';
    } else {
      stranger = newPerson(random, 'none');
      kind = 'new';
    }
    // A look-alike must not share a first name with anyone of that surname at that address or birth date.
    const taken = new Set(people
      .filter((other) => other.surname === stranger.surname && (other.street === stranger.street || other.dob.join() === stranger.dob.join()))
      .map((other) => other.given));
    if (kind !== 'namesake' && taken.has(stranger.given)) {
      const pool = (stranger.gender === 'F' ? FEMALE : MALE).filter(([name]) => !taken.has(name));
      [stranger.given, stranger.nicknames] = pick(random, pool);
    }
    stranger.maidenName = null;
    incoming.push(exportRow(random, stranger, style, { ...exportOptions, nickname: 0, swapNames: 0 }));
    truth.push(null);
    kinds.push(kind);
  }
  return { name: `synthetic-${seed}`, practice: people.map(toPracticePatient), incoming, truth, kinds };
}

// ---------------------------------------------------------------- appointments

export interface SyntheticAppointmentSplit {
  practice: PracticeAppointment[];
  incoming: Record<string, unknown>[];
  truth: (string | null)[];
}

const SERVICES: readonly { practice: string; category: string; priceCents: number; export: string[] }[] = [
  { practice: 'Botox - Forehead Lines', category: 'Injectables', priceCents: 45_000, export: ['BOTOX Cosmetic', 'onabotulinumtoxinA', 'Botox 20u'] },
  { practice: 'Juvederm Voluma Cheek Filler', category: 'Injectables', priceCents: 85_000, export: ['JUVÉDERM VOLUMA XC', 'Juvederm', 'HA filler'] },
  { practice: 'Dysport Treatment', category: 'Injectables', priceCents: 40_000, export: ['Dysport', 'abobotulinumtoxinA'] },
  { practice: 'Xeomin', category: 'Injectables', priceCents: 38_000, export: ['XEOMIN', 'incobotulinumtoxinA'] },
  { practice: 'Restylane Lyft', category: 'Injectables', priceCents: 75_000, export: ['Restylane', 'RESTYLANE LYFT'] },
  { practice: 'Kybella Double Chin', category: 'Injectables', priceCents: 120_000, export: ['KYBELLA', 'deoxycholic acid'] },
  { practice: 'CoolSculpting Abdomen', category: 'Body', priceCents: 150_000, export: ['CoolSculpting', 'cryolipolysis'] },
  { practice: 'HydraFacial Deluxe', category: 'Facials', priceCents: 25_000, export: ['Hydrafacial', 'Hydra Facial'] },
  { practice: 'Laser Hair Removal - Underarm', category: 'Laser', priceCents: 20_000, export: ['LHR underarm', 'laser hair removal'] },
  { practice: 'Chemical Peel (Medium)', category: 'Facials', priceCents: 18_000, export: ['chemical peel', 'VI Peel'] },
  { practice: 'Microneedling with PRP', category: 'Skin', priceCents: 60_000, export: ['microneedling', 'collagen induction therapy'] },
];

/**
 * Completed appointments for a synthetic practice and the loyalty/POS rows that refer to them:
 * redemptions post 0..10 days later, name the product by brand or generic name, and carry either
 * the sale amount or a reward worth a fraction of it. Some rows point to no appointment.
 */
export function generateSyntheticAppointments(seed: number, appointmentCount = 600, rowCount = 400): SyntheticAppointmentSplit {
  const random = seededRandom(seed);
  const patients = generateSyntheticSplit(seed + 1, { practiceSize: Math.ceil(appointmentCount / 2), incomingSize: 0 }).practice;
  const practice: PracticeAppointment[] = [];
  for (let i = 0; i < appointmentCount; i += 1) {
    const patient = pick(random, patients);
    const service = pick(random, SERVICES);
    const day = new Date(Date.UTC(2024, 0, 1) + Math.floor(random() * 300) * 86_400_000);
    day.setUTCHours(9 + Math.floor(random() * 8));
    practice.push({
      id: `ap_${String(i + 1).padStart(6, '0')}`, patient, startTime: day.toISOString(), serviceName: service.practice,
      serviceCategory: service.category, priceCents: service.priceCents, status: 'COMPLETED',
    });
  }
  const incoming: Record<string, unknown>[] = [];
  const truth: (string | null)[] = [];
  for (let i = 0; i < rowCount; i += 1) {
    const real = chance(random, 0.8);
    const appointment = pick(random, practice);
    const service = SERVICES.find((s) => s.practice === appointment.serviceName) ?? pick(random, SERVICES);
    const posted = new Date(Date.parse(appointment.startTime) + Math.floor(random() * 11) * 86_400_000);
    const patient = appointment.patient;
    const reward = chance(random, 0.5);
    const amount = reward ? (appointment.priceCents ?? 0) * pick(random, [0.05, 0.1, 0.2]) / 100 : (appointment.priceCents ?? 0) / 100;
    const row: Record<string, unknown> = {
      'Member First Name': chance(random, 0.2) ? patient.firstName.slice(0, 3) : patient.firstName,
      'Member Last Name': patient.lastName,
      'Email': chance(random, 0.7) ? patient.email : null,
      'Redemption Date': `${pad2(posted.getUTCMonth() + 1)}/${pad2(posted.getUTCDate())}/${posted.getUTCFullYear()}`,
      'Product': pick(random, service.export),
      [reward ? 'Reward Amount' : 'Amount']: `$${amount.toFixed(2)}`,
    };
    if (!real) {
      // Same patient, but a treatment on a date the practice has no appointment for.
      row['Redemption Date'] = `${pad2(((posted.getUTCMonth() + 6) % 12) + 1)}/15/${posted.getUTCFullYear() - 1}`;
      truth.push(null);
    } else {
      truth.push(appointment.id);
    }
    incoming.push(row);
  }
  return { practice, incoming, truth };
}
