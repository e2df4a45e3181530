// A seeded generator of reward redemptions and point-of-sale sales with the truth between them,
// for the TRANSACTIONS matcher (src/reconcile/engine/transactions.ts). The same seed gives the
// same files, byte for byte. Made-up people and invoices only.
//
// What it makes, over `days` days (default 365):
//   sales        one line per treatment or product sold: invoice number, date (MM/DD/YYYY, so days
//                1-12 of a month read two ways), client ("Last, First", or "First Last", 10% blank),
//                item as the POS names it (mostly the generic name: "onabotulinumtoxinA 40u",
//                "HA filler - Juvederm Voluma 1 syringe"), amount (unit prices x units).
//   redemptions  one line per reward, as a loyalty program exports it: redemption id, date
//                (ISO), member name (typos 8%, nicknames 5%, blank 8%), product by brand
//                ("BOTOX Cosmetic", "JUVÉDERM VOLUMA XC"), reward amount:
//                  - 60% a percent of the sale (10, 15, 20 or 25%), 40% a fixed reward ($20 - $100),
//                  - 25% less a processing fee of 0.5-1.5%, 15% rounded to whole dollars;
//                posted 0 days after the sale (40%), 1-7 days (40%) or 8-30 days (20%).
// Decoys, which must not take a redemption from its sale:
//   - same amount, other day: another client's sale of the same product and amount a few days
//     away, inside the lag window (12% of redemptions),
//   - same patient, two treatments: the client had another sale (another product, or the same
//     product at another amount) in the window (12%),
//   - redemptions with no sale: their sale is not in the sales file (share `orphanShare`, 8%),
//   - sales with no redemption: everything else in the sales file.
import { seededRandom, type Random } from '../test/reconcile/synthetic.js';

export interface TransactionSplit {
  sales: Record<string, string>[];
  redemptions: Record<string, string>[];
  /** truth[redemption index] = the sale index it discounted, or null (its sale is not in the file). */
  truth: (number | null)[];
}

export interface TransactionGeneratorOptions {
  redemptions: number;
  /** Sales in the file: the redeemed ones, the decoys and unredeemed sales (at least the redeemed ones). */
  sales: number;
  days: number;
  orphanShare: number;
}

const GIVEN = ['Maria', 'Jennifer', 'Ashley', 'Jessica', 'Sarah', 'Amanda', 'Emily', 'Elizabeth', 'Megan', 'Lauren', 'Rachel', 'Nicole', 'Stephanie', 'Katherine', 'Samantha', 'Priya', 'Mei', 'Thi', 'Sofia', 'Camila', 'Olivia', 'Hannah', 'Grace', 'Chloe', 'Natalie', 'Victoria', 'Rebecca', 'Danielle', 'Michelle', 'Laura', 'Kimberly', 'Christina', 'Andrea', 'Monica', 'Vanessa', 'Gabriela', 'Aisha', 'Fatima', 'Yuki', 'Ingrid', 'Robert', 'Michael', 'David', 'James', 'Daniel'];
const NICKNAMES: Record<string, string> = { Elizabeth: 'Liz', Jennifer: 'Jen', Katherine: 'Kate', Samantha: 'Sam', Rebecca: 'Becky', Victoria: 'Tori', Christina: 'Chris', Kimberly: 'Kim', Stephanie: 'Steph', Robert: 'Bob', Michael: 'Mike', James: 'Jim', Daniel: 'Dan', Danielle: 'Dani', Natalie: 'Nat' };
const SURNAMES = ['Garcia', 'Smith', 'Johnson', 'Nguyen', 'Patel', 'Kim', 'Lee', 'Martinez', 'Lopez', 'Brown', 'Davis', 'Miller', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'White', 'Harris', 'Clark', 'Lewis', 'Walker', 'Hall', 'Young', 'Allen', 'Wright', 'Scott', 'Green', 'Baker', 'Adams', 'Nelson', 'Hill', 'Ramirez', 'Campbell', 'Mitchell', 'Roberts', 'Carter', 'Phillips', 'Evans', 'Turner', 'Torres', 'Parker', 'Collins', 'Edwards', 'Stewart', 'Flores', 'Morris', 'Murphy', 'Rivera', 'Cook', 'Rogers', 'Morgan', 'Peterson', 'Cooper', 'Reed', 'Bailey', 'Bell', 'Gomez', 'Kelly', 'Howard', 'Ward', 'Cox', 'Diaz', 'Richardson', 'Wood', 'Watson', 'Brooks', 'Bennett', 'Gray', 'James', 'Reyes', 'Cruz', 'Hughes', 'Price', 'Myers', 'Long', 'Foster', 'Sanders', 'Ross', 'Morales', 'Powell', 'Sullivan', 'Russell', 'Ortiz', 'Jenkins', 'Gutierrez', 'Perry', 'Butler', 'Barnes', 'Fisher', 'Henderson', 'Coleman', 'Simmons', 'Patterson', 'Jordan', 'Reynolds', 'Hamilton', 'Graham', 'Kowalski', 'Okafor', 'Haddad', 'Schmidt', 'Rossi', 'Dubois', 'Tanaka', 'Sato', 'Ivanova', 'Novak', 'Larsen'];

