// /v1/reports/appointments (read:reports): what the practice booked and earned over a range of
// calendar days in its time zone. One aggregate query with GROUPING SETS reads the range once
// (from the covering index appointments_practice_start_idx) and returns the overall, per-status,
// per-practitioner and per-service rows together; a second small query names the practitioners
// and services it found.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import { principalOf } from '../auth/guard.js';
import type { Queryable } from '../db/database.js';
import { withPractice } from '../db/scope.js';
import { validationError } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';

export const MAX_REPORT_DAYS = 366;
const STATUSES = ['SCHEDULED', 'CONFIRMED', 'COMPLETED', 'CANCELLED', 'NO_SHOW'] as const;

const ReportQuery = Type.Object(
  {
    startDate: Type.String({ format: 'date', description: "First calendar day in the practice's time zone (inclusive)" }),
    endDate: Type.String({ format: 'date', description: `Last calendar day (inclusive); at most ${MAX_REPORT_DAYS} days after startDate` }),
  },
  { additionalProperties: false },
);

const Counts = {
  total: Type.Integer(),
  scheduled: Type.Integer(),
  confirmed: Type.Integer(),
  completed: Type.Integer(),
  cancelled: Type.Integer(),
  noShow: Type.Integer(),
  bookedRevenueCents: Type.Integer({ description: 'Price of every appointment not cancelled and not a no-show' }),
  completedRevenueCents: Type.Integer({ description: 'Price of completed appointments' }),
};

const AppointmentReport = Type.Object(
  {
    startDate: Type.String({ format: 'date' }),
    endDate: Type.String({ format: 'date' }),
    timeZone: Type.String(),
    totals: Type.Object({
      ...Counts,
      cancellationRate: Type.Number({ description: 'cancelled / total (0 when there are none)' }),
      noShowRate: Type.Number({ description: 'noShow / total (0 when there are none)' }),
    }),
    byStatus: Type.Object(Object.fromEntries(STATUSES.map((status) => [status, Type.Integer()]))),
    byPractitioner: Type.Array(
      Type.Object({ practitionerId: Type.String({ format: 'uuid' }), firstName: Type.String(), lastName: Type.String(), ...Counts }),
    ),
    byService: Type.Array(
      Type.Object({ serviceId: Type.String({ format: 'uuid' }), name: Type.String(), category: Type.String(), ...Counts }),
    ),
  },
  { additionalProperties: false },
);
type AppointmentReport = Static<typeof AppointmentReport>;
type CountsBody = {
  total: number;
  scheduled: number;
  confirmed: number;
  completed: number;
  cancelled: number;
  noShow: number;
  bookedRevenueCents: number;
  completedRevenueCents: number;
};

interface AggregateRow {
  level: 'all' | 'status' | 'practitioner' | 'service';
  status: string | null;
  practitioner_id: string | null;
  service_id: string | null;
  total: number;
  scheduled: number;
  confirmed: number;
  completed: number;
  cancelled: number;
  no_show: number;
  booked_cents: number;
  completed_cents: number;
}

function daysBetween(startDate: string, endDate: string): number {
  return Math.round((Date.parse(`${endDate}T00:00:00Z`) - Date.parse(`${startDate}T00:00:00Z`)) / 86_400_000);
}

const counts = (row: AggregateRow | undefined): CountsBody => ({
  total: row?.total ?? 0,
  scheduled: row?.scheduled ?? 0,
  confirmed: row?.confirmed ?? 0,
  completed: row?.completed ?? 0,
  cancelled: row?.cancelled ?? 0,
  noShow: row?.no_show ?? 0,
  bookedRevenueCents: row?.booked_cents ?? 0,
  completedRevenueCents: row?.completed_cents ?? 0,
});

const rate = (part: number, total: number) => (total === 0 ? 0 : Math.round((part / total) * 10_000) / 10_000);

