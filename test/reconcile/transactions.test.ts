// The TRANSACTIONS matcher, rule by rule: amount tolerance and reward rules, the one-sided lag,
// one-to-one assignment, brand/generic products, patient agreement, unmatched on both sides; and
// its accuracy on the seeded generator (bench/transactions-data.ts) at a small size.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appointmentSales, dateOrderOf, reconcileTransactions, saleEntityIds, type TransactionOptions } from '../../src/reconcile/engine/transactions.js';
import { generateTransactions, scoreTransactionLinks } from '../../bench/transactions-data.js';

const OPTIONS: TransactionOptions = { algorithm: 'HYBRID', confidence: 0.5 };
const sale = (invoice: string, date: string, client: string, item: string, amount: string) => ({ 'Invoice #': invoice, Date: date, Client: client, Item: item, Amount: amount });
const redemption = (date: string, member: string, product: string, amount: string) => ({ 'Redemption Date': date, 'Member Name': member, Product: product, 'Reward Amount': amount });

const SALES = [
  sale('INV-1', '2026-03-02', 'Garcia, Maria', 'onabotulinumtoxinA 40u', '600.00'),
  sale('INV-2', '2026-03-02', 'Okafor, Ada', 'Juvederm Voluma 1 syr', '800.00'),
  sale('INV-3', '2026-03-20', 'Lee, Hana', 'Latisse 5ml', '165.00'),
];

function only(result: ReturnType<typeof reconcileTransactions>, recordIndex: number) {
  return result.matches.find((m) => m.recordIndex === recordIndex);
}

