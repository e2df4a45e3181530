// Request validation: query strings, path parameters and headers arrive as text, so they are
// coerced ("?page=2" is the number 2); JSON bodies are not, so `"firstName": true` or
// `["Jane"]` is a 400 instead of being stored as the text "true" or "Jane". An integer in a query
// string must be written in digits: Ajv's coercion is Number(text), which also reads "1e3" (1000),
// "0x10", " 7" and "" (0).
import { isUtf8 } from 'node:buffer';
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { Type } from 'typebox';
import { AppError } from './errors.js';

type BuildValidator = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator']
>;

/**
 * A string limited to `values`: `{type: "string", enum}`. (TypeBox's Enum leaves out the type,
 * which the OpenAPI document then lacks; Ajv reports "must be one of …" either way.)
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export function strictBodyValidators(): BuildValidator {
  const pool = AjvCompiler();
  return (externalSchemas, options) => {
    const coercing = pool(externalSchemas, options);
    const noCoercion = { ...options, customOptions: { ...options?.customOptions, coerceTypes: false } };
    const strict = pool(externalSchemas, noCoercion as typeof options);
    return (route) => {
      if (route.httpPart === 'body') return strict(route);
      const validate = coercing(route);
      return route.httpPart === 'querystring' ? digitsOnlyIntegers(route.schema, validate) : validate;
    };
  };
}

type Validate = ReturnType<ReturnType<BuildValidator>>;
interface QuerySchema {
  type?: unknown;
  properties?: Record<string, { type?: unknown; items?: { type?: unknown } }>;
}

const isInteger = (schema: { type?: unknown } | undefined) => schema?.type === 'integer';
const DIGITS = /^-?\d{1,15}$/;

/**
 * Every integer property of a query-string schema (or array of integers: `?ids=1&ids=2`) is
 * checked as text before Ajv coerces it, with the error in Ajv's shape so the envelope names the
 * field like any other. Up to 15 digits: beyond that Number() silently rounds.
 */
function digitsOnlyIntegers(schema: unknown, validate: Validate): Validate {
  const integers = Object.entries((schema as QuerySchema).properties ?? {})
    .filter(([, property]) => isInteger(property) || (property.type === 'array' && isInteger(property.items)))
    .map(([name]) => name);
  if (integers.length === 0) return validate;
  const checked = ((data: unknown, context?: unknown) => {
    const query = (data ?? {}) as Record<string, unknown>;
    const errors = integers.flatMap((name) => {
      const value = query[name];
      if (value === undefined) return [];
      const texts = Array.isArray(value) ? value : [value];
      return texts.every((text) => typeof text === 'string' && DIGITS.test(text))
        ? []
        : [{ instancePath: `/${name}`, schemaPath: '#/digits', keyword: 'type', params: { type: 'integer' }, message: 'must be a whole number written in digits' }];
    });
    if (errors.length > 0) {
      checked.errors = errors;
      return false;
    }
    const valid = (validate as (data: unknown, context?: unknown) => boolean)(data, context);
    checked.errors = (validate as { errors?: unknown }).errors;
    return valid;
  }) as ((data: unknown, context?: unknown) => boolean) & { errors?: unknown; schemaEnv?: unknown };
  // Fastify passes the parent (so Ajv may replace coerced values) only to a function that has this.
  checked.schemaEnv = (validate as { schemaEnv?: unknown }).schemaEnv;
  return checked as unknown as Validate;
}

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i;

/**
 * Request bodies are JSON in UTF-8 (RFC 8259) and nothing else. Fastify's defaults also parse
 * text/plain, which handed a JSON-looking text/plain body to validation as a string (a 400 that
 * should be a 415), and decode bytes that are not UTF-8 into U+FFFD, so a Latin-1 "café" was stored
 * damaged. Here: application/json only, in UTF-8 (no charset parameter, or utf-8), bytes checked
 * before decoding; the JSON itself is parsed by Fastify's own parser, which refuses prototype
 * poisoning (__proto__, constructor.prototype) as before. Register before any route.
 */
export function acceptOnlyUtf8Json(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    const charset = CHARSET.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      return done(new AppError('UNSUPPORTED_MEDIA_TYPE', 415, 'Unsupported charset: send application/json in UTF-8'), undefined);
    }
    if (body.length === 0 && request.routeOptions.config.optionalBody === true) return done(null, undefined);
    if (!isUtf8(body)) return done(new AppError('INVALID_JSON', 400, 'The request body is not valid UTF-8'), undefined);
    const text = body.toString('utf8');
    parseJson(request, text, (error, parsed) => {
      // Valid UTF-8 can still spell half a character as an escape ("\ud800"), which would be
      // stored as U+FFFD: refused like bytes that aren't UTF-8. Only looked for when the text has
      // such an escape at all.
      if (error === null && SURROGATE_ESCAPE.test(text) && hasLoneSurrogate(parsed)) {
        return done(new AppError('INVALID_JSON', 400, 'The request body contains an unpaired surrogate escape (such as \\ud800): not valid Unicode text'), undefined);
      }
      done(error, parsed);
    });
  });
}

const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;
// With the u flag a surrogate pair is one code point, so this matches only an unpaired half.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Whether any string or key in a parsed JSON value holds an unpaired surrogate (iterative: bodies can nest deep). */
function hasLoneSurrogate(value: unknown): boolean {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const current = pending.pop();
    if (typeof current === 'string') {
      if (LONE_SURROGATE.test(current)) return true;
    } else if (current !== null && typeof current === 'object') {
      for (const [key, child] of Object.entries(current)) {
        if (LONE_SURROGATE.test(key)) return true;
        pending.push(child);
      }
    }
  }
  return false;
}
