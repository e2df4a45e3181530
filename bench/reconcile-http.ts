// End-to-end benchmark of POST /v1/ai/reconcile over real HTTP: `npm run bench:reconcile`.
//
// For each FEBRL development split (bench/febrl.ts: "-org" rows are the practice's patients,
// "-dup-" rows the incoming export, truth by rec_id, never soc_sec_id) and a synthetic med-spa
// split of 5,000 patients x 5,000 incoming records (test/reconcile/synthetic.ts), it
//   1. starts the real server (buildApp + listen) on an embedded PGlite, or on PostgreSQL when
//      DATABASE_URL is set (a fresh schema, dropped at the end);
//   2. seeds a new practice's patients through POST /v1/patients/import (mode partial: rows the
//      API refuses, e.g. FEBRL originals without a given name, are left out and their duplicates
//      then have no true match). The synthetic split is seeded with SQL instead (one
//      practice-scoped transaction): its generator makes random +1 numbers, many of which are not
//      valid NANP numbers, and the API rightly refuses those, which would leave 40% of the
//      practice out;
//   3. sends the export to POST /v1/ai/reconcile with each algorithm at the default threshold,
//      and prints precision, recall, F1, mean confidence, the server's processingTime and the
//      client's wall time (request sent -> JSON parsed).
// The first request for each split is not timed but reported as "first" (for the first split it
// also starts the worker thread; later splits see the practice's data for the first time).
// Options: --runs N (timed repetitions, default 3), --only dataset1,synthetic, --algorithms HYBRID.
import { encryptPlaintextPatients } from '../src/patients/encrypt-existing.js';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../src/app.js';
import { testConfig } from '../src/config.js';
import { openPglite, openPostgres, type Database } from '../src/db/database.js';
import { withPractice } from '../src/db/scope.js';
import type { PracticePatient } from '../src/reconcile/engine/engine.js';
import { createTestPractice } from '../test/helpers/identity.js';
import { generateSyntheticSplit } from '../test/reconcile/synthetic.js';
import { FEBRL_SPLITS, loadFebrlSplit } from './febrl.js';

interface Split {
  name: string;
  /** How the practice is seeded: the import API, or SQL (see the header comment). */
  seed: 'api' | 'sql';
  practice: PracticePatient[];
  incoming: Record<string, unknown>[];
  truth: (string | null)[];
}

interface Match {
  recordIndex: number;
  entityId: string;
  confidence: number;
}

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const index = args.indexOf(`--${name}`);
  return index === -1 ? undefined : args[index + 1];
};
const RUNS = Number(option('runs') ?? 3);
const ONLY = option('only')?.split(',');
const ALGORITHMS = (option('algorithms')?.split(',') ?? ['FUZZY_MATCH', 'ML_MODEL', 'HYBRID']) as string[];

async function openDatabase(): Promise<{ db: Database; label: string; drop(): Promise<void> }> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const db = await openPglite({ dataDir: undefined });
    return { db, label: 'PGlite (embedded)', drop: async () => db.close() };
  }
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const admin = await openPostgres({ connectionString: url, poolSize: 1 });
  await admin.exec(`CREATE SCHEMA ${schema}`);
  const db = await openPostgres({ connectionString: url, poolSize: 10, searchPath: `${schema},public` });
  return {
    db,
    label: 'PostgreSQL',
    drop: async () => {
      await db.close();
      await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    },
  };
}

/** A practice patient as PatientCreate (v1) wants it: no nulls, no empty strings. */
function toPatientCreate(patient: PracticePatient): Record<string, unknown> {
  const body: Record<string, unknown> = { firstName: patient.firstName, lastName: patient.lastName };
  if (patient.dateOfBirth) body.dateOfBirth = patient.dateOfBirth;
  if (patient.email) body.email = patient.email;
  if (patient.phoneNumber) body.phoneNumber = patient.phoneNumber;
  if (patient.gender) body.gender = patient.gender;
  const address = Object.fromEntries(Object.entries(patient.address ?? {}).filter(([, v]) => typeof v === 'string' && v !== ''));
  if (Object.keys(address).length > 0) body.address = address;
  return body;
}

