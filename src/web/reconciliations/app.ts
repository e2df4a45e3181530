// The billing manager's review page (docs/reconciliation.md#the-review-page-appreconciliations). Plain TypeScript, no
// library: it logs in with the API's own auth, uploads an export to /v2/reconciliations, polls the
// job, walks the doubtful matches one at a time (incoming row beside each candidate), records
// decisions, applies them and downloads the export.
//
// Session rule: the access and refresh tokens live in this module's variables only — never
// localStorage, sessionStorage, cookies or the URL — so closing or reloading the tab ends the
// session and no other script or later visitor of the machine can find them. Nothing about a
// patient is ever put in the URL either.

type Kind = 'PATIENTS' | 'APPOINTMENTS' | 'TRANSACTIONS';
type Band = 'accepted' | 'review' | 'unmatched';
type Action = 'accept' | 'reject' | 'choose' | 'new';

interface Tokens { accessToken: string; refreshToken: string }
interface ApiError { code: string; message: string }
interface Column { column: string; readAs: string | null; how: string }
interface Job {
  id: string;
  kind: Kind;
  status: string;
  progress: { phase: string; rowsRead: number; percent: number; etaSeconds: number | null };
  counts: { rows: number; accepted: number; review: number; unmatched: number; badRows: number };
  input: { columns: Column[]; sales: { columns: Column[] } | null };
  error: { code: string; message: string } | null;
}
interface Candidate { entityId: string; confidence: number; evidence: string[] }
interface Match {
  recordIndex: number;
  band: Band;
  entityId: string | null;
  confidence: number;
  candidates: Candidate[];
  decision: Action | null;
  decidedEntityId: string | null;
}
/** What the page shows of a candidate record, by canonical field. */
type Fields = Record<string, string>;

const POLL_MS = 500;
const PAGE_LIMIT = 100;

// ---------------------------------------------------------------------------------------------
// DOM helpers

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`missing #${id}`);
  return element as T;
}

function show(id: string, visible: boolean): void {
  $(id).hidden = !visible;
}

function say(message: string): void {
  $('status').textContent = message;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className !== undefined) node.className = className;
  return node;
}

// ---------------------------------------------------------------------------------------------
// Session: tokens in memory, refreshed once on a 401, cleared on logout

let tokens: Tokens | null = null;
let refreshing: Promise<boolean> | null = null;

class RequestFailed extends Error {
  constructor(readonly status: number, readonly error: ApiError) {
    super(error.message);
  }
}

async function errorOf(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as { error?: ApiError };
    if (body.error) return body.error;
  } catch {
    // not JSON: fall through
  }
  return { code: `HTTP_${response.status}`, message: response.statusText || 'The request failed' };
}

