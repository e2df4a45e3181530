// Break-glass emergency access: granted only as the policy says, audited at the grant and at
// every use, and stopped by expiry, revocation, the user's own end and any token cut-off.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { signAccessToken } from '../../src/auth/jwt.js';
import { permissionsForRole } from '../../src/auth/rbac.js';
import { advanceTokenCutoff } from '../../src/auth/sessions.js';
import { totp } from '../../src/auth/totp.js';
import { withSystem } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice, type TestUser } from '../helpers/identity.js';
import { auditEventsFor, createPatient, errorOf } from '../patients/helpers.js';

const REASON = 'Patient reaction in treatment room 2, chart update needed';

/** Enrols MFA through the API; returns the recovery codes (each opens one grant request). */
async function enrolMfa(app: FastifyInstance, user: TestUser): Promise<string[]> {
  const setup = await app.inject({ method: 'POST', url: '/v1/auth/mfa/setup', headers: user.headers, payload: { password: user.password } });
  const { secret } = setup.json() as { secret: string };
  const verify = await app.inject({ method: 'POST', url: '/v1/auth/mfa/verify', headers: user.headers, payload: { token: totp(secret, { algorithm: 'SHA256' }) } });
  assert.equal(verify.statusCode, 200, verify.body);
  return (verify.json() as { recoveryCodes: string[] }).recoveryCodes;
}

