import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  base32Decode,
  base32Encode,
  generateSecret,
  hotp,
  otpauthUri,
  timeStep,
  totp,
  verifyTotp,
  type TotpAlgorithm,
} from '../../src/auth/totp.js';

// RFC 6238 Appendix B: the seeds are ASCII "1234567890" repeated to the hash length.
const SEEDS: Record<TotpAlgorithm, Buffer> = {
  SHA1: Buffer.from('12345678901234567890'),
  SHA256: Buffer.from('12345678901234567890123456789012'),
  SHA512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
};

const RFC6238_VECTORS: Array<[number, TotpAlgorithm, string]> = [
  [59, 'SHA1', '94287082'],
  [59, 'SHA256', '46119246'],
  [59, 'SHA512', '90693936'],
  [1111111109, 'SHA1', '07081804'],
  [1111111109, 'SHA256', '68084774'],
  [1111111109, 'SHA512', '25091201'],
  [1111111111, 'SHA1', '14050471'],
  [1111111111, 'SHA256', '67062674'],
  [1111111111, 'SHA512', '99943326'],
  [1234567890, 'SHA1', '89005924'],
  [1234567890, 'SHA256', '91819424'],
  [1234567890, 'SHA512', '93441116'],
  [2000000000, 'SHA1', '69279037'],
  [2000000000, 'SHA256', '90698825'],
  [2000000000, 'SHA512', '38618901'],
  [20000000000, 'SHA1', '65353130'],
  [20000000000, 'SHA256', '77737706'],
  [20000000000, 'SHA512', '47863826'],
];

describe('base32 (RFC 4648)', () => {
  test('encodes the RFC 4648 section 10 vectors without padding', () => {
    const vectors: Array<[string, string]> = [
      ['', ''],
      ['f', 'MY'],
      ['fo', 'MZXQ'],
      ['foo', 'MZXW6'],
      ['foob', 'MZXW6YQ'],
      ['fooba', 'MZXW6YTB'],
      ['foobar', 'MZXW6YTBOI'],
    ];
    for (const [plain, encoded] of vectors) {
      assert.equal(base32Encode(Buffer.from(plain)), encoded);
      assert.equal(base32Decode(encoded).toString(), plain);
    }
  });

  test('round-trips random bytes of every length', () => {
    for (let n = 0; n < 70; n++) {
      const bytes = randomBytes(n);
      assert.deepEqual(base32Decode(base32Encode(bytes)), bytes);
    }
  });

  test('accepts lower case, spaces and padding as people and tools write them', () => {
    assert.equal(base32Decode('mzxw 6ytb oi======').toString(), 'foobar');
  });

  test('refuses characters outside the alphabet instead of silently changing the key', () => {
    assert.throws(() => base32Decode('MZXW6YT1'), /invalid base32 character/);
    assert.throws(() => base32Decode('MZXW6YT0'), /invalid base32 character/);
    assert.throws(() => base32Decode('M'), /invalid base32 length/);
  });
});

describe('HOTP and TOTP reference vectors', () => {
  test('HOTP matches RFC 4226 Appendix D', () => {
    const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
    expected.forEach((code, counter) => assert.equal(hotp(SEEDS.SHA1, counter, { algorithm: 'SHA1' }), code));
  });

  for (const [seconds, algorithm, code] of RFC6238_VECTORS) {
    test(`TOTP matches RFC 6238 Appendix B: ${algorithm} at T=${seconds}`, () => {
      assert.equal(totp(SEEDS[algorithm], { algorithm, digits: 8, time: seconds * 1000 }), code);
      // The same seed given as base32 text gives the same code.
      assert.equal(totp(base32Encode(SEEDS[algorithm]), { algorithm, digits: 8, time: seconds * 1000 }), code);
      // Verification finds the step of the vector.
      assert.equal(verifyTotp(SEEDS[algorithm], code, { algorithm, digits: 8, now: seconds * 1000 }), timeStep(seconds * 1000));
    });
  }

  test('defaults to the blueprint parameters: SHA-256, 6 digits, 30 s', () => {
    // The 6-digit code is the last 6 digits of the 8-digit one (same truncated integer).
    assert.equal(totp(SEEDS.SHA256, { time: 59_000 }), '119246');
    assert.equal(timeStep(59_000), 1);
  });

  test('refuses a secret shorter than 128 bits (RFC 4226 R6)', () => {
    assert.throws(() => totp(randomBytes(10)), RangeError);
  });

  test('refuses fewer than 6 digits', () => {
    assert.throws(() => totp(SEEDS.SHA256, { digits: 4 }), RangeError);
  });
});