// A large practice's clients are not all namesakes: half the surnames are drawn from made-up
// ones (a first and a second syllable: "Ashworth", "Kelbrook"), about 1,500 more.
const SURNAME_HEADS = ['Ash', 'Kel', 'Bram', 'Dun', 'Hal', 'Mor', 'Pen', 'Ros', 'Stan', 'Thorn', 'Wes', 'Whit', 'Brad', 'Car', 'Fair', 'Gar', 'Hart', 'Lang', 'Mar', 'Nor', 'Oak', 'Ral', 'Sel', 'Tal', 'Ven', 'Win', 'Yar', 'Ab', 'Bel', 'Cor', 'Dal', 'El', 'Fen', 'Gil', 'Hol', 'Iver', 'Jar', 'Kin', 'Lind', 'Mel'];
const SURNAME_TAILS = ['worth', 'brook', 'field', 'ley', 'ton', 'wood', 'ford', 'more', 'well', 'ridge', 'dale', 'stead', 'wick', 'by', 'ham', 'son', 'man', 'er', 'ing', 'ston', 'land', 'croft', 'hurst', 'mont', 'vale', 'burn', 'low', 'den', 'sey', 'ett', 'ard', 'ick', 'ow', 'isz', 'ova', 'ez', 'ini', 'ado'];

function surnameOf(random: Random): string {
  return random() < 0.5 ? pick(random, SURNAMES) : pick(random, SURNAME_HEADS) + pick(random, SURNAME_TAILS);
}

interface Product {
  /** How a loyalty program names it (brand). */
  brand: string[];
  /** How a POS names it (generic or house name); {n} is the unit count. */
  pos: string[];
  unitCents: number;
  units: [number, number];
}