/** One refresh at a time: parallel 401s wait for the same rotation (a reused refresh token revokes the family). */
function refreshSession(): Promise<boolean> {
  if (tokens === null) return Promise.resolve(false);
  refreshing ??= (async () => {
    const response = await fetch('/v2/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: tokens?.refreshToken }),
    });
    if (!response.ok) return false;
    const body = (await response.json()) as Tokens;
    tokens = { accessToken: body.accessToken, refreshToken: body.refreshToken };
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** fetch with the bearer token; on 401 the session is refreshed once and the request repeated. */
async function api(path: string, init: RequestInit = {}, retried = false): Promise<Response> {
  const headers = new Headers(init.headers);
  if (tokens !== null) headers.set('authorization', `Bearer ${tokens.accessToken}`);
  const response = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (response.status === 401 && !retried && tokens !== null) {
    if (await refreshSession()) return api(path, init, true);
    const ended = { code: 'SESSION_ENDED', message: 'Your session has ended. Please log in again.' };
    endSession(ended.message);
    throw new RequestFailed(401, ended);
  }
  if (!response.ok) throw new RequestFailed(response.status, await errorOf(response));
  return response;
}

async function apiJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  return (await (await api(path, init)).json()) as T;
}

function postJson<T>(path: string, body: unknown): Promise<T> {
  return apiJson<T>(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

function endSession(message: string): void {
  tokens = null;
  stopPolling();
  job = null;
  review = null;
  for (const id of ['upload-view', 'progress-view', 'review-view', 'finish-view', 'session']) show(id, false);
  show('login-view', true);
  show('mfa-field', false);
  ($('password') as HTMLInputElement).value = '';
  ($('mfa') as HTMLInputElement).value = '';
  say(message);
  $('email').focus();
}

async function logIn(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const email = ($('email') as HTMLInputElement).value.trim();
  const password = ($('password') as HTMLInputElement).value;
  const mfa = ($('mfa') as HTMLInputElement).value.trim();
  const body: Record<string, string> = { email, password };
  if (!$('mfa-field').hidden && mfa !== '') body.mfaToken = mfa;
  $('login-error').textContent = '';
  const response = await fetch('/v2/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!response.ok) {
    const error = await errorOf(response);
    if (error.code === 'MFA_REQUIRED') {
      show('mfa-field', true);
      $('mfa').focus();
      $('login-error').textContent = 'Enter the code from your authenticator app.';
      return;
    }
    $('login-error').textContent = error.message;
    return;
  }
  const session = (await response.json()) as Tokens & { user: { email: string; role: string } };
  tokens = { accessToken: session.accessToken, refreshToken: session.refreshToken };
  ($('password') as HTMLInputElement).value = '';
  ($('mfa') as HTMLInputElement).value = '';
  $('who').textContent = `${session.user.email} (${session.user.role})`;
  show('login-view', false);
  show('session', true);
  startUpload();
}

async function logOut(): Promise<void> {
  const current = tokens;
  if (current !== null) {
    // Revokes the refresh token's family server-side; the page forgets both tokens either way.
    await api('/v2/auth/logout', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: current.refreshToken }) }).catch(() => undefined);
  }
  endSession('Logged out.');
}

// ---------------------------------------------------------------------------------------------
// Upload and progress

let job: Job | null = null;
let pollTimer: number | null = null;

function startUpload(): void {
  job = null;
  review = null;
  for (const id of ['progress-view', 'review-view', 'finish-view']) show(id, false);
  show('upload-view', true);
  $('apply-result').textContent = '';
  ($('upload-form') as HTMLFormElement).reset();
  kindChanged();
  say('Choose an export file to reconcile.');
  $('kind').focus();
}

function kindChanged(): void {
  const transactions = ($('kind') as HTMLSelectElement).value === 'TRANSACTIONS';
  show('sales-field', transactions);
  $('file-label').textContent = transactions ? 'Redemptions file (CSV or JSON)' : 'File (CSV or JSON)';
}

async function upload(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  $('upload-error').textContent = '';
  const kind = ($('kind') as HTMLSelectElement).value as Kind;
  const file = ($('file') as HTMLInputElement).files?.[0];
  const sales = ($('sales') as HTMLInputElement).files?.[0];
  if (file === undefined) {
    $('upload-error').textContent = 'Choose a file first.';
    return;
  }
  const query = new URLSearchParams({ kind });
  const source = ($('source') as HTMLInputElement).value.trim();
  if (source !== '') query.set('source', source);
  const confidence = ($('confidence') as HTMLInputElement).value.trim();
  if (confidence !== '') query.set('confidence', confidence);
  const form = new FormData();
  if (kind === 'TRANSACTIONS') {
    form.append('redemptions', file, file.name);
    if (sales !== undefined) form.append('sales', sales, sales.name);
  } else {
    form.append('file', file, file.name);
  }
  try {
    job = await apiJson<Job>(`/v2/reconciliations?${query}`, { method: 'POST', body: form });
  } catch (error) {
    $('upload-error').textContent = messageOf(error);
    return;
  }
  show('upload-view', false);
  show('progress-view', true);
  show('counts', false);
  renderProgress(job);
  pollTimer = window.setTimeout(poll, POLL_MS);
}

function stopPolling(): void {
  if (pollTimer !== null) window.clearTimeout(pollTimer);
  pollTimer = null;
}

