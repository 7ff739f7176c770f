import type { ApiTokenRow } from '@deferrable/db';
import { table } from './table';

/** `30d`, `12h`, `45m`: a token's lifetime. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+)\s*([dhm])$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm'];
  return n > 0 ? n * unit : null;
}

function status(t: ApiTokenRow, now: Date): string {
  if (t.revoked_at) return 'revoked';
  if (t.expires_at && t.expires_at <= now) return 'expired';
  return 'live';
}

/** Tokens for people: id, name, role, status, expiry, last use (never a secret: none is kept). */
export function formatTokens(rows: readonly ApiTokenRow[], now = new Date()): string {
  if (rows.length === 0) return 'no API tokens (create one with `deferrable tokens create --role viewer --name <name>`)';
  const when = (d: Date | null) => (d ? d.toISOString().replace('T', ' ').slice(0, 19) : '-');
  return table(
    ['ID', 'NAME', 'ROLE', 'STATUS', 'EXPIRES', 'LAST USED'],
    rows.map((t) => [t.id, t.name, t.role, status(t, now), when(t.expires_at), when(t.last_used_at)]),
  );
}