const PRODUCTS: readonly Product[] = [
  { brand: ['BOTOX Cosmetic', 'Botox'], pos: ['onabotulinumtoxinA {n}u', 'Neurotoxin - Botox {n} units', 'BOTOX {n}u'], unitCents: 1400, units: [20, 64] },
  { brand: ['Dysport'], pos: ['abobotulinumtoxinA {n}u', 'Dysport {n} units'], unitCents: 450, units: [40, 150] },
  { brand: ['XEOMIN'], pos: ['incobotulinumtoxinA {n}u', 'Xeomin {n}u'], unitCents: 1200, units: [20, 60] },
  { brand: ['Jeuveau'], pos: ['prabotulinumtoxinA-xvfs {n}u', 'Jeuveau {n}u'], unitCents: 1100, units: [20, 60] },
  { brand: ['DAXXIFY'], pos: ['daxibotulinumtoxinA-lanm {n}u', 'Daxxify {n}u'], unitCents: 1500, units: [30, 60] },
  { brand: ['JUVÉDERM VOLUMA XC', 'Juvederm'], pos: ['HA filler - Juvederm Voluma {n} syr', 'Voluma XC x{n}'], unitCents: 80_000, units: [1, 3] },
  { brand: ['RESTYLANE LYFT', 'Restylane'], pos: ['Restylane Lyft {n} syringe', 'HA filler Lyft x{n}'], unitCents: 72_500, units: [1, 3] },
  { brand: ['RHA Collection', 'RHA'], pos: ['RHA 3 x{n}', 'RHA Redensity {n} syr'], unitCents: 76_000, units: [1, 2] },
  { brand: ['SCULPTRA Aesthetic'], pos: ['poly-L-lactic acid {n} vial', 'Sculptra x{n}'], unitCents: 90_000, units: [1, 3] },
  { brand: ['KYBELLA'], pos: ['deoxycholic acid {n} vial', 'Kybella x{n}'], unitCents: 60_000, units: [1, 3] },
  { brand: ['LATISSE'], pos: ['bimatoprost 0.03% 5ml', 'Latisse 5ml x{n}'], unitCents: 16_500, units: [1, 2] },
  { brand: ['SkinMedica TNS Advanced+ Serum', 'SkinMedica'], pos: ['TNS Advanced+ Serum', 'SkinMedica TNS x{n}'], unitCents: 29_500, units: [1, 2] },
  { brand: ['CoolSculpting Elite'], pos: ['cryolipolysis {n} cycles', 'CoolSculpting x{n}'], unitCents: 75_000, units: [1, 4] },
];

const FIXED_REWARDS = [2000, 2500, 5000, 7500, 10_000];
const PERCENTS = [10, 15, 20, 25];
const START = Date.UTC(2025, 0, 1) / 86_400_000;

const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const between = (random: Random, low: number, high: number) => low + Math.floor(random() * (high - low + 1));

function isoDay(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10);
}

function usDay(day: number): string {
  const [y, m, d] = isoDay(day).split('-');
  return `${m}/${d}/${y}`;
}

function typo(random: Random, word: string): string {
  if (word.length < 4) return word;
  const at = between(random, 1, word.length - 2);
  return random() < 0.5 ? word.slice(0, at) + word.slice(at + 1) : word.slice(0, at) + word[at + 1] + word[at] + word.slice(at + 2);
}

interface Client { given: string; surname: string }

interface Sale { client: Client; day: number; product: number; units: number; cents: number }

function saleRow(random: Random, sale: Sale, invoice: number): Record<string, string> {
  const product = PRODUCTS[sale.product]!;
  const roll = random();
  const client = roll < 0.1 ? '' : roll < 0.55 ? `${sale.client.surname}, ${sale.client.given}` : `${sale.client.given} ${sale.client.surname}`;
  return {
    'Invoice #': `INV-${String(invoice).padStart(7, '0')}`,
    Date: usDay(sale.day),
    Client: client,
    Item: pick(random, product.pos).replace('{n}', String(sale.units)),
    Amount: (sale.cents / 100).toFixed(2),
  };
}

function rewardCents(random: Random, saleCents: number): number {
  let cents: number;
  if (random() < 0.6 || saleCents < 4000) cents = Math.round((saleCents * pick(random, PERCENTS)) / 100);
  else cents = pick(random, FIXED_REWARDS.filter((fixed) => fixed <= saleCents / 2).concat([2000]));
  const adjust = random();
  if (adjust < 0.25) cents = Math.round(cents * (1 - (0.5 + random()) / 100)); // less a processing fee
  else if (adjust < 0.4) cents = Math.round(cents / 100) * 100; // rounded to whole dollars
  return cents;
}

function lagDays(random: Random): number {
  const roll = random();
  if (roll < 0.4) return 0;
  if (roll < 0.8) return between(random, 1, 7);
  return between(random, 8, 30);
}

function memberName(random: Random, client: Client): string {
  const roll = random();
  if (roll < 0.08) return '';
  let given = client.given;
  let surname = client.surname;
  if (roll < 0.13 && NICKNAMES[given] !== undefined) given = NICKNAMES[given]!;
  else if (roll < 0.21) {
    if (random() < 0.5) surname = typo(random, surname);
    else given = typo(random, given);
  }
  return `${given} ${surname}`;
}