async function poll(): Promise<void> {
  pollTimer = null;
  if (job === null) return;
  try {
    const current = await apiJson<Job>(`/v2/reconciliations/${job.id}`);
    if (job === null) return; // logged out meanwhile
    job = current;
  } catch (error) {
    say(messageOf(error));
    return;
  }
  renderProgress(job);
  if (job.status === 'queued' || job.status === 'running') {
    pollTimer = window.setTimeout(poll, POLL_MS);
  } else if (job.status === 'succeeded') {
    await openReview('review');
  }
}

function renderProgress(current: Job): void {
  const { progress, counts } = current;
  ($('progress') as HTMLProgressElement).value = progress.percent;
  const eta = progress.etaSeconds === null ? '' : `, about ${Math.ceil(progress.etaSeconds)} s left`;
  let text = `${current.status}: ${progress.phase}, ${progress.rowsRead} rows read, ${Math.round(progress.percent)}%${eta}`;
  if (current.error !== null) text = `${current.status}: ${current.error.message}`;
  $('progress-text').textContent = text;
  if (current.status === 'succeeded') {
    for (const key of ['accepted', 'review', 'unmatched', 'badRows'] as const) $(`count-${key}`).textContent = String(counts[key]);
    show('counts', true);
  }
  say(text);
}

// ---------------------------------------------------------------------------------------------
// Review: one row at a time, the file's row beside each candidate

interface ReviewState {
  band: Band;
  matches: Match[];
  at: number;
  /** The file's rows by recordIndex (the export's own reading of the file). */
  rows: Map<number, Record<string, unknown>>;
  /** Candidate records by entity id, fetched as they are shown. */
  entities: Map<string, Fields | null>;
  /** TRANSACTIONS: the sales side by entity id (read once per job). */
  sales: Map<string, Record<string, unknown>> | null;
}

let review: ReviewState | null = null;

const PATIENT_FIELDS: Array<[string, string]> = [
  ['firstName', 'First name'], ['lastName', 'Last name'], ['dateOfBirth', 'Date of birth'],
  ['email', 'Email'], ['phone', 'Phone'], ['postalCode', 'Postal code'], ['memberId', 'Member id'],
];
const OTHER_FIELDS: Array<[string, string]> = [
  ['fullName', 'Name'], ['firstName', 'First name'], ['lastName', 'Last name'], ['serviceDate', 'Date'], ['service', 'Service'],
  ['amount', 'Amount'], ['transactionId', 'Transaction'], ['memberId', 'Member id'],
];

async function loadRows(current: Job): Promise<Map<number, Record<string, unknown>>> {
  const body = await apiJson<{ rows: Array<{ recordIndex: number; row: Record<string, unknown> }> }>(`/v2/reconciliations/${current.id}/export?format=json&rows=all`);
  return new Map(body.rows.map((line) => [line.recordIndex, line.row]));
}

async function loadMatches(current: Job, band: Band): Promise<Match[]> {
  const matches: Match[] = [];
  for (let page = 1; ; page += 1) {
    const body = await apiJson<{ data: Match[]; pagination: { totalPages: number } }>(`/v2/reconciliations/${current.id}/matches?band=${band}&page=${page}&limit=${PAGE_LIMIT}`);
    matches.push(...body.data);
    if (page >= body.pagination.totalPages) return matches;
  }
}

async function openReview(band: Band): Promise<void> {
  if (job === null) return;
  try {
    const rows = review?.rows ?? (await loadRows(job));
    const matches = await loadMatches(job, band);
    const sales = review?.sales ?? (job.kind === 'TRANSACTIONS' ? await loadSales(job) : null);
    review = { band, matches, at: 0, rows, entities: review?.entities ?? new Map(), sales };
  } catch (error) {
    say(messageOf(error));
    return;
  }
  ($('band') as HTMLSelectElement).value = band;
  show('review-view', true);
  show('finish-view', true);
  await renderMatch();
  const count = review.matches.length;
  say(`${count} ${count === 1 ? 'row' : 'rows'} in ${band}. Press ? for the keyboard shortcuts.`);
  $('match').focus();
}