describe('generateSecret', () => {
  test('gives a key as long as the HMAC output, fresh each time', () => {
    assert.equal(generateSecret('SHA1').length, 20);
    assert.equal(generateSecret('SHA256').length, 32);
    assert.equal(generateSecret().length, 32);
    assert.equal(generateSecret('SHA512').length, 64);
    assert.notDeepEqual(generateSecret(), generateSecret());
  });
});

describe('verifyTotp window and replay', () => {
  // Fixed secrets and time: a random one would make "refused" tests fail once in ~10^5
  // runs, when an out-of-window code happens to equal an in-window one.
  const secret = SEEDS.SHA256;
  const otherSecret = Buffer.from('abcdefghijklmnopqrstuvwxyz012345');
  const now = 1_700_000_000_000;
  const step = timeStep(now);
  const codeAt = (offsetSteps: number) => totp(secret, { time: now + offsetSteps * 30_000 });

  test('accepts codes up to 2 steps early or late (blueprint window 2)', () => {
    for (const offset of [-2, -1, 0, 1, 2]) {
      assert.equal(verifyTotp(secret, codeAt(offset), { now }), step + offset, `offset ${offset}`);
    }
  });

  test('refuses a code 3 steps old (stolen code used too late)', () => {
    assert.equal(verifyTotp(secret, codeAt(-3), { now }), null);
  });

  test('refuses a code 3 steps in the future (pre-generated code)', () => {
    assert.equal(verifyTotp(secret, codeAt(3), { now }), null);
  });

  test('window 0 accepts only the current step', () => {
    assert.equal(verifyTotp(secret, codeAt(0), { now, window: 0 }), step);
    assert.equal(verifyTotp(secret, codeAt(1), { now, window: 0 }), null);
  });

  test('refuses a replayed code: the step it matched is the last used step', () => {
    const code = codeAt(0);
    const used = verifyTotp(secret, code, { now });
    assert.equal(used, step);
    assert.equal(verifyTotp(secret, code, { now, lastUsedStep: used }), null);
    // Still refused a few seconds later, while the code is inside the window.
    assert.equal(verifyTotp(secret, code, { now: now + 20_000, lastUsedStep: used }), null);
  });

  test('refuses an older code once a newer one was used (no going back in the window)', () => {
    assert.equal(verifyTotp(secret, codeAt(-1), { now, lastUsedStep: step }), null);
    assert.equal(verifyTotp(secret, codeAt(1), { now, lastUsedStep: step }), step + 1);
  });

  test('refuses a code for another secret', () => {
    assert.equal(verifyTotp(otherSecret, codeAt(0), { now }), null);
  });

  test('refuses malformed input rather than throwing', () => {
    for (const bad of ['', '12345', '1234567', 'abcdef', '12345a', '+12345', '123456\n7', ' '.repeat(6)]) {
      assert.equal(verifyTotp(secret, bad, { now }), null, JSON.stringify(bad));
    }
    assert.equal(verifyTotp(secret, undefined as unknown as string, { now }), null);
  });

  test('accepts a code typed with a space in the middle', () => {
    const code = codeAt(0);
    assert.equal(verifyTotp(secret, `${code.slice(0, 3)} ${code.slice(3)}`, { now }), step);
  });

  test('a SHA-1 code does not verify against the SHA-256 default (an app that ignored the algorithm fails visibly)', () => {
    const sha1Code = totp(secret, { algorithm: 'SHA1', time: now });
    assert.equal(verifyTotp(secret, sha1Code, { now }), null);
    assert.equal(verifyTotp(secret, sha1Code, { now, algorithm: 'SHA1' }), step);
  });
});

