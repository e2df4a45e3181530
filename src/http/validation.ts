// Request validation: query strings, path parameters and headers arrive as text, so they are
// coerced ("?page=2" is the number 2); JSON bodies are not, so `"firstName": true` or
// `["Jane"]` is a 400 instead of being stored as the text "true" or "Jane".
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';

type BuildValidator = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator']
>;

export function strictBodyValidators(): BuildValidator {
  const pool = AjvCompiler();
  return (externalSchemas, options) => {
    const coercing = pool(externalSchemas, options);
    const noCoercion = { ...options, customOptions: { ...options?.customOptions, coerceTypes: false } };
    const strict = pool(externalSchemas, noCoercion as typeof options);
    return (route) => (route.httpPart === 'body' ? strict : coercing)(route);
  };
}