async function loadSales(current: Job): Promise<Map<string, Record<string, unknown>>> {
  const sales = new Map<string, Record<string, unknown>>();
  for (let page = 1; ; page += 1) {
    const body = await apiJson<{ data: Array<{ entityId: string; row: Record<string, unknown> }>; pagination: { totalPages: number } }>(`/v2/reconciliations/${current.id}/sales?page=${page}&limit=${PAGE_LIMIT}`);
    for (const sale of body.data) sales.set(sale.entityId, sale.row);
    if (page >= body.pagination.totalPages) return sales;
  }
}

/** A row's value for a canonical field, through the columns read as that field (or a key of that name). */
function rowValue(columns: readonly Column[], row: Record<string, unknown>, field: string): string {
  const keys = columns.filter((c) => c.readAs === field).map((c) => c.column);
  const values = (keys.length > 0 ? keys : [field]).map((key) => row[key]).filter((v) => v !== undefined && v !== null && v !== '');
  return values.map(String).join(' ');
}

const fieldsOf = (columns: readonly Column[], row: Record<string, unknown>): Fields =>
  Object.fromEntries(OTHER_FIELDS.map(([field]) => [field, rowValue(columns, row, field)]));

async function entityFields(current: Job, entityId: string): Promise<Fields | null> {
  if (review === null) return null;
  if (review.entities.has(entityId)) return review.entities.get(entityId) ?? null;
  let fields: Fields | null = null;
  try {
    if (current.kind === 'TRANSACTIONS') {
      const sale = review.sales?.get(entityId);
      fields = sale === undefined ? null : fieldsOf(current.input.sales?.columns ?? [], sale);
    } else if (current.kind === 'APPOINTMENTS') {
      const a = await apiJson<{ patientId: string; serviceId: string; startTime: string; priceCents: number }>(`/v2/appointments/${encodeURIComponent(entityId)}`);
      const [p, service] = await Promise.all([
        apiJson<{ firstName: string; lastName: string }>(`/v2/patients/${encodeURIComponent(a.patientId)}`),
        apiJson<{ name: string }>(`/v2/services/${encodeURIComponent(a.serviceId)}`),
      ]);
      fields = {
        firstName: p.firstName, lastName: p.lastName, serviceDate: a.startTime.slice(0, 10), service: service.name,
        amount: (a.priceCents / 100).toFixed(2), transactionId: '', memberId: '',
      };
    } else {
      const p = await apiJson<{ firstName: string; lastName: string; dateOfBirth: string | null; contact: { email: string | null; phone: string | null }; address?: { postalCode?: string | null } | null; externalIds?: Record<string, string> }>(`/v2/patients/${encodeURIComponent(entityId)}`);
      fields = {
        firstName: p.firstName, lastName: p.lastName, dateOfBirth: p.dateOfBirth ?? '', email: p.contact.email ?? '', phone: p.contact.phone ?? '',
        postalCode: p.address?.postalCode ?? '', memberId: Object.values(p.externalIds ?? {}).join(' '),
      };
    }
  } catch {
    fields = null; // shown as "not available"; the evidence still says why it was proposed
  }
  review.entities.set(entityId, fields);
  return fields;
}

/** For the same/differs colouring only: case, punctuation and US dates (MM/DD/YYYY) set aside. */
function normalised(value: string): string {
  const us = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec(value.trim());
  const text = us === null ? value : `${us[3]}-${us[1]!.padStart(2, '0')}-${us[2]!.padStart(2, '0')}`;
  return text.toLowerCase().replace(/[^a-z0-9@.]/g, '');
}

/** Phones compare by their last digits (the file rarely carries +1); everything else exactly. */
function agrees(field: string, incoming: string, value: string): boolean {
  const a = normalised(incoming);
  const b = normalised(value);
  return field === 'phone' ? a.slice(-10) === b.slice(-10) : a === b;
}

