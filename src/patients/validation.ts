// The validator for the patient routes. The app's Ajv coerces types everywhere (coerceTypes
// "array"), which querystrings and path parameters need ("?page=2" is text) but which would let a
// JSON body's `"firstName": true` or `["Jane"]` be stored as the name "true" or "Jane". PHI bodies
// are validated without coercion: a wrong type is a 400. Other options match the app's.
import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

const SHARED_OPTIONS: Options = { allErrors: true, removeAdditional: false, useDefaults: true };

function newAjv(coerceTypes: Options['coerceTypes']): Ajv {
  const ajv = new Ajv({ ...SHARED_OPTIONS, coerceTypes });
  // Fastify's own compiler adds the same formats plugin (email, date, uuid, …).
  (addFormats as unknown as (ajv: Ajv) => Ajv)(ajv);
  return ajv;
}

const strictBodies = newAjv(false);
const coercedParts = newAjv('array');

/** Bodies without type coercion; querystring, params and headers with it, as elsewhere in the app. */
export const patientValidatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? strictBodies : coercedParts).compile(schema) as ReturnType<FastifySchemaCompiler<object>>;
