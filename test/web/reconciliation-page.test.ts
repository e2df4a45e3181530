// The billing manager's review page (/app/reconciliations) end to end in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core; no browser download): log in with the API's own auth,
// upload a members CSV, watch it finish, review the doubtful row with a keyboard shortcut, decide
// the unmatched one, apply, download the export and read it. Plus what the page is served with:
// its CSP, no inline code, no external URL, no file outside the allow-list.
//
// One browser for the whole file. One database: PostgreSQL when DATABASE_URL is set, else PGlite
// (the page only talks HTTP; the API's behaviour on both is covered by test/reconcile/jobs.test.ts).
//
// SCREENSHOT_REVIEW=<path.png> also saves the review screen (npm run screenshot:review).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { totp } from '../../src/auth/totp.js';
import { withPractice } from '../../src/db/scope.js';
import { PAGE_CSP, PAGE_PATH } from '../../src/web/routes.js';
import { encryptPlaintextPatients } from '../../src/patients/encrypt-existing.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

// Synthetic people only.
const PATIENTS = [
  { firstName: 'Elizabeth', lastName: 'Moreno', dateOfBirth: '1985-03-14', email: 'liz.moreno@example.com', phoneNumber: '+14155550123' },
  { firstName: 'Priya', lastName: 'Raman', dateOfBirth: '1979-11-02', email: 'priya.r@example.com', phoneNumber: '+16505550111' },
  { firstName: 'Hannah', lastName: 'Kowalski', dateOfBirth: '1992-07-21', email: null, phoneNumber: '+12065550199' },
];

// One exact member (0.9999: accepted at 0.99), one with a surname typo and another date of birth
// (review: 0.82-0.97 over repeated runs, the engine's figure varies with the seeded rows' random
// ids), one stranger (unmatched).
const MEMBERS_CSV =
  'Member ID,First Name,Last Name,Date of Birth,Email,Mobile\r\n' +
  'A-1001,Elizabeth,Moreno,03/14/1985,liz.moreno@example.com,(415) 555-0123\r\n' +
  'A-1002,Priya,Rahman,05/05/1980,,\r\n' +
  'A-1003,Jordan,Newperson,01/09/1995,jordan.new@example.com,(917) 555-0142\r\n';

// TRANSACTIONS: an Allē-style redemptions file and a POS sales file of made-up clients.
const REDEMPTIONS_CSV =
  'Redemption ID,Redemption Date,Member Name,Product,Reward Amount\r\n' +
  'R-1,2026-03-05,Maria Garcia,BOTOX Cosmetic,$120.00\r\n' +
  'R-2,2026-03-09,Ada Okafor,JUVÉDERM VOLUMA XC,$75.00\r\n';
const SALES_CSV =
  'Invoice #,Date,Client,Item,Amount\r\n' +
  'INV-1001,03/02/2026,"Garcia, Maria",onabotulinumtoxinA 40u,600.00\r\n' +
  'INV-1002,03/02/2026,"Okafor, Ada",HA filler - Juvederm Voluma 1 syr,800.00\r\n';

