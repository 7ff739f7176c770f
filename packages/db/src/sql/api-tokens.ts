import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Queryable } from '../client';

export type ApiRole = 'viewer' | 'operator' | 'admin';

export interface ApiTokenRow {
  id: string;
  name: string;
  role: ApiRole;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

/** SHA-256 (hex) of a token secret: what the table keeps. */
export function hashToken(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Creates a token; the secret is returned once, here, and never stored. */
export async function createApiToken(
  db: Queryable,
  t: { name: string; role: ApiRole; expiresAt: Date | null },
): Promise<{ token: ApiTokenRow; secret: string }> {
  const secret = `dfr_${randomBytes(32).toString('base64url')}`;
  const token = await insertApiToken(db, { id: randomUUID(), name: t.name, role: t.role, tokenHash: hashToken(secret), expiresAt: t.expiresAt });
  return { token, secret };
}

/** Whether a token row (with its `expired` flag) may be used. */
function lookup(row: (ApiTokenRow & { expired: boolean }) | undefined): TokenLookup {
  if (!row) return { status: 'unknown' };
  if (row.revoked_at) return { status: 'revoked' };
  const { expired, ...token } = row;
  return expired ? { status: 'expired' } : { status: 'live', token };
}

const EXPIRED = '(expires_at IS NOT NULL AND expires_at <= now()) AS expired';
const COLUMNS = 'id, name, role, created_at, expires_at, last_used_at, revoked_at';

/** Records a token; only the hash of its secret is stored. */
export async function insertApiToken(
  db: Queryable,
  t: { id: string; name: string; role: ApiRole; tokenHash: string; expiresAt: Date | null },
): Promise<ApiTokenRow> {
  const { rows } = await db.query<ApiTokenRow>(
    `INSERT INTO api_token (id, name, role, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
    [t.id, t.name, t.role, t.tokenHash, t.expiresAt],
  );
  return rows[0]!;
}

export async function listApiTokens(db: Queryable): Promise<ApiTokenRow[]> {
  return (await db.query<ApiTokenRow>(`SELECT ${COLUMNS} FROM api_token ORDER BY created_at DESC, id`)).rows;
}

/** Revokes a token for good. False when no live token has this id. */
export async function revokeApiToken(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('UPDATE api_token SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id])).rowCount === 1;
}

export type TokenLookup = { status: 'live'; token: ApiTokenRow } | { status: 'unknown' | 'revoked' | 'expired' };

/**
 * The token with this hash and whether it may be used. Marks a live one used: at most once a
 * minute per token, so that a busy service's requests do not each write a row (uses
 * api_token_token_hash_key).
 */
export async function useApiToken(db: Queryable, tokenHash: string): Promise<TokenLookup> {
  const { rows } = await db.query<ApiTokenRow & { expired: boolean }>(
    `WITH t AS (
       SELECT ${COLUMNS}, ${EXPIRED}
       FROM api_token WHERE token_hash = $1
     ), touched AS (
       UPDATE api_token a SET last_used_at = now() FROM t
       WHERE a.id = t.id AND t.revoked_at IS NULL AND NOT t.expired
         AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 minute')
     )
     SELECT * FROM t`,
    [tokenHash],
  );
  return lookup(rows[0]);
}

/** The token with this id and whether it may still be used (for a browser session that names it). */
export async function apiTokenById(db: Queryable, id: string): Promise<TokenLookup> {
  const { rows } = await db.query<ApiTokenRow & { expired: boolean }>(`SELECT ${COLUMNS}, ${EXPIRED} FROM api_token WHERE id = $1`, [id]);
  return lookup(rows[0]);
}