async function renderMatch(): Promise<void> {
  const box = $('match');
  box.replaceChildren();
  if (job === null || review === null) return;
  const total = review.matches.length;
  $('position').textContent = total === 0 ? 'no rows' : `row ${review.at + 1} of ${total}`;
  ($('prev') as HTMLButtonElement).disabled = review.at <= 0;
  ($('next') as HTMLButtonElement).disabled = review.at >= total - 1;
  const match = review.matches[review.at];
  for (const id of ['accept', 'reject', 'new']) ($(id) as HTMLButtonElement).disabled = match === undefined;
  ($('accept') as HTMLButtonElement).disabled = match === undefined || match.entityId === null;
  if (match === undefined) {
    box.append(element('p', `Nothing in ${review.band}.`, 'empty'));
    return;
  }
  const current = job;
  const row = review.rows.get(match.recordIndex) ?? {};
  const candidates = match.candidates.slice(0, 3);
  const entities = await Promise.all(candidates.map((c) => entityFields(current, c.entityId)));
  const fields = current.kind === 'PATIENTS' ? PATIENT_FIELDS : OTHER_FIELDS;

  const table = element('table');
  table.setAttribute('aria-label', `File row ${match.recordIndex + 1} beside its candidates`);
  const head = element('tr');
  head.append(element('th', 'Field'), element('th', `From the file (row ${match.recordIndex + 1})`));
  candidates.forEach((candidate, i) => {
    const th = element('th', `${i + 1}. ${Math.round(candidate.confidence * 1000) / 10}%${candidate.entityId === match.entityId ? ' · engine\'s choice' : ''}`);
    if (candidate.entityId === match.entityId) th.classList.add('chosen');
    if (match.decidedEntityId === candidate.entityId) th.classList.add('decided');
    head.append(th);
  });
  const thead = element('thead');
  thead.append(head);
  const tbody = element('tbody');
  for (const [field, label] of fields) {
    const incoming = rowValue(current.input.columns, row, field);
    const tr = element('tr');
    tr.append(element('th', label), element('td', incoming));
    entities.forEach((entity) => {
      const value = entity === null ? '' : entity[field] ?? '';
      const cell = element('td', entity === null ? '—' : value);
      if (incoming !== '' && value !== '') cell.className = agrees(field, incoming, value) ? 'same' : 'differs';
      tr.append(cell);
    });
    tbody.append(tr);
  }
  const evidence = element('tr');
  evidence.append(element('th', 'Evidence'), element('td', ''));
  for (const candidate of candidates) {
    const td = element('td');
    const list = element('ul', undefined, 'evidence');
    for (const item of candidate.evidence) list.append(element('li', item));
    td.append(list);
    evidence.append(td);
  }
  tbody.append(evidence);
  table.append(thead, tbody);
  box.append(table);
  if (candidates.length === 0) box.append(element('p', 'No candidate reached the review floor.', 'empty'));
  box.append(element('p', decisionText(match), 'decision'));
}

function decisionText(match: Match): string {
  switch (match.decision) {
    case null: return 'Undecided.';
    case 'accept': return 'Decided: accept the engine\'s choice.';
    case 'choose': return `Decided: candidate ${1 + Math.max(0, match.candidates.findIndex((c) => c.entityId === match.decidedEntityId))}.`;
    case 'reject': return 'Decided: reject.';
    case 'new': return 'Decided: new patient.';
  }
}

function move(step: number): void {
  if (review === null) return;
  const next = review.at + step;
  if (next < 0 || next >= review.matches.length) return;
  review.at = next;
  void renderMatch();
}

async function decide(action: Action, candidateNumber?: number): Promise<void> {
  if (job === null || review === null) return;
  const match = review.matches[review.at];
  if (match === undefined) return;
  let entityId: string | undefined;
  if (candidateNumber !== undefined) {
    const candidate = match.candidates[candidateNumber - 1];
    if (candidate === undefined) return;
    // The engine's own choice is an accept; any other candidate is a choose naming it.
    if (candidate.entityId === match.entityId) action = 'accept';
    else entityId = candidate.entityId;
  }
  if (action === 'accept' && match.entityId === null) return;
  try {
    await postJson(`/v2/reconciliations/${job.id}/decisions`, { decisions: [{ recordIndex: match.recordIndex, action, ...(entityId ? { entityId } : {}) }] });
  } catch (error) {
    say(messageOf(error));
    return;
  }
  match.decision = action;
  match.decidedEntityId = action === 'choose' ? entityId ?? null : action === 'accept' ? match.entityId : null;
  say(`Row ${match.recordIndex + 1}: ${decisionText(match)}`);
  if (review.at < review.matches.length - 1) review.at += 1;
  await renderMatch();
}