function redemptionRow(random: Random, sale: Sale, id: number): Record<string, string> {
  const product = PRODUCTS[sale.product]!;
  return {
    'Redemption ID': `R${String(id).padStart(8, '0')}`,
    'Redemption Date': isoDay(sale.day + lagDays(random)),
    'Member Name': memberName(random, sale.client),
    Product: pick(random, product.brand),
    'Reward Amount': (rewardCents(random, sale.cents) / 100).toFixed(2),
  };
}

function newSale(random: Random, client: Client, day: number, productIndex = Math.floor(random() * PRODUCTS.length)): Sale {
  const product = PRODUCTS[productIndex]!;
  const units = between(random, product.units[0], product.units[1]);
  return { client, day, product: productIndex, units, cents: product.unitCents * units };
}

/** Redemptions and sales with their truth; seeded, so a seed always gives the same split. */
export function generateTransactions(seed: number, options: Partial<TransactionGeneratorOptions> = {}): TransactionSplit {
  const random = seededRandom(seed);
  const redemptionCount = options.redemptions ?? 2000;
  const days = options.days ?? 365;
  const orphanShare = options.orphanShare ?? 0.08;
  const clientCount = Math.max(50, Math.round(redemptionCount / 3));
  const clients: Client[] = Array.from({ length: clientCount }, () => ({ given: pick(random, GIVEN), surname: surnameOf(random) }));

  const sales: Sale[] = [];
  const redeemed: { sale: Sale; inFile: boolean }[] = [];
  for (let i = 0; i < redemptionCount; i += 1) {
    const client = pick(random, clients);
    const sale = newSale(random, client, START + between(random, 0, days - 1));
    const inFile = random() >= orphanShare;
    redeemed.push({ sale, inFile });
    if (inFile) sales.push(sale);
    const decoy = random();
    if (decoy < 0.12) {
      // Another client, the same product and amount, a few days away.
      sales.push({ ...sale, client: pick(random, clients), day: sale.day + between(random, -5, 5) });
    } else if (decoy < 0.24) {
      // The same client, another treatment in the window: another product, or the same at another amount.
      const day = sale.day + between(random, -10, 10);
      const other = random() < 0.5 ? newSale(random, client, day) : newSale(random, client, day, sale.product);
      if (other.cents !== sale.cents) sales.push(other);
    }
  }
  const wanted = Math.max(options.sales ?? Math.round(redemptionCount * 1.5), sales.length);
  while (sales.length < wanted) sales.push(newSale(random, pick(random, clients), START + between(random, 0, days - 1)));

  // Shuffle the sales (a POS exports by date, not by redemption), keeping track of where each went.
  const order = sales.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const position = new Map<Sale, number>();
  order.forEach((saleIndex, at) => position.set(sales[saleIndex]!, at));
  const saleRows = order.map((saleIndex, at) => saleRow(random, sales[saleIndex]!, 100_000 + at));
  const redemptions = redeemed.map(({ sale }, i) => redemptionRow(random, sale, 5_000_000 + i));
  const truth = redeemed.map(({ sale, inFile }) => (inFile ? position.get(sale)! : null));
  return { sales: saleRows, redemptions, truth };
}

export interface TransactionScore {
  precision: number;
  recall: number;
  f1: number;
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
}

/** Precision, recall and F1 of redemption -> sale links against the generator's truth. */
export function scoreTransactionLinks(links: ReadonlyMap<number, number>, truth: readonly (number | null)[]): TransactionScore {
  let tp = 0;
  let fp = 0;
  for (const [redemption, sale] of links) {
    if (truth[redemption] === sale) tp += 1;
    else fp += 1;
  }
  const positives = truth.filter((sale) => sale !== null).length;
  const fn = positives - tp;
  const precision = tp + fp === 0 ? 1 : tp / (tp + fp);
  const recall = positives === 0 ? 1 : tp / positives;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1, truePositives: tp, falsePositives: fp, falseNegatives: fn };
}