export async function appointmentReport(
  tx: Queryable,
  practiceId: string,
  startDate: string,
  endDate: string,
): Promise<AppointmentReport> {
  // The bounds first, as plain instants: under row-level security an expression calling
  // timezone() (not leakproof) could not be an index condition (see appointments/repository.ts).
  const bounds = await tx.query<{ from_ts: Date; until_ts: Date; time_zone: string }>(
    `SELECT ($2::date::timestamp AT TIME ZONE time_zone) AS from_ts,
            (($3::date + 1)::timestamp AT TIME ZONE time_zone) AS until_ts, time_zone
       FROM practices WHERE id = $1`,
    [practiceId, startDate, endDate],
  );
  const range = bounds.rows[0];
  const { rows } = await tx.query<AggregateRow>(
    `SELECT CASE WHEN GROUPING(a.status) = 0 THEN 'status'
                 WHEN GROUPING(a.practitioner_id) = 0 THEN 'practitioner'
                 WHEN GROUPING(a.service_id) = 0 THEN 'service'
                 ELSE 'all' END AS level,
            a.status, a.practitioner_id, a.service_id,
            count(*)::int AS total,
            count(*) FILTER (WHERE a.status = 'SCHEDULED')::int AS scheduled,
            count(*) FILTER (WHERE a.status = 'CONFIRMED')::int AS confirmed,
            count(*) FILTER (WHERE a.status = 'COMPLETED')::int AS completed,
            count(*) FILTER (WHERE a.status = 'CANCELLED')::int AS cancelled,
            count(*) FILTER (WHERE a.status = 'NO_SHOW')::int AS no_show,
            coalesce(sum(a.price_cents) FILTER (WHERE a.status IN ('SCHEDULED', 'CONFIRMED', 'COMPLETED')), 0)::bigint AS booked_cents,
            coalesce(sum(a.price_cents) FILTER (WHERE a.status = 'COMPLETED'), 0)::bigint AS completed_cents
       FROM appointments a
      WHERE a.practice_id = $1 AND a.start_time >= $2::timestamptz AND a.start_time < $3::timestamptz
      GROUP BY GROUPING SETS ((), (a.status), (a.practitioner_id), (a.service_id))`,
    [
      practiceId,
      range ? new Date(range.from_ts).toISOString() : null,
      range ? new Date(range.until_ts).toISOString() : null,
    ],
  );
  const all = rows.find((row) => row.level === 'all');
  const practitionerRows = rows.filter((row) => row.level === 'practitioner');
  const serviceRows = rows.filter((row) => row.level === 'service');

  const names = await tx.query<{ kind: string; id: string; a: string; b: string }>(
    `SELECT 'practitioner' AS kind, id, first_name AS a, last_name AS b FROM users WHERE id = ANY($1::uuid[])
     UNION ALL
     SELECT 'service', id, name, category FROM services WHERE id = ANY($2::uuid[])`,
    [practitionerRows.map((row) => row.practitioner_id), serviceRows.map((row) => row.service_id)],
  );
  const nameOf = new Map(names.rows.map((row) => [`${row.kind}:${row.id}`, row]));

  const total = counts(all);
  return {
    startDate,
    endDate,
    timeZone: range?.time_zone ?? 'UTC',
    totals: { ...total, cancellationRate: rate(total.cancelled, total.total), noShowRate: rate(total.noShow, total.total) },
    byStatus: Object.fromEntries(
      STATUSES.map((status) => [status, rows.find((row) => row.level === 'status' && row.status === status)?.total ?? 0]),
    ),
    byPractitioner: practitionerRows
      .map((row) => {
        const name = nameOf.get(`practitioner:${row.practitioner_id}`);
        return { practitionerId: row.practitioner_id!, firstName: name?.a ?? '', lastName: name?.b ?? '', ...counts(row) };
      })
      .sort((x, y) => y.total - x.total || x.practitionerId.localeCompare(y.practitionerId)),
    byService: serviceRows
      .map((row) => {
        const name = nameOf.get(`service:${row.service_id}`);
        return { serviceId: row.service_id!, name: name?.a ?? '', category: name?.b ?? '', ...counts(row) };
      })
      .sort((x, y) => y.total - x.total || x.serviceId.localeCompare(y.serviceId)),
  };
}

export async function reportRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.db;

  app.get(
    '/reports/appointments',
    {
      config: { permission: 'read:reports' },
      schema: {
        tags: ['Reports'],
        summary: 'Appointment report',
        operationId: 'getAppointmentReport',
        description:
          'Counts by status, practitioner and service, cancellation and no-show rates, booked and completed revenue ' +
          "(cents, at the price when booked) for appointments starting within [startDate, endDate] in the practice's time zone.",
        querystring: ReportQuery,
        response: { 200: AppointmentReport, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { startDate, endDate } = request.query;
      const days = daysBetween(startDate, endDate);
      if (days < 0) throw validationError([{ field: 'endDate', message: 'must not be before startDate' }]);
      if (days >= MAX_REPORT_DAYS) {
        throw validationError([{ field: 'endDate', message: `a report covers at most ${MAX_REPORT_DAYS} days` }]);
      }
      return withPractice(db, principal.practiceId, async (tx) => {
        const report = await appointmentReport(tx, principal.practiceId, startDate, endDate);
        await recordAudit(tx, {
          ...requestOrigin(request),
          practiceId: principal.practiceId,
          actorType: principal.kind,
          actorId: principal.id,
          action: 'report.appointments',
          resourceType: 'report',
          resourceIds: [],
          outcome: 'success',
          details: { startDate, endDate, total: report.totals.total },
        });
        return report;
      });
    },
  );
}
