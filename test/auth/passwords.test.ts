import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hash as argon2Hash } from '@node-rs/argon2';
import {
  ARGON2_PARAMS,
  PASSWORD_MESSAGES,
  checkPasswordPolicy,
  dummyPasswordHash,
  hashPassword,
  loadCommonPasswords,
  needsRehash,
  verifyPassword,
  verifyPasswordOrDummy,
} from '../../src/auth/passwords.js';

const messages = (password: unknown, context = {}) => checkPasswordPolicy(password, context).map((p) => p.message);

describe('hashing', () => {
  test('uses argon2id with the pinned OWASP parameters (m=19456, t=2, p=1)', async () => {
    const stored = await hashPassword('correct horse battery staple');
    assert.match(stored, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.equal(needsRehash(stored), false);
  });

  test('verifies the right password and refuses a wrong one', async () => {
    const stored = await hashPassword('correct horse battery staple');
    assert.equal(await verifyPassword(stored, 'correct horse battery staple'), true);
    assert.equal(await verifyPassword(stored, 'correct horse battery stapl'), false);
    assert.equal(await verifyPassword(stored, 'Correct horse battery staple'), false);
  });

  test('salts every hash (equal passwords are not equal rows)', async () => {
    assert.notEqual(await hashPassword('same password here'), await hashPassword('same password here'));
  });

  test('never stores the password itself', async () => {
    const stored = await hashPassword('plain-text-canary-123');
    assert.ok(!stored.includes('plain-text-canary'));
  });

  test('returns false, never throws, on a malformed or empty stored hash', async () => {
    for (const bad of ['', 'not a hash', '$argon2id$v=19$m=19456,t=2,p=1$xx$yy', '$2b$10$abcdefghijklmnopqrstuv', null, undefined, 42]) {
      assert.equal(await verifyPassword(bad as string, 'whatever1'), false, String(bad));
    }
    assert.equal(await verifyPassword(await hashPassword('abcdefgh1'), undefined as unknown as string), false);
  });

  test('refuses absurdly long input before hashing it (CPU exhaustion)', async () => {
    const stored = await hashPassword('correct horse battery staple');
    assert.equal(await verifyPassword(stored, 'x'.repeat(1_000_000)), false);
  });

  test('normalises Unicode: the same password typed composed or decomposed verifies', async () => {
    const composed = 'caf\u00e9 au lait please';
    const decomposed = 'cafe\u0301 au lait please';
    const stored = await hashPassword(composed);
    assert.equal(await verifyPassword(stored, decomposed), true);
  });

  test('unknown user: verified against a dummy hash of the same cost, and always refused (account enumeration)', async () => {
    // Equal cost is structural (same argon2 parameters, one verification on each path);
    // timings are measured in bench/, never asserted in tests.
    const dummy = await dummyPasswordHash();
    assert.equal(needsRehash(dummy), false);
    assert.equal(dummy, await dummyPasswordHash());
    assert.equal(await verifyPasswordOrDummy(null, 'correct horse battery staple'), false);
    assert.equal(await verifyPasswordOrDummy(undefined, ''), false);
    const stored = await hashPassword('correct horse battery staple');
    assert.equal(await verifyPasswordOrDummy(stored, 'correct horse battery staple'), true);
    assert.equal(await verifyPasswordOrDummy(stored, 'wrong horse battery staple'), false);
  });

  test('needsRehash flags hashes made with weaker or other parameters', async () => {
    const weak = await argon2Hash('password-from-2019', { algorithm: ARGON2_PARAMS.algorithm, memoryCost: 4096, timeCost: 1, parallelism: 1 });
    assert.equal(needsRehash(weak), true);
    const argon2i = await argon2Hash('password-from-2019', { ...ARGON2_PARAMS, algorithm: 1 as typeof ARGON2_PARAMS.algorithm });
    assert.equal(needsRehash(argon2i), true);
    assert.equal(needsRehash('garbage'), true);
  });
});

describe('password policy (NIST SP 800-63B)', () => {
  test('accepts a long passphrase and an 8-character password with no composition rules', () => {
    assert.deepEqual(checkPasswordPolicy('correct horse battery staple'), []);
    assert.deepEqual(checkPasswordPolicy('tqbvxmzk'), []); // all lower case: fine
    assert.deepEqual(checkPasswordPolicy('\u{1F680}\u{1F30C} rocket to orion'), []); // emoji and spaces allowed
  });

  test('refuses fewer than 8 characters (blueprint minimum), counted in characters not bytes', () => {
    assert.deepEqual(messages('tqbvxmz'), [PASSWORD_MESSAGES.tooShort]);
    // 8 emoji are 8 characters (16 UTF-16 units): accepted.
    assert.deepEqual(checkPasswordPolicy('\u{1F680}\u{1F30C}\u{1F319}\u{1F31F}\u{1F320}\u{1F308}\u{1F311}\u{1F315}'), []);
    // 7 emoji are too short though they are 14 units.
    assert.ok(messages('\u{1F680}\u{1F30C}\u{1F319}\u{1F31F}\u{1F320}\u{1F308}\u{1F311}').includes(PASSWORD_MESSAGES.tooShort));
  });

  test('allows at least 64 characters and up to 128, refuses more', () => {
    assert.deepEqual(checkPasswordPolicy('q'.repeat(1) + 'wzx vbn '.repeat(8)), []); // 65
    assert.deepEqual(checkPasswordPolicy('wzx vbn!'.repeat(16)), []); // 128
    assert.deepEqual(messages('wzx vbn!'.repeat(16) + 'a'), [PASSWORD_MESSAGES.tooLong]);
  });

  test('refuses a missing or non-string password', () => {
    for (const value of ['', undefined, null, 12345678, ['password']]) {
      assert.deepEqual(messages(value), [PASSWORD_MESSAGES.required]);
    }
  });

  test('refuses the most common passwords, whatever the case (dictionary attack)', () => {
    for (const password of ['password', 'PASSWORD', 'Password', '12345678', 'qwertyuiop', 'iloveyou', 'trustno1', 'baseball']) {
      assert.deepEqual(messages(password), [PASSWORD_MESSAGES.common], password);
    }
  });

  test('refuses a common password with digits or symbols appended (what cracking rules try first)', () => {
    for (const password of ['password2024', 'Password1!', 'dragon2024!', 'Summer2024!', 'monkey123456']) {
      assert.deepEqual(messages(password), [PASSWORD_MESSAGES.common], password);
    }
  });

  test('refuses a single repeated character or a straight run', () => {
    for (const password of ['aaaaaaaaaa', 'zzzzzzzzzzzz', 'abcdefghijk', '98765432109'.slice(0, 9), 'mnopqrstu']) {
      assert.deepEqual(messages(password), [PASSWORD_MESSAGES.common], password);
    }
  });

  test('refuses the email address, its local part or the name (context-specific words)', () => {
    const context = { email: 'Jane.Doe@glow-spa.example', names: ['Jane', 'Doenitz-Wright'] };
    for (const password of ['jane.doe@glow-spa.example', 'JANE.DOE', 'jane.doe2024!', 'janedoe1', 'Doenitz-Wright', 'doenitzwright99', 'JaneDoenitzWright']) {
      assert.ok(messages(password, context).includes(PASSWORD_MESSAGES.context), password);
    }
    // A phrase that merely contains the name is fine: no substring rule.
    assert.deepEqual(checkPasswordPolicy('jane loves hiking in june', context), []);
  });

  test("refuses the service's own name", () => {
    assert.ok(messages('MedSpaSync2024').includes(PASSWORD_MESSAGES.context));
    assert.ok(messages('medspasync pro').includes(PASSWORD_MESSAGES.context));
  });

  test('reports every problem at once, each naming the password field', () => {
    const problems = checkPasswordPolicy('jane', { email: 'jane@x.example' });
    for (const problem of problems) assert.equal(problem.field, 'password');
    assert.deepEqual(
      problems.map((p) => p.message),
      [PASSWORD_MESSAGES.tooShort, PASSWORD_MESSAGES.common, PASSWORD_MESSAGES.context],
    );
  });
});

describe('common password list', () => {
  test('ships at least 10,000 entries, lower case, no comments or blanks left in', () => {
    const list = loadCommonPasswords();
    assert.ok(list.size >= 10_000, `only ${list.size}`);
    for (const entry of list) {
      assert.equal(entry, entry.toLowerCase());
      assert.ok(entry.length > 0 && !entry.startsWith('#'));
    }
    assert.ok(list.has('password') && list.has('123456') && list.has('iloveyou'));
  });
});
