// Nickname equivalence ("Liz" is "Elizabeth") from the data file data/nicknames.txt.
// Equivalence is deliberately NOT transitive: Emily~Em and Em~Emma, but Emily is not Emma,
// because twins named Emma and Emily must stay two people.
import { readFileSync } from 'node:fs';
import { foldText } from './text.js';

export interface NicknameTable {
  /** Group numbers each folded name belongs to. */
  readonly groupsByName: ReadonlyMap<string, readonly number[]>;
}

/** Parses the data file format: one group a line, names separated by spaces, `#` comments. */
export function parseNicknameTable(text: string): NicknameTable {
  const groupsByName = new Map<string, number[]>();
  let group = 0;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/#.*/, '').trim();
    if (line === '') continue;
    const names = new Set(line.split(/\s+/).map(foldText).filter((name) => name !== ''));
    for (const name of names) {
      const groups = groupsByName.get(name) ?? [];
      groups.push(group);
      groupsByName.set(name, groups);
    }
    group += 1;
  }
  return { groupsByName };
}

let defaultTable: NicknameTable | null = null;

/** The shipped table, read once per process (or worker thread). */
export function nicknameTable(): NicknameTable {
  if (defaultTable === null) {
    const text = readFileSync(new URL('./data/nicknames.txt', import.meta.url), 'utf8');
    defaultTable = parseNicknameTable(text);
  }
  return defaultTable;
}

/** Group numbers of a folded given name; empty when the name is in no group. */
export function nicknameGroups(name: string, table: NicknameTable = nicknameTable()): readonly number[] {
  return table.groupsByName.get(name) ?? [];
}

/** True when two folded given names share a nickname group (and are not simply equal). */
export function areNicknames(a: string, b: string, table: NicknameTable = nicknameTable()): boolean {
  if (a === b) return false;
  const groupsA = table.groupsByName.get(a);
  const groupsB = table.groupsByName.get(b);
  if (groupsA === undefined || groupsB === undefined) return false;
  return groupsA.some((group) => groupsB.includes(group));
}