for (const target of databaseTargets()) {
  describe(`emergency access on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const testApp = await startTestApp(db);
    const { app } = testApp;
    const practice = await createTestPractice(app, 'Glass Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const practitioner = practice.users.PRACTITIONER;
    const staff = practice.users.STAFF;
    const admin = practice.users.ADMIN.headers;
    const codes = { [practitioner.id]: await enrolMfa(app, practitioner), [staff.id]: await enrolMfa(app, staff) };
    const patient = await createPatient(app, admin);

    const breakGlass = (user: TestUser, body: Record<string, unknown> = {}) =>
      app.inject({
        method: 'POST',
        url: '/v1/emergency-access',
        headers: user.headers,
        payload: { permissions: ['write:patients'], reason: REASON, mfaToken: codes[user.id]?.pop(), ...body },
      });
    const grantFor = async (user: TestUser, body: Record<string, unknown> = {}) => {
      const response = await breakGlass(user, body);
      assert.equal(response.statusCode, 201, response.body);
      return response.json() as { id: string; expiresAt: string; grantedAt: string; permissions: string[] };
    };
    const patch = (user: TestUser) =>
      app.inject({ method: 'PATCH', url: `/v1/patients/${patient.id}`, headers: user.headers, payload: { notes: 'emergency note' } });
    const revoke = (grantId: string, headers = admin) =>
      app.inject({ method: 'POST', url: `/v1/emergency-access/${grantId}/revoke`, headers, payload: { reason: 'reviewed' } });

    test('a practitioner gets write:patients by breaking glass, and every use is audited with the grant', async () => {
      assert.equal((await patch(practitioner)).statusCode, 403);
      const granted = await breakGlass(practitioner);
      assert.equal(granted.statusCode, 201, granted.body);
      const grant = granted.json() as { id: string; grantedAt: string; expiresAt: string };
      assert.equal(granted.headers.location, `/v1/emergency-access/${grant.id}`);
      // Default length: 60 minutes.
      assert.equal(Date.parse(grant.expiresAt) - Date.parse(grant.grantedAt), 60 * 60_000);
      const grantEvents = await auditEventsFor(db, String(granted.headers['x-request-id']));
      assert.deepEqual(grantEvents.map((e) => [e.action, e.outcome, e.resource_ids]), [['emergency_access.granted', 'success', [grant.id]]]);

      const used = await patch(practitioner);
      assert.equal(used.statusCode, 200, used.body);
      const events = await auditEventsFor(db, String(used.headers['x-request-id']));
      assert.deepEqual(events.map((e) => e.action), ['emergency_access.used', 'patient.update']);
      assert.deepEqual(events[0]!.resource_ids, [grant.id]);
      assert.equal(events[0]!.details.permission, 'write:patients');

      // Announced in the outbox, and loud in the log without the reason's text.
      const { rows } = await withSystem(db, (tx) => tx.query<{ type: string }>('SELECT type FROM outbox_events WHERE resource_id = $1', [grant.id]));
      assert.deepEqual(rows.map((r) => r.type), ['emergency_access.granted']);
      const warnings = testApp.logs.filter((line) => line.level === 40 && String(line.msg).startsWith('emergency access'));
      assert.deepEqual([...new Set(warnings.map((line) => line.msg))].sort(), ['emergency access granted', 'emergency access used']);
      assert.ok(!testApp.rawLog().includes('treatment room'));

      const list = await app.inject({ method: 'GET', url: '/v1/emergency-access?active=true', headers: admin });
      assert.equal(list.statusCode, 200, list.body);
      const listed = (list.json() as { data: Array<{ id: string; uses: number; reason: string; userId: string }> }).data.find((g) => g.id === grant.id);
      assert.deepEqual({ uses: listed?.uses, reason: listed?.reason, userId: listed?.userId }, { uses: 1, reason: REASON, userId: practitioner.id });
      assert.equal((await revoke(grant.id)).statusCode, 200);
    });

    test('a break-glass grant stops working the minute it expires', async () => {
      const grant = await grantFor(practitioner, { durationMinutes: 5 });
      assert.equal((await patch(practitioner)).statusCode, 200);
      await withSystem(db, (tx) =>
        tx.query("UPDATE emergency_access_grants SET granted_at = now() - interval '6 minutes', expires_at = now() - interval '1 minute' WHERE id = $1", [grant.id]),
      );
      assert.equal((await patch(practitioner)).statusCode, 403);
    });

    test('a revoked grant stops at the next request, and the review shows who ended it and why', async () => {
      const grant = await grantFor(practitioner);
      assert.equal((await patch(practitioner)).statusCode, 200);
      const revoked = await revoke(grant.id);
      assert.equal(revoked.statusCode, 200, revoked.body);
      const body = revoked.json() as { active: boolean; endedBy: string; endReason: string; uses: number };
      assert.deepEqual([body.active, body.endedBy, body.endReason, body.uses], [false, practice.users.ADMIN.id, 'reviewed', 1]);
      assert.equal((await patch(practitioner)).statusCode, 403);
    });

    test('a user ends their own grant early, and cannot end anyone else’s', async () => {
      const grant = await grantFor(practitioner);
      const byStaff = await app.inject({ method: 'POST', url: `/v1/emergency-access/${grant.id}/end`, headers: staff.headers });
      assert.equal(byStaff.statusCode, 404);
      assert.equal((await patch(practitioner)).statusCode, 200);
      const ended = await app.inject({ method: 'POST', url: `/v1/emergency-access/${grant.id}/end`, headers: practitioner.headers });
      assert.equal(ended.statusCode, 200, ended.body);
      assert.equal((ended.json() as { active: boolean }).active, false);
      assert.equal((await patch(practitioner)).statusCode, 403);
    });

    test('a grant covers only the permissions it names', async () => {
      const grant = await grantFor(staff, { permissions: ['read:reports'] });
      assert.equal((await patch(staff)).statusCode, 403);
      const report = await app.inject({ method: 'GET', url: '/v1/reports/appointments', headers: staff.headers });
      assert.notEqual(report.statusCode, 403, report.body);
      await revoke(grant.id);
    });

    test('break-glass never reaches admin or delete permissions', async () => {
      for (const permission of ['admin:users', 'admin:audit-events', 'delete:patients', 'write:services']) {
        const response = await breakGlass(staff, { permissions: [permission] });
        assert.equal(response.statusCode, 400, `${permission}: ${response.body}`);
      }
    });

    test('a permission the role already holds, or a longer grant than the maximum, is refused', async () => {
      assert.equal((await breakGlass(staff, { permissions: ['read:patients'] })).statusCode, 422);
      const tooLong = await breakGlass(staff, { durationMinutes: 241 });
      assert.equal(tooLong.statusCode, 400);
      assert.equal(errorOf(tooLong).details[0]?.field, 'durationMinutes');
    });

    test('an ADMIN or an API key cannot break glass', async () => {
      assert.equal((await breakGlass(practice.users.ADMIN)).statusCode, 403);
      const created = await app.inject({ method: 'POST', url: '/v1/api-keys', headers: admin, payload: { name: 'POS', permissions: ['read:patients'] } });
      const key = (created.json() as { key: string }).key;
      const response = await app.inject({ method: 'POST', url: '/v1/emergency-access', headers: { 'x-api-key': key }, payload: { permissions: ['write:patients'], reason: REASON } });
      assert.equal(response.statusCode, 403);
    });

    test('breaking glass needs MFA enrolled and a current code', async () => {
      const manager = practice.users.MANAGER;
      const notEnrolled = await breakGlass(manager);
      assert.deepEqual([notEnrolled.statusCode, errorOf(notEnrolled).code], [403, 'MFA_ENROLMENT_REQUIRED']);
      const noCode = await breakGlass(practitioner, { mfaToken: undefined });
      assert.deepEqual([noCode.statusCode, errorOf(noCode).code], [403, 'MFA_REQUIRED']);
      const wrong = await breakGlass(practitioner, { mfaToken: '000000' });
      assert.deepEqual([wrong.statusCode, errorOf(wrong).code], [422, 'INVALID_MFA_TOKEN']);
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ reason: string }>("SELECT details->>'reason' AS reason FROM audit_events WHERE action = 'emergency_access.granted' AND outcome = 'denied' AND actor_id = $1", [practitioner.id]),
      );
      assert.deepEqual(rows.map((r) => r.reason).sort(), ['bad_mfa_code', 'mfa_missing']);
    });

    test('a grant dies with its user’s token cut-off (role change, deactivation, logout everywhere)', async () => {
      await grantFor(practitioner);
      assert.equal((await patch(practitioner)).statusCode, 200);
      const cutoff = await withSystem(db, (tx) => advanceTokenCutoff(tx, practitioner.id));
      await app.auth.revocations.revokeUserTokens(practitioner.id, cutoff);
      const { token } = signAccessToken(
        { sub: practitioner.id, email: practitioner.email, role: 'PRACTITIONER', practiceId: practice.id, permissions: permissionsForRole('PRACTITIONER') },
        { secret: app.auth.signingSecret, kid: app.auth.signingKid, issuer: app.config.jwtIssuer, audience: app.config.jwtAudience, ttlSeconds: 900, now: cutoff * 1000 },
      );
      const fresh = { ...practitioner, headers: { authorization: `Bearer ${token}` } };
      const response = await patch(fresh);
      assert.equal(response.statusCode, 403, response.body);
    });

    test('practice A’s admin cannot see or revoke practice B’s grants; a MANAGER cannot review them', async () => {
      const grant = await grantFor(staff, { permissions: ['read:reports'] });
      assert.equal((await revoke(grant.id, other.users.ADMIN.headers)).statusCode, 404);
      const list = await app.inject({ method: 'GET', url: '/v1/emergency-access', headers: other.users.ADMIN.headers });
      assert.deepEqual((list.json() as { data: unknown[] }).data, []);
      assert.equal((await app.inject({ method: 'GET', url: '/v1/emergency-access', headers: practice.users.MANAGER.headers })).statusCode, 403);
      await revoke(grant.id);
    });
  });
}