async function decideBand(): Promise<void> {
  if (job === null || review === null) return;
  const action = ($('bulk-action') as HTMLSelectElement).value;
  try {
    const result = await postJson<{ decided: number }>(`/v2/reconciliations/${job.id}/decisions`, { band: review.band, action });
    say(`${result.decided} rows in ${review.band} decided: ${action}.`);
  } catch (error) {
    say(messageOf(error));
    return;
  }
  await openReview(review.band);
}

// ---------------------------------------------------------------------------------------------
// Apply and export

async function applyDecisions(): Promise<void> {
  if (job === null) return;
  try {
    const result = await postJson<{ linked: number; created: number; failed: number }>(`/v2/reconciliations/${job.id}/apply`, {});
    const text = `Applied: ${result.linked} linked, ${result.created} created, ${result.failed} failed.`;
    $('apply-result').textContent = text;
    say(text);
  } catch (error) {
    $('apply-result').textContent = messageOf(error);
  }
}

/** Fetched with the bearer token (a plain link could not carry it), handed to the browser as a file. */
async function download(rows: 'all' | 'exceptions'): Promise<void> {
  if (job === null) return;
  try {
    const response = await api(`/v2/reconciliations/${job.id}/export?format=csv&rows=${rows}`);
    const name = /filename="([^"]+)"/.exec(response.headers.get('content-disposition') ?? '')?.[1] ?? `reconciliation-${rows}.csv`;
    const url = URL.createObjectURL(await response.blob());
    const link = element('a');
    link.href = url;
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    // The object URL holds the file's PHI in memory: released once the browser has taken it.
    window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
    say(`Downloaded ${name}.`);
  } catch (error) {
    say(messageOf(error));
  }
}

function messageOf(error: unknown): string {
  if (error instanceof RequestFailed) return `${error.error.message} (${error.error.code})`;
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------------------------
// Keyboard shortcuts (only while reviewing, and never while typing in a field)

function toggleHelp(): void {
  const help = $('help') as HTMLDialogElement;
  if (help.open) help.close();
  else help.showModal();
}

function onKey(event: KeyboardEvent): void {
  if (review === null || $('review-view').hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target as HTMLElement | null;
  if (target !== null && ['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName)) return;
  const help = $('help') as HTMLDialogElement;
  if (help.open && event.key !== '?') return;
  const key = event.key.toLowerCase();
  const actions: Record<string, () => void> = {
    a: () => void decide('accept'),
    r: () => void decide('reject'),
    n: () => void decide('new'),
    j: () => move(1),
    k: () => move(-1),
    '1': () => void decide('choose', 1),
    '2': () => void decide('choose', 2),
    '3': () => void decide('choose', 3),
    '?': toggleHelp,
  };
  const run = actions[key];
  if (run === undefined) return;
  event.preventDefault();
  run();
}

// ---------------------------------------------------------------------------------------------
// Wiring

function start(): void {
  ($('login-form') as HTMLFormElement).addEventListener('submit', (event) => void logIn(event));
  ($('upload-form') as HTMLFormElement).addEventListener('submit', (event) => void upload(event));
  $('kind').addEventListener('change', kindChanged);
  $('logout').addEventListener('click', () => void logOut());
  $('band').addEventListener('change', () => void openReview(($('band') as HTMLSelectElement).value as Band));
  $('prev').addEventListener('click', () => move(-1));
  $('next').addEventListener('click', () => move(1));
  $('accept').addEventListener('click', () => void decide('accept'));
  $('reject').addEventListener('click', () => void decide('reject'));
  $('new').addEventListener('click', () => void decide('new'));
  $('bulk').addEventListener('click', () => void decideBand());
  $('apply').addEventListener('click', () => void applyDecisions());
  $('export-all').addEventListener('click', () => void download('all'));
  $('export-exceptions').addEventListener('click', () => void download('exceptions'));
  $('again').addEventListener('click', startUpload);
  $('help-open').addEventListener('click', toggleHelp);
  $('help-close').addEventListener('click', toggleHelp);
  document.addEventListener('keydown', onKey);
  say('Log in with your MedSpaSync Pro account.');
}

start();
