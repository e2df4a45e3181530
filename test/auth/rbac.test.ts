import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_RESOURCES,
  KNOWN_PERMISSIONS,
  PERMISSION_MATRIX,
  ROLES,
  canGrant,
  hasPermission,
  isRole,
  isKnownGrant,
  isValidPermission,
  permissionsForRole,
  permissionsNotGrantable,
} from '../../src/auth/rbac.js';

const can = (role: (typeof ROLES)[number], permission: string) => hasPermission(permissionsForRole(role), permission);

describe('permission matrix', () => {
  test('is exactly the blueprint 2.2 matrix', () => {
    assert.deepEqual(ROLES, ['ADMIN', 'PRACTITIONER', 'STAFF', 'MANAGER']);
    assert.deepEqual(
      { ...PERMISSION_MATRIX },
      {
        ADMIN: ['read:*', 'write:*', 'delete:*', 'admin:*'],
        PRACTITIONER: ['read:patients', 'read:appointments', 'write:appointments', 'read:services', 'read:reports'],
        STAFF: ['read:patients', 'read:appointments', 'write:appointments', 'read:services'],
        MANAGER: ['read:*', 'write:appointments', 'write:services', 'read:reports', 'write:reports'],
      },
    );
  });

  test('cannot be widened at run time (frozen)', () => {
    assert.throws(() => (PERMISSION_MATRIX.STAFF as string[]).push('admin:*'), TypeError);
    assert.throws(() => {
      (PERMISSION_MATRIX as Record<string, readonly string[]>).STAFF = ['*:*'];
    }, TypeError);
  });

  test('permissionsForRole returns a copy, so a caller mutating it changes nothing', () => {
    const perms = permissionsForRole('STAFF');
    perms.push('admin:*');
    assert.equal(can('STAFF', 'admin:users'), false);
  });

  test('refuses an unknown role instead of granting nothing silently', () => {
    assert.throws(() => permissionsForRole('ROOT' as never), TypeError);
    assert.equal(isRole('ADMIN'), true);
    assert.equal(isRole('admin'), false);
    assert.equal(isRole('__proto__'), false);
  });

  test('every known permission is concrete and well formed', () => {
    for (const permission of KNOWN_PERMISSIONS) {
      assert.ok(isValidPermission(permission), permission);
      assert.ok(!permission.includes('*'), permission);
    }
    assert.equal(new Set(KNOWN_PERMISSIONS).size, KNOWN_PERMISSIONS.length);
    assert.ok(KNOWN_PERMISSIONS.includes('write:patients'));
    assert.ok(KNOWN_PERMISSIONS.includes('admin:audit-events'));
  });

  test('a grant must name something that exists: a known permission or a wildcard covering one', () => {
    for (const grant of [...KNOWN_PERMISSIONS, 'read:*', '*:patients', 'admin:*', '*:*']) assert.ok(isKnownGrant(grant), grant);
    for (const grant of ['read:nonsense', 'delete:users', 'admin:patients', 'frobnicate:*', 'READ:PATIENTS', 'read', 42]) {
      assert.equal(isKnownGrant(grant), false, String(grant));
    }
  });

  test('ADMIN holds every known permission', () => {
    for (const permission of KNOWN_PERMISSIONS) assert.ok(can('ADMIN', permission), permission);
  });
});

describe('role boundaries', () => {
  test('STAFF cannot write patients (privilege escalation by a front-desk account)', () => {
    assert.equal(can('STAFF', 'write:patients'), false);
    assert.equal(can('STAFF', 'delete:patients'), false);
    assert.equal(can('STAFF', 'read:reports'), false);
    assert.equal(can('STAFF', 'read:patients'), true);
    assert.equal(can('STAFF', 'write:appointments'), true);
  });

  test('PRACTITIONER cannot write services or delete anything', () => {
    assert.equal(can('PRACTITIONER', 'write:services'), false);
    for (const permission of KNOWN_PERMISSIONS.filter((p) => p.startsWith('delete:'))) {
      assert.equal(can('PRACTITIONER', permission), false, permission);
    }
  });

  test("MANAGER's read:* does not reach admin-only resources (users, api keys, audit log)", () => {
    for (const resource of ADMIN_RESOURCES) assert.equal(can('MANAGER', `admin:${resource}`), false, resource);
    assert.equal(can('MANAGER', 'read:patients'), true);
    assert.equal(can('MANAGER', 'read:reconciliations'), true);
    assert.equal(can('MANAGER', 'write:patients'), false);
  });

  test('only ADMIN holds any admin: permission', () => {
    for (const role of ROLES) {
      for (const resource of ADMIN_RESOURCES) {
        assert.equal(can(role, `admin:${resource}`), role === 'ADMIN', `${role} admin:${resource}`);
      }
    }
  });
});

