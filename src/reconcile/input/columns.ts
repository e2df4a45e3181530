// Which column of an export was read as what: reported back on the job, so a billing manager sees
// at once that "Cell #" was taken as the phone and "Notes" ignored, and can correct it with a
// fieldMapping. Recognition itself is the engine's (engine/fields.ts); this only describes it.
import { compileFieldMapping, recogniseKey, recogniseKeyAmong, type CanonicalField } from '../engine/fields.js';

export interface ColumnReading {
  column: string;
  /** The canonical field the column is read as, or null when it is ignored. */
  readAs: CanonicalField | null;
  /** mapping: the request's fieldMapping decided; recognised: the column's name did; ignored: neither. */
  how: 'mapping' | 'recognised' | 'ignored';
}

export function describeColumns(header: readonly string[], fieldMapping: Record<string, string> | undefined): ColumnReading[] {
  const mapping = compileFieldMapping(fieldMapping);
  // "Birth Day" is the day when "Birth Month" and "Birth Year" are columns too.
  const present = new Set(header.map((column) => (mapping.has(column) ? mapping.get(column) ?? null : recogniseKey(column))));
  return header.map((column) => {
    const explicit = mapping.has(column) ? mapping.get(column) : undefined;
    if (explicit !== undefined) return { column, readAs: explicit, how: explicit === null ? 'ignored' : 'mapping' };
    const recognised = recogniseKeyAmong(column, present);
    return { column, readAs: recognised, how: recognised === null ? 'ignored' : 'recognised' };
  });
}

/** The columns of JSON records: the keys of the first rows, in order of appearance. */
export function jsonColumns(rows: readonly unknown[], sample = 1000): string[] {
  const keys = new Set<string>();
  for (const row of rows.slice(0, sample)) {
    if (row !== null && typeof row === 'object' && !Array.isArray(row)) for (const key of Object.keys(row)) keys.add(key);
  }
  return [...keys];
}