describe('otpauthUri', () => {
  test('builds the Key URI with the blueprint parameters', () => {
    const secret = SEEDS.SHA256;
    const uri = otpauthUri({ accountName: 'jane.doe+spa@example.com', secret });
    const parsed = new URL(uri);
    assert.equal(parsed.protocol, 'otpauth:');
    assert.equal(parsed.host, 'totp');
    assert.equal(decodeURIComponent(parsed.pathname), '/MedSpaSync Pro:jane.doe+spa@example.com');
    assert.equal(parsed.searchParams.get('secret'), base32Encode(secret));
    assert.equal(parsed.searchParams.get('issuer'), 'MedSpaSync Pro');
    assert.equal(parsed.searchParams.get('algorithm'), 'SHA256');
    assert.equal(parsed.searchParams.get('digits'), '6');
    assert.equal(parsed.searchParams.get('period'), '30');
    assert.ok(uri.startsWith('otpauth://totp/MedSpaSync%20Pro:jane.doe%2Bspa%40example.com?'));
  });

  test('normalises a base32 secret to unpadded upper case', () => {
    const uri = otpauthUri({ accountName: 'a@b.c', secret: 'mzxw6ytboi======', algorithm: 'SHA1' });
    assert.match(uri, /secret=MZXW6YTBOI&/);
    assert.match(uri, /algorithm=SHA1/);
  });

  test('refuses a colon in the account name (it would spoof the issuer in the label)', () => {
    assert.throws(() => otpauthUri({ accountName: 'Evil Bank:victim', secret: SEEDS.SHA256 }), TypeError);
  });
});

// Interop with an independent implementation: the codes users' apps compute must be ours.
const oathtoolMissing = (() => {
  try {
    execFileSync('oathtool', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'oathtool is not on PATH (apt-get install -y oathtool): interop with an independent TOTP implementation NOT checked';
  }
})();

describe('interop with oathtool', () => {
  // Skipped per test (not per suite) so the runner's summary counts them as skipped.
  const skip = oathtoolMissing;
  const oathtool = (algorithm: string, secret: string, seconds: number, digits = 6) =>
    execFileSync('oathtool', [`--totp=${algorithm}`, '--base32', '-d', String(digits), '-N', `@${seconds}`, secret], {
      encoding: 'utf8',
    }).trim();

  test('oathtool --totp=sha256 codes verify for a generated secret at many times', { skip }, () => {
    const secret = base32Encode(generateSecret());
    for (const seconds of [59, 1_111_111_109, 1_700_000_000, 1_700_000_029, 1_700_000_030, 2_000_000_000]) {
      const code = oathtool('sha256', secret, seconds);
      assert.equal(code, totp(secret, { time: seconds * 1000 }), `T=${seconds}`);
      assert.equal(verifyTotp(secret, code, { now: seconds * 1000 }), Math.floor(seconds / 30));
    }
  });

  test('oathtool agrees for SHA-1 and SHA-512 and 8 digits', { skip }, () => {
    for (const algorithm of ['SHA1', 'SHA512'] as const) {
      const secret = base32Encode(generateSecret(algorithm));
      assert.equal(oathtool(algorithm.toLowerCase(), secret, 1_234_567_890, 8), totp(secret, { algorithm, digits: 8, time: 1_234_567_890_000 }));
    }
  });

  test('oathtool code for the current time verifies now (as an enrolling user would do)', { skip }, () => {
    const secret = base32Encode(generateSecret());
    const code = execFileSync('oathtool', ['--totp=sha256', '--base32', secret], { encoding: 'utf8' }).trim();
    assert.notEqual(verifyTotp(secret, code), null);
  });
});
