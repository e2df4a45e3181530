// Role-based access control: the blueprint's permission matrix (2.2) as data, and the
// one matcher every guard uses. Permissions are "action:resource"; either part may be
// "*", meaning every action or every resource.
//
// Decision (documented for the lead): resources that only an administrator may touch
// (users, API keys, the audit log, webhooks) are guarded by "admin:<resource>"
// permissions, never by read:/write:/delete:. So MANAGER's "read:*" reaches the
// practice's clinical and business data but not the user list or the audit log, while
// ADMIN's "admin:*" reaches all of them. A route declares exactly one concrete permission.

export const ROLES = ['ADMIN', 'PRACTITIONER', 'STAFF', 'MANAGER'] as const;
export type Role = (typeof ROLES)[number];

/** The blueprint's matrix, verbatim. */
export const PERMISSION_MATRIX: Readonly<Record<Role, readonly string[]>> = Object.freeze({
  ADMIN: Object.freeze(['read:*', 'write:*', 'delete:*', 'admin:*']),
  PRACTITIONER: Object.freeze(['read:patients', 'read:appointments', 'write:appointments', 'read:services', 'read:reports']),
  STAFF: Object.freeze(['read:patients', 'read:appointments', 'write:appointments', 'read:services']),
  MANAGER: Object.freeze(['read:*', 'write:appointments', 'write:services', 'read:reports', 'write:reports']),
});

/** Practice data, reached with read:/write:/delete:. */
export const DATA_RESOURCES = ['patients', 'appointments', 'services', 'reports', 'reconciliations'] as const;
export const DATA_ACTIONS = ['read', 'write', 'delete'] as const;
/** Administration, reached only with admin:<resource> (see the decision above). */
export const ADMIN_RESOURCES = ['users', 'api-keys', 'audit-events', 'webhooks'] as const;

/**
 * Read-only resources: only read:<resource> exists. `read:audit` is the accounting of disclosures
 * (a patient's access log, the patient export, docs/hipaa.md): a privacy officer's tool, reached by
 * ADMIN and by MANAGER through read:* on purpose, never by PRACTITIONER or STAFF. The raw audit
 * trail stays admin:audit-events.
 */
export const READ_ONLY_RESOURCES = ['audit'] as const;

/** Every concrete permission a route may declare; wildcards only ever appear in grants. */
export const KNOWN_PERMISSIONS: readonly string[] = Object.freeze([
  ...DATA_RESOURCES.flatMap((resource) => DATA_ACTIONS.map((action) => `${action}:${resource}`)),
  ...READ_ONLY_RESOURCES.map((resource) => `read:${resource}`),
  ...ADMIN_RESOURCES.map((resource) => `admin:${resource}`),
]);

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** The role's permissions from the matrix (a fresh array: callers may put it in a token). */
export function permissionsForRole(role: Role): string[] {
  if (!isRole(role)) throw new TypeError(`unknown role: ${String(role)}`);
  return [...PERMISSION_MATRIX[role]];
}

interface ParsedPermission {
  action: string;
  resource: string;
}

// Lower-case words with hyphens, or a lone "*". Anything else (upper case, extra
// colons, partial wildcards such as "read:pat*") is malformed and matches nothing.
const PART = /^(?:\*|[a-z][a-z0-9]*(?:-[a-z0-9]+)*)$/;

export function parsePermission(permission: unknown): ParsedPermission | null {
  if (typeof permission !== 'string') return null;
  const parts = permission.split(':');
  if (parts.length !== 2) return null;
  const [action, resource] = parts as [string, string];
  if (!PART.test(action) || !PART.test(resource)) return null;
  return { action, resource };
}

export function isValidPermission(permission: unknown): permission is string {
  return parsePermission(permission) !== null;
}

// A granted part covers a wanted part when it is "*" or the same word. A wanted "*"
// (e.g. asking whether someone holds "read:*") is covered only by "*".
function partCovers(granted: string, wanted: string): boolean {
  return granted === '*' || granted === wanted;
}

function covers(granted: ParsedPermission, wanted: ParsedPermission): boolean {
  return partCovers(granted.action, wanted.action) && partCovers(granted.resource, wanted.resource);
}

/**
 * Whether the granted permissions include `required`. Wildcards in grants are honoured
 * ("read:*" grants "read:patients", "*:*" grants everything); a malformed grant or
 * requirement grants nothing, so a typo fails closed.
 */
export function hasPermission(granted: readonly string[], required: string): boolean {
  const wanted = parsePermission(required);
  if (!wanted) return false;
  return granted.some((permission) => {
    const parsed = parsePermission(permission);
    return parsed !== null && covers(parsed, wanted);
  });
}

/**
 * Whether a permission to be granted (an API key's scope) names something that exists: a known
 * permission, or a wildcard covering at least one ("read:*", "*:patients"). "read:nonsense" or
 * "delete:users" is well formed but reaches no route, so it is a mistake to report (400), not a
 * grant to refuse (403) or, worse, to store for a permission someone may add later.
 */
export function isKnownGrant(permission: unknown): permission is string {
  if (!isValidPermission(permission)) return false;
  return KNOWN_PERMISSIONS.some((known) => hasPermission([permission], known));
}

/** The requested permissions that the granter doesn't hold (empty when all may be granted). */
export function permissionsNotGrantable(granterPermissions: readonly string[], requested: readonly string[]): string[] {
  return requested.filter((permission) => !hasPermission(granterPermissions, permission));
}

/**
 * Whether someone holding `granterPermissions` may hand out `requested` (an API key's
 * scope can't exceed its creator's). A requested wildcard needs the same or a wider
 * wildcard: "read:*" can't be granted from a list of every read:<resource>, because
 * a resource added later would silently widen it.
 */
export function canGrant(granterPermissions: readonly string[], requested: readonly string[]): boolean {
  return permissionsNotGrantable(granterPermissions, requested).length === 0;
}
