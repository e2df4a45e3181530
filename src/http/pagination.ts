// The blueprint's list shape: {data, pagination{page, limit, total, totalPages}}, page from 1,
// limit 20 by default and 100 at most (101 is a 400, not silently clamped).
import { Type, type TSchema } from 'typebox';

export const PageQuery = {
  page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
};

export const Pagination = Type.Object(
  {
    page: Type.Integer(),
    limit: Type.Integer(),
    total: Type.Integer(),
    totalPages: Type.Integer(),
  },
  { $id: 'Pagination' },
);

export function paginated<T extends TSchema>(item: T) {
  return Type.Object({ data: Type.Array(item), pagination: Type.Ref('Pagination') });
}

export function pagination(page: number, limit: number, total: number) {
  return { page, limit, total, totalPages: Math.ceil(total / limit) };
}

/** Ids are UUIDs; anything else names no record (404), and never reaches SQL as a cast error. */
export { isUuid } from '../db/scope.js';

/** The longest path segment the router hands to a route (Fastify's maxParamLength); longer is a 414 while routing. */
export const MAX_PATH_SEGMENT = 2048;

/**
 * A record id in the path, as received: any text the router passes. A malformed id is the route's
 * 404 (isUuid), like an unknown id or another practice's, never a 400 that would tell them apart.
 */
export const PathId = () => Type.String({ maxLength: MAX_PATH_SEGMENT });
