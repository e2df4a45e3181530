// Every versioned route declares what it needs: a permission, self-service, or public. A route
// that forgets is refused at run time anyway (fail closed), but this test names it.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { isValidPermission } from '../../src/auth/rbac.js';
import { openScratchPglite } from '../helpers/databases.js';
import { startTestApp } from '../helpers/app.js';

const db = await openScratchPglite();
after(() => db.close());
const { app } = await startTestApp(db);

// Reachable without credentials, on purpose. Anything else public is a test failure.
const PUBLIC = new Set([
  'POST /v1/auth/login',
  'POST /v1/auth/refresh',
  'POST /v2/auth/login',
  'POST /v2/auth/refresh',
  'GET /v1/openapi.json',
  'HEAD /v1/openapi.json',
  'GET /v2/openapi.json',
  'HEAD /v2/openapi.json',
]);

const versioned = app.routeTable.filter((route) => /^\/v\d+\//.test(route.url));

test('the route table lists the versioned routes', () => {
  assert.ok(versioned.length >= 15, `only ${versioned.length} routes`);
});

test('every versioned route declares a valid permission, self-service or an intended public access', () => {
  const problems: string[] = [];
  for (const route of versioned) {
    const name = `${route.method} ${route.url}`;
    const { permission, permissionOneOf, selfService, public: isPublic } = route.config;
    const declared = [permission !== undefined, permissionOneOf !== undefined, selfService === true, isPublic === true].filter(Boolean).length;
    if (declared !== 1) problems.push(`${name}: declares ${declared} access rules`);
    if (permission !== undefined && !isValidPermission(permission)) problems.push(`${name}: "${permission}" is not a permission`);
    if (permissionOneOf !== undefined && (permissionOneOf.length === 0 || !permissionOneOf.every(isValidPermission))) {
      problems.push(`${name}: permissionOneOf [${permissionOneOf.join(', ')}] is not a list of permissions`);
    }
    if (isPublic && !PUBLIC.has(name)) problems.push(`${name}: public but not on the public list`);
  }
  assert.deepEqual(problems, []);
});

test('a request without credentials to any protected route is 401, never 200', async () => {
  for (const route of versioned) {
    if (route.config.public || route.method === 'HEAD') continue;
    const url = route.url.replace(/:(\w+)/g, '00000000-0000-4000-8000-000000000000');
    const response = await app.inject({ method: route.method as 'GET', url, payload: route.method === 'GET' || route.method === 'DELETE' ? undefined : {} });
    assert.equal(response.statusCode, 401, `${route.method} ${route.url}`);
  }
});