describe('hasPermission wildcard semantics', () => {
  test('read:* grants read of any resource but not write', () => {
    assert.ok(hasPermission(['read:*'], 'read:patients'));
    assert.ok(hasPermission(['read:*'], 'read:some-future-thing'));
    assert.ok(!hasPermission(['read:*'], 'write:patients'));
  });

  test('*:patients grants every action on patients only', () => {
    assert.ok(hasPermission(['*:patients'], 'delete:patients'));
    assert.ok(!hasPermission(['*:patients'], 'read:appointments'));
  });

  test('*:* grants everything', () => {
    for (const permission of KNOWN_PERMISSIONS) assert.ok(hasPermission(['*:*'], permission));
  });

  test('admin:* grants admin:users but not read:patients', () => {
    assert.ok(hasPermission(['admin:*'], 'admin:users'));
    assert.ok(!hasPermission(['admin:*'], 'read:patients'));
  });

  test('a required wildcard is held only through an equal or wider wildcard', () => {
    assert.ok(hasPermission(['admin:*'], 'admin:*'));
    assert.ok(hasPermission(['*:*'], 'admin:*'));
    assert.ok(!hasPermission(['admin:users', 'admin:api-keys'], 'admin:*'));
  });

  test('an empty grant list grants nothing', () => {
    assert.ok(!hasPermission([], 'read:patients'));
  });

  test('refuses look-alike permissions (case, whitespace, extra segments, partial wildcards)', () => {
    const granted = ['read:patients'];
    assert.ok(!hasPermission(granted, 'READ:patients'));
    assert.ok(!hasPermission(granted, 'read:patients '));
    assert.ok(!hasPermission(granted, 'read:patients:extra'));
    assert.ok(!hasPermission(['read:pat*'], 'read:patients'));
    assert.ok(!hasPermission(['read*:patients'], 'read:patients'));
    assert.ok(!hasPermission(['*'], 'read:patients'));
    assert.ok(!hasPermission(['read:*:*'], 'read:patients'));
    assert.ok(!hasPermission([' read:*'], 'read:patients'));
  });

  test('a malformed requirement fails closed even for *:*', () => {
    assert.ok(!hasPermission(['*:*'], ''));
    assert.ok(!hasPermission(['*:*'], 'patients'));
    assert.ok(!hasPermission(['*:*'], undefined as unknown as string));
  });

  test('non-string grants (from a tampered or corrupted store) grant nothing', () => {
    assert.ok(!hasPermission([null, 42, { action: '*' }] as unknown as string[], 'read:patients'));
  });
});

describe('canGrant (API key scope can not exceed its creator)', () => {
  test('an ADMIN can grant any concrete permission and any wildcard it holds', () => {
    const admin = permissionsForRole('ADMIN');
    assert.ok(canGrant(admin, KNOWN_PERMISSIONS));
    assert.ok(canGrant(admin, ['read:*', 'admin:*']));
  });

  test('refuses a key wider than its creator (STAFF minting write:patients)', () => {
    const staff = permissionsForRole('STAFF');
    assert.ok(canGrant(staff, ['read:patients', 'write:appointments']));
    assert.ok(!canGrant(staff, ['read:patients', 'write:patients']));
    assert.deepEqual(permissionsNotGrantable(staff, ['read:patients', 'write:patients', 'admin:*']), ['write:patients', 'admin:*']);
  });

  test('refuses a wildcard built up from concrete permissions (it would widen as resources are added)', () => {
    assert.ok(!canGrant(['read:patients', 'read:appointments'], ['read:*']));
    assert.ok(!canGrant(['read:*'], ['*:*']));
  });

  test('refuses malformed requested permissions', () => {
    assert.ok(!canGrant(['*:*'], ['read']));
    assert.ok(!canGrant(['*:*'], ['Read:patients']));
  });

  test('an empty request is grantable (the route decides whether a key may be scopeless)', () => {
    assert.ok(canGrant([], []));
  });
});
