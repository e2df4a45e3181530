// What a subscription may be: where it may point and which event types it may ask for.
import { hasPermission } from '../auth/rbac.js';
import { EVENT_TYPE_NAMES, EVENT_TYPES, isEventTypePattern, matchesEventType } from '../events/catalog.js';
import { AppError, validationError } from '../http/errors.js';
import { RefusedTarget, vetTarget, type Resolver } from './address.js';

/**
 * The URL rules at creation and update: https (http only with allowLoopback), no credentials, and
 * the host not a forbidden address, nor a name resolving to one. A name that does not resolve yet
 * is accepted: delivery checks again, every time. Returns the URL as it will be stored.
 */
export async function checkTargetUrl(raw: string, resolve: Resolver, allowLoopback: boolean): Promise<string> {
  const refuse = (message: string) => validationError([{ field: 'url', message }], 'Webhook URL not allowed');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse('is not an absolute URL');
  }
  if (url.protocol !== 'https:' && !(allowLoopback && url.protocol === 'http:')) throw refuse('must use https');
  if (url.username !== '' || url.password !== '') throw refuse('must not contain credentials (user:password@)');
  if (url.hash !== '') throw refuse('must not contain a fragment');
  try {
    await vetTarget(url, resolve, allowLoopback);
  } catch (error) {
    if (!(error instanceof RefusedTarget)) throw error;
    if (error.message.startsWith('refused')) throw refuse(error.message);
  }
  return url.href;
}

/**
 * The event types, checked: every entry a known type or pattern (400 naming the unknown ones), an
 * exact type only with its catalog permission, a wildcard only if it reaches at least one type the
 * caller may see (403). Wildcards are narrowed at delivery to what the recorded permissions cover.
 */
export function checkEventTypes(patterns: readonly string[], permissions: readonly string[]): string[] {
  const unknown = patterns.filter((pattern) => !isEventTypePattern(pattern));
  if (unknown.length > 0) {
    throw validationError(unknown.map((pattern) => ({ field: 'eventTypes', message: `unknown event type "${pattern}"` })), 'Unknown event type');
  }
  const visible = (type: string) => hasPermission(permissions, EVENT_TYPES[type as keyof typeof EVENT_TYPES].permission);
  const denied = patterns.filter((pattern) => !EVENT_TYPE_NAMES.some((type) => matchesEventType(type, pattern) && visible(type)));
  if (denied.length > 0) {
    throw new AppError(
      'FORBIDDEN',
      403,
      `You may not subscribe to events you cannot read: ${denied.join(', ')}`,
      denied.map((pattern) => ({ field: 'eventTypes', message: `"${pattern}" needs ${permissionNames(pattern).join(' or ')}` })),
    );
  }
  return [...patterns];
}

const permissionNames = (pattern: string) => [
  ...new Set(EVENT_TYPE_NAMES.filter((type) => matchesEventType(type, pattern)).map((type) => EVENT_TYPES[type].permission)),
];
