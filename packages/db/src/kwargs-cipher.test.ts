import { randomBytes } from 'node:crypto';
import { KwargsDecryptionError, type JsonObject } from '@deferrable/domain';
import { createKwargsCipher, generateKey, parseKey } from './kwargs-cipher';

const kwargs: JsonObject = {
  url: 'https://internal.example/health',
  headers: { authorization: 'Bearer s3cr3t-t0ken' },
  expect: [200, 204],
  nested: { deep: { unicode: 'naïve €', n: 1.5, none: null } },
};

function expectDecryptionError(fn: () => unknown): KwargsDecryptionError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KwargsDecryptionError);
  const e = caught as KwargsDecryptionError;
  expect(e.code).toBe('KWARGS_DECRYPTION');
  expect(e.retryable).toBe(false);
  return e;
}

/** Decodes one base64url part, applies `edit` to its bytes, re-encodes it. */
function editPart(token: string, index: number, edit: (b: Buffer) => Buffer): string {
  const parts = token.split('.');
  parts[index] = edit(Buffer.from(parts[index]!, 'base64url')).toString('base64url');
  return parts.join('.');
}

function flipBit(b: Buffer, byte: number): Buffer {
  const copy = Buffer.from(b);
  copy[byte] = copy[byte]! ^ 0x01;
  return copy;
}