function launchChromium(): Promise<Browser> {
  // Fail, never skip: a missing browser must not turn this file green.
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); .ci/run does`);
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

const target = databaseTargets().at(-1)!;

describe(`the review page in headless Chromium (${target.kind})`, async () => {
  const db = await migratedDatabase(target);
  const { app } = await startTestApp(db);
  const practice = await createTestPractice(app, 'Page Spa');
  const admin = practice.users.ADMIN;
  const patientIds = await withPractice(app.db, practice.id, async (tx) => {
    const ids: string[] = [];
    for (const p of PATIENTS) {
      const { rows } = await tx.query<{ id: string }>(
        `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, email, phone_number) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
        [practice.id, p.firstName, p.lastName, p.dateOfBirth, p.email, p.phoneNumber],
      );
      ids.push(rows[0]!.id);
    }
    return ids;
  });
  // Inserted in plain text with SQL: sealed as the first start after migration 015 does.
  await encryptPlaintextPatients(app.db, app.keyring);
  const origin = await app.listen({ host: '127.0.0.1', port: 0 });

  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** What the browser complained about: script errors, CSP violations, failed loads. */
  const problems: string[] = [];
  /** Every URL the page asked for. */
  const requested: string[] = [];

  before(async () => {
    browser = await launchChromium();
    context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    page.on('console', (message) => {
      // Chromium asks every origin for /favicon.ico; its 404 is not the page's problem.
      if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('request', (request) => requested.push(request.url()));
  });
  after(async () => {
    await browser?.close();
  });
  // Each test judges the complaints made during it (an expected 401 of one must not fail the next).
  beforeEach(() => {
    problems.length = 0;
  });

  test('the page is served with a strict CSP (script-src self), no inline code and no external URL', async () => {
    const html = await app.inject({ url: PAGE_PATH });
    assert.equal(html.statusCode, 200);
    assert.match(String(html.headers['content-type']), /^text\/html; charset=utf-8/);
    assert.equal(html.headers['content-security-policy'], PAGE_CSP);
    assert.equal(html.headers['x-content-type-options'], 'nosniff');
    assert.equal(html.headers['x-frame-options'], 'DENY');
    assert.match(PAGE_CSP, /script-src 'self'(;|$)/);
    assert.doesNotMatch(PAGE_CSP, /unsafe-inline|unsafe-eval|\*|https?:|data:/);
    assert.doesNotMatch(html.body, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline script');
    assert.doesNotMatch(html.body, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or handler');
    for (const [file, type] of [['app.js', 'text/javascript'], ['style.css', 'text/css']] as const) {
      const response = await app.inject({ url: `${PAGE_PATH}/${file}` });
      assert.equal(response.statusCode, 200, file);
      assert.match(String(response.headers['content-type']), new RegExp(`^${type}`));
      assert.equal(response.headers['content-security-policy'], PAGE_CSP);
      assert.equal(response.headers['cache-control'], 'no-cache');
      assert.doesNotMatch(response.body, /(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i, `${file} names no other origin`);
      const again = await app.inject({ url: `${PAGE_PATH}/${file}`, headers: { 'if-none-match': String(response.headers.etag) } });
      assert.equal(again.statusCode, 304, 'revalidated by ETag');
    }
    assert.doesNotMatch(html.body, /(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i, 'the HTML names no other origin');
  });

  test('path traversal and unlisted files under /app/reconciliations are 404 (allow-list only)', async () => {
    for (const path of ['app.ts', 'index.html', 'tsconfig.json', '..%2Froutes.ts', '%2e%2e%2f%2e%2e%2fconfig.ts', '..%5C..%5Cpackage.json']) {
      const response = await app.inject({ url: `${PAGE_PATH}/${path}` });
      assert.equal(response.statusCode, 404, path);
      assert.equal((response.json() as { error: { code: string } }).error.code, 'NOT_FOUND');
    }
    assert.equal((await app.inject({ url: `${PAGE_PATH}/../../package.json` })).statusCode, 404);
  });

  test('log in, upload a members CSV, review with a shortcut, apply and download the export', async () => {
    await page.goto(`${origin}${PAGE_PATH}`);
    await page.getByLabel('Email').fill(admin.email);
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#upload-view').waitFor({ state: 'visible' });

    await page.getByLabel('Kind').selectOption('PATIENTS');
    await page.locator('#file').setInputFiles({ name: 'members.csv', mimeType: 'text/csv', buffer: Buffer.from(MEMBERS_CSV) });
    await page.getByLabel(/Source system/).fill('alle');
    await page.getByLabel('Accept at confidence').fill('0.99');
    await page.getByRole('button', { name: 'Upload' }).click();

    // Progress, then the review band with the doubtful row beside its candidate.
    await page.locator('#review-view').waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await page.locator('#count-accepted').textContent(), '1');
    assert.equal(await page.locator('#count-review').textContent(), '1');
    assert.equal(await page.locator('#count-unmatched').textContent(), '1');
    const match = page.locator('#match');
    await match.locator('table').waitFor();
    const shown = await match.innerText();
    assert.match(shown, /From the file \(row 2\)/);
    assert.match(shown, /05\/05\/1980/, 'the file\'s date of birth');
    assert.match(shown, /1979-11-02/, 'the patient\'s, beside it');
    assert.match(shown, /Rahman/, 'the file\'s spelling');
    assert.match(shown, /Raman/, 'the patient\'s, beside it');
    assert.match(shown, /DOB differs/);
    assert.match(shown, /surname typo 1 edit/);
    assert.deepEqual(await match.locator('td.differs').allInnerTexts(), ['Raman', '1979-11-02'], 'surname and date of birth differ');
    assert.deepEqual(await match.locator('td.same').allInnerTexts(), ['Priya'], 'the first name agrees');
    if (process.env.SCREENSHOT_REVIEW) {
      mkdirSync(dirname(process.env.SCREENSHOT_REVIEW), { recursive: true });
      await page.screenshot({ path: process.env.SCREENSHOT_REVIEW, fullPage: true });
    }

    // ? opens the help; A accepts the row (focus on the match, not in a field).
    await page.keyboard.press('?');
    assert.equal(await page.locator('#help').evaluate((dialog) => (dialog as unknown as { open: boolean }).open), true);
    await page.keyboard.press('?');
    await match.focus();
    await page.keyboard.press('a');
    await page.locator('#status').filter({ hasText: 'Row 2: Decided: accept' }).waitFor();

    // The stranger: the unmatched band, N makes a new patient of her.
    await page.getByLabel('Band', { exact: true }).selectOption('unmatched');
    await page.locator('#position').filter({ hasText: 'row 1 of 1' }).waitFor();
    await match.focus();
    await page.keyboard.press('n');
    await page.locator('#status').filter({ hasText: 'Row 3: Decided: new patient' }).waitFor();

    const decided = (await app.inject({ url: `/v2/reconciliations?limit=1`, headers: admin.headers })).json() as { data: { id: string }[] };
    const jobId = decided.data[0]!.id;
    const rows = (await app.inject({ url: `/v2/reconciliations/${jobId}/matches`, headers: admin.headers })).json() as { data: { recordIndex: number; decision: string | null }[] };
    assert.deepEqual(rows.data.map((r) => [r.recordIndex, r.decision]).sort(), [[0, null], [1, 'accept'], [2, 'new']]);

    await page.getByRole('button', { name: 'Apply decisions' }).click();
    await page.locator('#apply-result').filter({ hasText: 'Applied: 2 linked, 1 created, 0 failed.' }).waitFor();

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV (all rows)' }).click()]);
    assert.equal(download.suggestedFilename(), `reconciliation-${jobId}-all.csv`);
    const exported = parse(readFileSync((await download.path())!, 'utf8'), { bom: true, columns: true }) as Array<Record<string, string>>;
    assert.equal(exported.length, 3);
    const byMember = Object.fromEntries(exported.map((row) => [row['file: Member ID'], row]));
    assert.equal(byMember['A-1001']!.finalEntityId, patientIds[0]);
    assert.equal(byMember['A-1002']!.decision, 'accept');
    assert.equal(byMember['A-1002']!.finalEntityId, patientIds[1]);
    assert.equal(byMember['A-1002']!.applied, 'true');
    assert.equal(byMember['A-1003']!.decision, 'new');
    assert.notEqual(byMember['A-1003']!.finalEntityId, '', 'the new patient\'s id');

    // Nothing of the session or the patients reached the URL, storage or cookies.
    assert.equal(page.url(), `${origin}${PAGE_PATH}`);
    const stored = await page.evaluate('({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie })');
    assert.deepEqual(stored, { local: 0, session: 0, cookie: '' });
    assert.deepEqual(await context.cookies(), []);
    for (const url of requested) {
      assert.ok(url.startsWith(origin), `only this origin was asked: ${url}`);
      assert.doesNotMatch(url, /Priya|Rahman|Raman|Jordan|1980|A-100/, `no PHI in ${url}`);
    }
    assert.deepEqual(problems, [], 'no script error or CSP violation');
  });

  test('a 401 is answered by one token refresh and the request repeated; logout revokes the refresh token', async () => {
    await page.getByRole('button', { name: 'New upload' }).click();
    await page.locator('#upload-view').waitFor({ state: 'visible' });
    // The API answers the next upload as it answers an expired access token.
    let refused = 0;
    await page.route(`${origin}/v2/reconciliations?**`, async (route) => {
      if (refused++ > 0) return route.fallback();
      return route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'Token expired', details: [] } }) });
    });
    const refreshes = requested.length;
    await page.locator('#file').setInputFiles({ name: 'members.csv', mimeType: 'text/csv', buffer: Buffer.from(MEMBERS_CSV) });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.locator('#progress-view').waitFor({ state: 'visible' });
    assert.equal(refused, 2, 'refused once, then repeated');
    assert.equal(requested.slice(refreshes).filter((url) => url.endsWith('/v2/auth/refresh')).length, 1);
    await page.locator('#review-view').waitFor({ state: 'visible', timeout: 60_000 });

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('#login-view').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#password').inputValue(), '');
    assert.equal(await page.locator('#review-view').isVisible(), false);
    const logout = await withPractice(app.db, practice.id, (tx) =>
      tx.query<{ details: { refreshTokensRevoked: number } }>(`SELECT details FROM audit_events WHERE action = 'auth.logout' AND actor_id = $1`, [admin.id]));
    assert.equal(logout.rows.length, 1);
    assert.ok(logout.rows[0]!.details.refreshTokensRevoked >= 1, 'the refresh token the page held is revoked');
    assert.deepEqual(problems.filter((p) => !/401/.test(p)), [], 'no script error or CSP violation');
  });

  test('an account with MFA is asked for its code by the page, and a wrong code does not get in', async () => {
    const manager = practice.users.MANAGER;
    const setup = await app.inject({ method: 'POST', url: '/v2/auth/mfa/setup', headers: manager.headers, payload: { password: manager.password } });
    const { secret } = setup.json() as { secret: string };
    const code = (step: number) => totp(secret, { algorithm: 'SHA256', time: Date.now() + step * 30_000 });
    assert.equal((await app.inject({ method: 'POST', url: '/v2/auth/mfa/verify', headers: manager.headers, payload: { token: code(0) } })).statusCode, 200);

    await page.getByLabel('Email').fill(manager.email);
    await page.getByLabel('Password').fill(manager.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#mfa-field').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#upload-view').isVisible(), false, 'the password alone does not get in');
    await page.getByLabel('MFA code').fill(code(0) === '000000' ? '111111' : '000000');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#login-error').filter({ hasText: 'Invalid or already used MFA code' }).waitFor();
    assert.equal(await page.locator('#upload-view').isVisible(), false, 'a wrong code does not get in');
    // The step after the one enrolment used: a used step cannot be replayed.
    await page.getByLabel('MFA code').fill(code(1));
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#upload-view').waitFor({ state: 'visible' });
    assert.match(await page.locator('#who').innerText(), /MANAGER/);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('#login-view').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#mfa-field').isVisible(), false);
  });

  test('TRANSACTIONS: two files uploaded, each redemption shown beside the sale it was matched to', async () => {
    await page.getByLabel('Email').fill(admin.email);
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#upload-view').waitFor({ state: 'visible' });
    await page.getByLabel('Kind').selectOption('TRANSACTIONS');
    await page.locator('#sales-field').waitFor({ state: 'visible' });
    await page.locator('#file').setInputFiles({ name: 'redemptions.csv', mimeType: 'text/csv', buffer: Buffer.from(REDEMPTIONS_CSV) });
    await page.locator('#sales').setInputFiles({ name: 'sales.csv', mimeType: 'text/csv', buffer: Buffer.from(SALES_CSV) });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.locator('#review-view').waitFor({ state: 'visible', timeout: 60_000 });
    const counts = Object.fromEntries(await Promise.all(['accepted', 'review'].map(async (band) => [band, Number(await page.locator(`#count-${band}`).textContent())] as const)));
    assert.equal(counts.accepted! + counts.review!, 2, 'both redemptions found their sale');
    if (counts.review === 0) await page.getByLabel('Band', { exact: true }).selectOption('accepted');
    const match = page.locator('#match');
    await match.locator('table').waitFor();
    const shown = await match.innerText();
    assert.match(shown, /R-[12]/, 'the redemption from the file');
    assert.match(shown, /INV-100[12]/, 'the sale beside it, from the sales file');
    assert.match(shown, /onabotulinumtoxinA|Juvederm Voluma/);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('#login-view').waitFor({ state: 'visible' });
    assert.deepEqual(problems, [], 'no script error or CSP violation');
  });
});
