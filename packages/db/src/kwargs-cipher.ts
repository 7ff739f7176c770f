import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { KwargsDecryptionError, type JsonObject } from '@deferrable/domain';

/**
 * Trigger kwargs at rest: AES-256-GCM (authenticated) with a random 96-bit IV per value.
 * Token: `v1.<key id>.<iv>.<tag>.<ciphertext>` (base64url). Several keys are accepted so a key can
 * be rotated: the first encrypts, any decrypts, chosen by its id (first 8 hex chars of its SHA-256).
 * Node's crypto is the well-kept library here; a format of our own keeps key ids in the token.
 */
export interface KwargsCipher {
  encrypt(kwargs: JsonObject): string;
  decrypt(token: string): JsonObject;
}

const TAG_BYTES = 16;

interface Key {
  id: string;
  bytes: Buffer;
}

export function parseKey(encoded: string): Buffer {
  const bytes = Buffer.from(encoded.trim(), 'base64');
  if (bytes.length !== 32) throw new Error(`an encryption key must be 32 bytes in base64, got ${bytes.length} bytes`);
  return bytes;
}

export function createKwargsCipher(encodedKeys: readonly string[]): KwargsCipher {
  if (encodedKeys.length === 0) throw new Error('at least one kwargs encryption key is required');
  const keys: Key[] = encodedKeys.map((k) => {
    const bytes = parseKey(k);
    return { id: createHash('sha256').update(bytes).digest('hex').slice(0, 8), bytes };
  });
  const byId = new Map(keys.map((k) => [k.id, k]));
  const primary = keys[0]!;
  return {
    encrypt(kwargs) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', primary.bytes, iv);
      const body = Buffer.concat([cipher.update(JSON.stringify(kwargs), 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();
      return ['v1', primary.id, iv.toString('base64url'), tag.toString('base64url'), body.toString('base64url')].join('.');
    },
    decrypt(token) {
      const parts = token.split('.');
      if (parts.length !== 5 || parts[0] !== 'v1') throw new KwargsDecryptionError('not a v1 token');
      const [, keyId, iv, tag, body] = parts as [string, string, string, string, string];
      const key = byId.get(keyId);
      if (!key) throw new KwargsDecryptionError(`no configured key has id ${keyId}`);
      try {
        // The tag length is pinned: GCM otherwise accepts a tag cut down to 4 bytes, which an
        // attacker could forge by trial.
        const tagBytes = Buffer.from(tag, 'base64url');
        if (tagBytes.length !== TAG_BYTES) throw new Error('bad tag length');
        const decipher = createDecipheriv('aes-256-gcm', key.bytes, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES });
        decipher.setAuthTag(tagBytes);
        const plain = Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
        return JSON.parse(plain) as JsonObject;
      } catch {
        throw new KwargsDecryptionError('authentication failed');
      }
    },
  };
}

export function generateKey(): string {
  return randomBytes(32).toString('base64');
}