function score(matches: Match[], truth: (string | null)[]) {
  let truePositives = 0;
  for (const match of matches) if (truth[match.recordIndex] === match.entityId) truePositives += 1;
  const actual = truth.filter((id) => id !== null).length;
  const precision = matches.length === 0 ? 1 : truePositives / matches.length;
  const recall = actual === 0 ? 1 : truePositives / actual;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  const meanConfidence = matches.length === 0 ? 0 : matches.reduce((sum, m) => sum + m.confidence, 0) / matches.length;
  return { precision, recall, f1, meanConfidence, matched: matches.length, truePositives, actual };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const pct = (value: number) => `${(value * 100).toFixed(2)}%`.padStart(8);
const ms = (value: number) => `${Math.round(value)} ms`.padStart(8);

function splits(): Split[] {
  const all: Split[] = [];
  for (const name of FEBRL_SPLITS) {
    if (ONLY && !ONLY.includes(name)) continue;
    const split = loadFebrlSplit(name);
    all.push({ name: `febrl ${name}`, seed: 'api', practice: split.practice, incoming: split.incoming, truth: split.truth });
  }
  if (!ONLY || ONLY.includes('synthetic')) {
    const synthetic = generateSyntheticSplit(2024, { practiceSize: 5000, incomingSize: 5000 });
    all.push({ name: 'synthetic 5000x5000', seed: 'sql', practice: synthetic.practice, incoming: synthetic.incoming, truth: synthetic.truth });
  }
  return all;
}

async function main(): Promise<void> {
  const { db, label, drop } = await openDatabase();
  const config = testConfig({ logLevel: 'warn', rateLimitEnabled: false, nodeEnv: 'production' });
  const app = await buildApp(config, { db });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  console.log(`reconcile HTTP benchmark: ${label}, ${RUNS} timed runs per algorithm (median), Node ${process.version}`);
  console.log('split                  algorithm    precision   recall       F1  mean conf  server(ms) wall(ms) first(ms)');

  try {
    for (const split of splits()) {
      const practice = await createTestPractice(app, split.name);
      const headers = { ...practice.users.ADMIN.headers, 'content-type': 'application/json' };

      // Seed the practice, and map the split's ids to the created ones.
      const seedStarted = performance.now();
      const idByOriginal = new Map<string, string>();
      let refused = 0;
      if (split.seed === 'sql') {
        await withPractice(app.db, practice.id, async (tx) => {
          for (const patient of split.practice) {
            const { rows } = await tx.query<{ id: string }>(
              `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, email, phone_number, gender, address)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) ON CONFLICT DO NOTHING RETURNING id`,
              [practice.id, patient.firstName, patient.lastName, patient.dateOfBirth, patient.email, patient.phoneNumber, patient.gender ?? null, patient.address ? JSON.stringify(patient.address) : null],
            );
            if (rows[0]) idByOriginal.set(patient.id, rows[0].id);
            else refused += 1;
          }
        });
        // Seeded in plaintext as before migration 015: sealed as a start would.
        await encryptPlaintextPatients(app.db, app.keyring);
      } else {
        const imported = await fetch(`${base}/v1/patients/import`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ mode: 'partial', patients: split.practice.map(toPatientCreate) }),
        });
        if (!imported.ok) throw new Error(`import failed: ${imported.status} ${(await imported.text()).slice(0, 500)}`);
        const result = (await imported.json()) as { failed: number; results: { row: number; id?: string }[] };
        for (const row of result.results) if (row.id) idByOriginal.set(split.practice[row.row]!.id, row.id);
        refused = result.failed;
      }
      const truth = split.truth.map((original) => (original === null ? null : idByOriginal.get(original) ?? null));
      console.log(
        `# ${split.name}: ${split.practice.length} practice rows -> ${idByOriginal.size} patients via ${split.seed === 'api' ? 'POST /v1/patients/import' : 'SQL'} (${refused} refused) in ${Math.round(performance.now() - seedStarted)} ms; ${split.incoming.length} incoming, ${truth.filter((t) => t !== null).length} with a true match`,
      );

      const body = JSON.stringify({ data: split.incoming });
      let cold: number | null = null;
      for (const algorithm of ALGORITHMS) {
        const walls: number[] = [];
        const servers: number[] = [];
        let scored: ReturnType<typeof score> | null = null;
        const warmups = cold === null ? 1 : 0;
        for (let run = 0; run < RUNS + warmups; run += 1) {
          const started = performance.now();
          const response = await fetch(`${base}/v1/ai/reconcile`, { method: 'POST', headers, body: body.replace(/^\{/, `{"algorithm":"${algorithm}",`) });
          const json = (await response.json()) as { matches: Match[]; processingTime: number; error?: unknown };
          const wall = performance.now() - started;
          if (!response.ok) throw new Error(`reconcile failed: ${response.status} ${JSON.stringify(json).slice(0, 500)}`);
          if (cold === null) {
            cold = wall; // worker start-up + first compile
            continue;
          }
          walls.push(wall);
          servers.push(json.processingTime);
          scored = score(json.matches, truth);
        }
        const s = scored!;
        console.log(
          `${split.name.padEnd(22)} ${algorithm.padEnd(11)} ${pct(s.precision)} ${pct(s.recall)} ${pct(s.f1)} ${s.meanConfidence.toFixed(4).padStart(9)} ${ms(median(servers))} ${ms(median(walls))} ${algorithm === ALGORITHMS[0] ? ms(cold ?? NaN) : ''}`,
        );
      }
    }
    const memory = process.memoryUsage();
    console.log(`# main process RSS ${Math.round(memory.rss / 1048576)} MB, heap ${Math.round(memory.heapUsed / 1048576)} MB; each worker's heap is capped at 1024 MB (resourceLimits)`);
  } finally {
    await app.close();
    await drop();
  }
}

await main();
