// The version registry (blueprint 5.1) as data, and the headers that announce a version's end:
// Deprecation (RFC 9745), Sunset (RFC 8594) and a Link to the migration guide. A version past its
// sunset date answers 410 Gone for everything under its prefix.
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { AppError } from './errors.js';

export type VersionStatus = 'stable' | 'beta' | 'deprecated';
/** Whether a listed feature can be used today: the blueprint lists v2's features before they ship. */
export type FeatureAvailability = 'available' | 'planned';

export interface ApiVersion {
  version: string;
  status: VersionStatus;
  deprecationDate: string | null;
  sunsetDate: string | null;
  features: string[];
  /** Whether each feature is served today (`planned`: promised by the blueprint, not yet built). */
  featureStatus: Record<string, 'available' | 'planned'>;
}

export const MIGRATION_GUIDE_PATH = '/docs/migration';

// Blueprint 5.1. Its v2 dates (deprecation 2024-12-31, sunset 2025-12-31) are already past and
// would retire v2 before it shipped, so dates come from configuration (V2_DEPRECATION_DATE,
// V2_SUNSET_DATE, likewise V1_*) and are unset by default. docs/versioning.md explains.
const REGISTRY: ReadonlyArray<Omit<ApiVersion, 'deprecationDate' | 'sunsetDate'>> = [
  {
    version: 'v1',
    status: 'stable',
    features: ['basic_crud', 'authentication', 'appointments'],
    featureStatus: { basic_crud: 'available', authentication: 'available', appointments: 'available' },
  },
  {
    version: 'v2',
    status: 'beta',
    features: ['advanced_ai', 'real_time_updates', 'webhooks'],
    // real_time_updates: GET /v2/events/stream; webhooks: /v2/webhooks (docs/events.md). advanced_ai: the
    // reconciliation workflow of /v2/reconciliations (PATIENTS, APPOINTMENTS, TRANSACTIONS jobs, review,
    // apply, export; docs/reconciliation.md).
    featureStatus: { advanced_ai: 'available', real_time_updates: 'available', webhooks: 'available' },
  },
];

export const MigrationStrategy = {
  backwardCompatibility: true,
  deprecationNotice: true,
  automaticUpgrade: false,
  migrationGuide: MIGRATION_GUIDE_PATH,
} as const;

export function versionRegistry(config: Config): ApiVersion[] {
  return REGISTRY.map((entry) => {
    const dates = config.versionDates[entry.version] ?? { deprecationDate: null, sunsetDate: null };
    return { ...entry, ...dates };
  });
}

const startOfDayUtc = (date: string) => Date.parse(`${date}T00:00:00Z`);

/** RFC 9745: a Structured Field Date, i.e. "@" and Unix seconds. */
export const deprecationHeader = (date: string) => `@${Math.floor(startOfDayUtc(date) / 1000)}`;
/** RFC 8594: an IMF-fixdate. */
export const sunsetHeader = (date: string) => new Date(startOfDayUtc(date)).toUTCString();

export const VersionList = Type.Object({
  data: Type.Array(
    Type.Object({
      version: Type.String(),
      status: Type.Union([Type.Literal('stable'), Type.Literal('beta'), Type.Literal('deprecated')]),
      deprecationDate: Type.Union([Type.String({ format: 'date' }), Type.Null()]),
      sunsetDate: Type.Union([Type.String({ format: 'date' }), Type.Null()]),
      features: Type.Array(Type.String()),
      featureStatus: Type.Record(Type.String(), Type.Union([Type.Literal('available'), Type.Literal('planned')]), {
        description: 'For each feature: available (served today) or planned',
      }),
    }),
  ),
  migrationStrategy: Type.Object({
    backwardCompatibility: Type.Boolean(),
    deprecationNotice: Type.Boolean(),
    automaticUpgrade: Type.Boolean(),
    migrationGuide: Type.String(),
  }),
});

export function registerVersionHeaders(app: FastifyInstance, config: Config, now: () => number = Date.now): void {
  const versions = versionRegistry(config);
  app.addHook('onRequest', (request, reply, done) => {
    const prefix = /^\/(v\d+)(?:\/|$|\?)/.exec(request.url)?.[1];
    const version = versions.find((v) => v.version === prefix);
    if (version === undefined) return done();
    // RFC 9745 allows a future date: clients learn of a planned deprecation before it happens.
    if (version.deprecationDate !== null) {
      reply.header('deprecation', deprecationHeader(version.deprecationDate));
      reply.header('link', `<${MIGRATION_GUIDE_PATH}>; rel="deprecation"; type="text/plain"`);
    }
    if (version.sunsetDate !== null) {
      reply.header('sunset', sunsetHeader(version.sunsetDate));
      if (now() >= startOfDayUtc(version.sunsetDate)) {
        return done(
          new AppError('GONE', 410, `API ${version.version} was retired on ${version.sunsetDate}; see ${MIGRATION_GUIDE_PATH}`),
        );
      }
    }
    done();
  });
}

/** A version's status today: from its deprecation (or, failing that, its sunset) date on it is "deprecated". */
export function statusOn(version: Pick<ApiVersion, 'status' | 'deprecationDate' | 'sunsetDate'>, at: number): VersionStatus {
  const since = version.deprecationDate ?? version.sunsetDate;
  return since !== null && at >= startOfDayUtc(since) ? 'deprecated' : version.status;
}

export function registerVersionRoutes(app: FastifyInstance, config: Config, migrationGuide: string, now: () => number = Date.now): void {
  const versions = versionRegistry(config);
  app.get(
    '/versions',
    { schema: { tags: ['Meta'], summary: 'API versions and their status', response: { 200: VersionList } }, config: { public: true } },
    async () => ({ data: versions.map((version) => ({ ...version, status: statusOn(version, now()) })), migrationStrategy: { ...MigrationStrategy } }),
  );
  app.get(MIGRATION_GUIDE_PATH, { schema: { hide: true }, config: { public: true } }, async (_request, reply) =>
    reply.type('text/plain; charset=utf-8').send(migrationGuide),
  );
}