describe('kwargs cipher', () => {
  const key = generateKey();
  const cipher = createKwargsCipher([key]);

  it('round-trips kwargs, including empty ones', () => {
    expect(cipher.decrypt(cipher.encrypt(kwargs))).toEqual(kwargs);
    expect(cipher.decrypt(cipher.encrypt({}))).toEqual({});
  });

  it('writes a v1 token of five base64url parts', () => {
    const token = cipher.encrypt(kwargs);
    const parts = token.split('.');
    expect(parts).toHaveLength(5);
    expect(parts[0]).toBe('v1');
    expect(parts[1]).toMatch(/^[0-9a-f]{8}$/);
    for (const p of parts.slice(2)) expect(p).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(parts[2]!, 'base64url')).toHaveLength(12);
    expect(Buffer.from(parts[3]!, 'base64url')).toHaveLength(16);
  });

  it('does not contain the plaintext in any encoding', () => {
    const token = cipher.encrypt(kwargs);
    const plain = JSON.stringify(kwargs);
    for (const needle of ['s3cr3t-t0ken', 'internal.example', 'authorization']) {
      expect(token).not.toContain(needle);
      expect(token).not.toContain(Buffer.from(needle).toString('base64url'));
      expect(token).not.toContain(Buffer.from(needle).toString('base64'));
    }
    expect(token).not.toContain(Buffer.from(plain).toString('base64url').slice(0, 16));
  });

  it('uses a fresh IV each time: the same kwargs give different tokens', () => {
    const a = cipher.encrypt(kwargs);
    const b = cipher.encrypt(kwargs);
    expect(a).not.toBe(b);
    expect(a.split('.')[2]).not.toBe(b.split('.')[2]);
    expect(cipher.decrypt(a)).toEqual(cipher.decrypt(b));
  });

  describe('tampering', () => {
    const token = cipher.encrypt(kwargs);

    it.each([
      ['iv', 2],
      ['tag', 3],
      ['ciphertext', 4],
    ] as const)('flipping any bit of the %s fails', (_name, index) => {
      const length = Buffer.from(token.split('.')[index]!, 'base64url').length;
      for (let byte = 0; byte < length; byte++) {
        expectDecryptionError(() => cipher.decrypt(editPart(token, index, (b) => flipBit(b, byte))));
      }
    });

    it.each([
      ['iv', 2],
      ['tag', 3],
      ['ciphertext', 4],
    ] as const)('truncating or extending the %s fails', (_name, index) => {
      expectDecryptionError(() => cipher.decrypt(editPart(token, index, (b) => b.subarray(0, b.length - 1))));
      expectDecryptionError(() => cipher.decrypt(editPart(token, index, (b) => Buffer.concat([b, Buffer.from([0])]))));
      expectDecryptionError(() => cipher.decrypt(editPart(token, index, () => Buffer.alloc(0))));
    });

    it('a tag cut short to 4 bytes is refused (GCM accepts short tags unless the length is pinned)', () => {
      expectDecryptionError(() => cipher.decrypt(editPart(token, 3, (b) => b.subarray(0, 4))));
      expectDecryptionError(() => cipher.decrypt(editPart(token, 3, (b) => b.subarray(0, 12))));
    });

    it('swapping parts between two tokens fails', () => {
      const other = cipher.encrypt({ other: true }).split('.');
      const parts = token.split('.');
      for (const i of [2, 3, 4]) {
        const mixed = [...parts];
        mixed[i] = other[i]!;
        expectDecryptionError(() => cipher.decrypt(mixed.join('.')));
      }
    });

    it('a wrong version, key id or shape fails', () => {
      const parts = token.split('.');
      expectDecryptionError(() => cipher.decrypt(['v2', ...parts.slice(1)].join('.')));
      expectDecryptionError(() => cipher.decrypt(parts.slice(0, 4).join('.')));
      expectDecryptionError(() => cipher.decrypt([...parts, 'x'].join('.')));
      expectDecryptionError(() => cipher.decrypt(''));
      expectDecryptionError(() => cipher.decrypt(JSON.stringify(kwargs)));
      const e = expectDecryptionError(() => cipher.decrypt(['v1', '00000000', ...parts.slice(2)].join('.')));
      expect(e.message).toContain('00000000');
    });
  });

  describe('key rotation', () => {
    const oldKey = generateKey();
    const newKey = generateKey();

    it('decrypts tokens of the old key with [new, old] and encrypts with the new one', () => {
      const before = createKwargsCipher([oldKey]);
      const after = createKwargsCipher([newKey, oldKey]);
      const oldToken = before.encrypt(kwargs);
      expect(after.decrypt(oldToken)).toEqual(kwargs);

      const newToken = after.encrypt(kwargs);
      expect(newToken.split('.')[1]).not.toBe(oldToken.split('.')[1]);
      expect(createKwargsCipher([newKey]).decrypt(newToken)).toEqual(kwargs);
      // The old key alone cannot read what the new key wrote.
      expectDecryptionError(() => before.decrypt(newToken));
    });

    it('fails with an unknown key id once the old key is dropped', () => {
      const oldToken = createKwargsCipher([oldKey]).encrypt(kwargs);
      const e = expectDecryptionError(() => createKwargsCipher([newKey]).decrypt(oldToken));
      expect(e.message).toContain(oldToken.split('.')[1]!);
    });

    it('a token relabelled with another configured key id fails authentication', () => {
      const both = createKwargsCipher([newKey, oldKey]);
      const oldToken = createKwargsCipher([oldKey]).encrypt(kwargs);
      const newId = both.encrypt({}).split('.')[1]!;
      const parts = oldToken.split('.');
      parts[1] = newId;
      expectDecryptionError(() => both.decrypt(parts.join('.')));
    });
  });

  describe('keys', () => {
    it('generates 32-byte base64 keys', () => {
      expect(parseKey(generateKey())).toHaveLength(32);
      expect(generateKey()).not.toBe(generateKey());
    });

    it.each([
      ['16 bytes', randomBytes(16).toString('base64')],
      ['33 bytes', randomBytes(33).toString('base64')],
      ['empty', ''],
      ['not base64', '!!!!'],
      ['hex of 32 bytes', randomBytes(32).toString('hex')],
    ])('rejects a key of %s', (_name, k) => {
      expect(() => parseKey(k)).toThrow(/32 bytes/);
      expect(() => createKwargsCipher([k])).toThrow(/32 bytes/);
    });

    it('rejects a bad key even when it is only a decryption key', () => {
      expect(() => createKwargsCipher([generateKey(), randomBytes(24).toString('base64')])).toThrow(/32 bytes/);
    });

    it('requires at least one key', () => {
      expect(() => createKwargsCipher([])).toThrow(/at least one/);
    });
  });
});