describe('reconcileTransactions, rule by rule', () => {
  it('a 20% reward matches its sale, with evidence a person reads', () => {
    const result = reconcileTransactions([redemption('2026-03-05', 'Maria Garcia', 'BOTOX Cosmetic', '120.00')], SALES, OPTIONS);
    const match = only(result, 0)!;
    assert.equal(match.entityId, 'INV-1');
    assert.equal(match.entityType, 'SALE');
    assert.ok(match.confidence >= 0.9, String(match.confidence));
    assert.deepEqual(match.evidence.slice(0, 3), ['amount 20% of sale $600.00', 'posted 3 days after sale', 'product Botox Cosmetic = onabotulinumtoxinA']);
    assert.match(match.evidence[3]!, /^same patient \(surname equal, first name equal\)/);
  });

  it('amount within the tolerance (a processing fee) still fits; outside it does not count as the reward', () => {
    const fee = only(reconcileTransactions([redemption('2026-03-02', 'Maria Garcia', 'Botox', '118.50')], SALES, OPTIONS), 0)!;
    assert.equal(fee.evidence[0], 'amount 20% of sale $600.00');
    const strict = only(reconcileTransactions([redemption('2026-03-02', 'Maria Garcia', 'Botox', '118.50')], SALES, { ...OPTIONS, amountTolerancePercent: 0, amountToleranceCents: 10 }), 0)!;
    assert.match(strict.evidence[0]!, /^amount 19\.8% of sale \$600\.00, no reward rule$/);
    assert.ok(strict.confidence < fee.confidence);
  });

  it('a redemption dated BEFORE the sale never matches it (the lag is one-sided)', () => {
    const result = reconcileTransactions([redemption('2026-03-01', 'Maria Garcia', 'Botox', '120.00')], SALES, OPTIONS);
    assert.equal(result.matches.length, 0);
    assert.deepEqual(result.unmatched, [0]);
  });

  it('a redemption more than maxLagDays after the sale does not match; a longer window finds it', () => {
    const late = [redemption('2026-04-05', 'Maria Garcia', 'Botox', '120.00')];
    assert.equal(reconcileTransactions(late, SALES, OPTIONS).matches.length, 0);
    assert.equal(only(reconcileTransactions(late, SALES, { ...OPTIONS, maxLagDays: 40 }), 0)?.entityId, 'INV-1');
  });

  it('brand and generic names agree (Botox = onabotulinumtoxinA); different products count against', () => {
    const right = only(reconcileTransactions([redemption('2026-03-02', '', 'Botox', '120.00')], SALES, OPTIONS), 0)!;
    assert.ok(right.evidence.includes('product Botox = onabotulinumtoxinA'), right.evidence.join('; '));
    const wrong = only(reconcileTransactions([redemption('2026-03-02', '', 'Juvederm', '120.00')], [SALES[0]!], { ...OPTIONS, confidence: 0.01 }), 0)!;
    assert.ok(wrong.evidence.includes('product differs: Juvederm vs onabotulinumtoxinA'), wrong.evidence.join('; '));
    assert.ok(wrong.confidence < 0.1, String(wrong.confidence));
    assert.equal(reconcileTransactions([redemption('2026-03-02', '', 'Juvederm', '120.00')], [SALES[0]!], OPTIONS).matches.length, 0);
  });

  it('one-to-one: a sale discounts at most one redemption, the weaker claim is left unmatched; configurable', () => {
    const two = [redemption('2026-03-03', 'Maria Garcia', 'Botox', '120.00'), redemption('2026-03-04', '', 'Botox', '120.00')];
    const result = reconcileTransactions(two, [SALES[0]!], OPTIONS);
    assert.deepEqual(result.matches.map((m) => [m.recordIndex, m.entityId]), [[0, 'INV-1']]);
    assert.deepEqual(result.unmatched, [1]);
    const shared = reconcileTransactions(two, [SALES[0]!], { ...OPTIONS, maxRedemptionsPerSale: 2, confidence: 0.3 });
    assert.equal(shared.matches.length, 2);
  });

  it('the same patient with two treatments in the window: amount and product pick the right sale', () => {
    const sales = [
      sale('A', '2026-05-01', 'Maria Garcia', 'onabotulinumtoxinA 40u', '600.00'),
      sale('B', '2026-05-08', 'Maria Garcia', 'Restylane Lyft 1 syringe', '725.00'),
    ];
    const result = reconcileTransactions([redemption('2026-05-10', 'Maria Garcia', 'RESTYLANE', '72.50'), redemption('2026-05-10', 'Maria Garcia', 'Botox', '90.00')], sales, OPTIONS);
    assert.equal(only(result, 0)?.entityId, 'B');
    assert.equal(only(result, 1)?.entityId, 'A');
  });

  it('same amount on another client\'s sale: the patient decides', () => {
    const sales = [sale('X', '2026-06-01', 'Rivera, Sofia', 'Botox 40u', '600.00'), sale('Y', '2026-06-02', 'Garcia, Maria', 'Botox 40u', '600.00')];
    const match = only(reconcileTransactions([redemption('2026-06-03', 'Liz Garcia', 'Botox', '120.00'), redemption('2026-06-03', 'Maria Garcia', 'Botox', '120.00')], sales, OPTIONS), 1)!;
    assert.equal(match.entityId, 'Y');
    assert.ok(match.confidence >= 0.9);
  });

  it('a nickname on the loyalty side still names the same patient', () => {
    const sales = [sale('S1', '2026-07-01', 'Wood, Elizabeth', 'Latisse 5ml', '165.00'), sale('S2', '2026-07-01', 'Nguyen, Thi', 'Latisse 5ml', '165.00')];
    const match = only(reconcileTransactions([redemption('2026-07-01', 'Liz Wood', 'LATISSE', '24.75')], sales, OPTIONS), 0)!;
    assert.equal(match.entityId, 'S1');
    assert.match(match.evidence.at(-1)!, /^same patient \(surname equal, first name nickname/);
  });

  it('unmatched on both sides: a redemption with no sale and the sales no redemption took', () => {
    const result = reconcileTransactions([redemption('2026-03-05', 'Maria Garcia', 'Botox', '120.00'), redemption('2026-09-01', 'Zoe Park', 'Kybella', '60.00')], SALES, OPTIONS);
    assert.deepEqual(result.unmatched, [1]);
    assert.deepEqual(result.unmatchedSales, [1, 2]);
    assert.deepEqual(result.saleIds, ['INV-1', 'INV-2', 'INV-3']);
  });

  it('sales are named by their invoice number when unique, by their row otherwise', () => {
    assert.deepEqual(saleEntityIds(SALES), ['INV-1', 'INV-2', 'INV-3']);
    assert.deepEqual(saleEntityIds([SALES[0]!, SALES[0]!]), ['row:0', 'row:1']);
    assert.deepEqual(saleEntityIds([{ Date: '2026-01-01', Amount: '5' }]), ['row:0']);
  });

  it('a file whose dates are all month-first reads 04/01 as April 1 only', () => {
    assert.equal(dateOrderOf(['04/01/2026', '05/28/2026']), 'month-first');
    assert.equal(dateOrderOf(['04/01/2026', '28/05/2026']), 'day-first');
    assert.equal(dateOrderOf(['04/01/2026']), 'unknown');
    const sales = [sale('APR', '04/01/2026', '', 'Latisse', '165.00'), sale('OTHER', '05/28/2026', '', 'Botox', '600.00')];
    const result = reconcileTransactions([redemption('2026-01-05', '', 'Latisse', '33.00')], sales, OPTIONS);
    assert.equal(result.matches.length, 0, 'January 5 is not after April 1');
  });

  it('the practice\'s own completed appointments become sales named by the appointment id', () => {
    const rows = appointmentSales([{
      id: '0b6f2b4e-1111-4c3d-9e5f-000000000001', startTime: '2026-03-02T17:00:00.000Z', serviceName: 'Botox - Forehead', serviceCategory: 'Injectables', priceCents: 60_000, status: 'COMPLETED',
      patient: { id: 'p1', firstName: 'Maria', lastName: 'Garcia', dateOfBirth: '1980-05-14', email: null, phoneNumber: null },
    }]);
    const match = only(reconcileTransactions([redemption('2026-03-04', 'Maria Garcia', 'onabotulinumtoxinA', '120.00')], rows, OPTIONS), 0)!;
    assert.equal(match.entityId, '0b6f2b4e-1111-4c3d-9e5f-000000000001');
    assert.ok(match.confidence >= 0.9);
  });
});

describe('reconcileTransactions on the seeded generator', () => {
  const split = generateTransactions(7, { redemptions: 1500, sales: 1500 });
  const result = reconcileTransactions(split.redemptions, split.sales, { ...OPTIONS, confidence: 0.8 });
  const index = new Map(result.saleIds.map((id, i) => [id, i]));
  const score = scoreTransactionLinks(new Map(result.matches.map((m) => [m.recordIndex, index.get(m.entityId)!])), split.truth);

  it('the same seed gives the same files', () => {
    assert.deepEqual(generateTransactions(7, { redemptions: 50 }), generateTransactions(7, { redemptions: 50 }));
  });
  it('accepted links are precise (>= 0.97) and find most redemptions (recall >= 0.7)', () => {
    assert.ok(score.precision >= 0.97, JSON.stringify(score));
    assert.ok(score.recall >= 0.7, JSON.stringify(score));
  });
  it('no sale is given to two redemptions', () => {
    const ids = result.matches.map((m) => m.entityId);
    assert.equal(new Set(ids).size, ids.length);
  });
});
