/** The browser session cookie: HttpOnly, SameSite=Strict, signed (by @fastify/cookie); it names a token, never holds one. */
export const SESSION_COOKIE = 'deferrable_session';

/** The cookie's value before signing: the token id and when the session ends. */
export function sessionValue(tokenId: string, ttlMs: number, now = Date.now()): string {
  return `${tokenId}.${now + ttlMs}`;
}

/** The token id of an unexpired session value (already unsigned), else null. */
export function sessionTokenId(value: string | null, now = Date.now()): string | null {
  const m = /^([0-9a-f-]{36})\.(\d{1,15})$/.exec(value ?? '');
  return m && Number(m[2]) > now ? m[1]! : null;
}
