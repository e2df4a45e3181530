// Practices, users and credentials for integration tests, made through the same code paths the
// service uses (insertPractice/insertUser, signAccessToken with the app's keys).
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { signAccessToken } from '../../src/auth/jwt.js';
import { permissionsForRole, type Role } from '../../src/auth/rbac.js';
import { withSystem } from '../../src/db/scope.js';
import { insertPractice, insertUser } from '../../src/users/first-start.js';

export interface TestUser {
  id: string;
  email: string;
  password: string;
  role: Role;
  /** A valid access token for this user. */
  token: string;
  /** Headers carrying that token. */
  headers: { authorization: string };
}

export interface TestPractice {
  id: string;
  users: Record<Role, TestUser>;
}

export const TEST_PASSWORD = 'correct horse battery staple';

export function bearer(app: FastifyInstance, user: { id: string; email: string; role: Role; practiceId: string }) {
  const { token } = signAccessToken(
    { sub: user.id, email: user.email, role: user.role, practiceId: user.practiceId, permissions: permissionsForRole(user.role) },
    {
      secret: app.auth.signingSecret,
      kid: app.auth.signingKid,
      issuer: app.config.jwtIssuer,
      audience: app.config.jwtAudience,
      ttlSeconds: app.config.accessTokenTtlSeconds,
    },
  );
  return token;
}

/** A practice with one user of each role (ADMIN, PRACTITIONER, STAFF, MANAGER). */
export async function createTestPractice(app: FastifyInstance, name = 'Test Spa', timeZone = 'America/New_York'): Promise<TestPractice> {
  const tag = randomBytes(4).toString('hex');
  const practiceId = await withSystem(app.db, (tx) => insertPractice(tx, { name, timeZone }));
  const users = {} as Record<Role, TestUser>;
  for (const role of ['ADMIN', 'PRACTITIONER', 'STAFF', 'MANAGER'] as const) {
    const email = `${role.toLowerCase()}.${tag}@example.test`;
    const id = await withSystem(app.db, (tx) =>
      insertUser(tx, practiceId, { email, password: TEST_PASSWORD, role, firstName: role[0] + role.slice(1).toLowerCase(), lastName: 'Tester' }),
    );
    const token = bearer(app, { id, email, role, practiceId });
    users[role] = { id, email, password: TEST_PASSWORD, role, token, headers: { authorization: `Bearer ${token}` } };
  }
  return { id: practiceId, users };
}
