import { type ApiRole, apiTokenById, hashToken, type Queryable, type TokenLookup, useApiToken } from '@deferrable/db';
import { AuthenticationError, PermissionDeniedError } from '@deferrable/domain';
import { LRUCache } from 'lru-cache';

export type { ApiRole } from '@deferrable/db';
const RANK: Record<ApiRole, number> = { viewer: 1, operator: 2, admin: 3 };

/** Who is calling: the token's id, name and role. */
export interface Principal {
  tokenId: string;
  name: string;
  role: ApiRole;
}

/**
 * Checks bearer tokens against the api_token table. Lookups are cached for `cacheMs` (default
 * 5 s), so a busy service does not cost a query per request; a revoked token stops working
 * within that time.
 */
export class TokenVerifier {
  private readonly cache: LRUCache<string, TokenLookup>;

  constructor(
    private readonly db: Queryable,
    cacheMs = 5_000,
  ) {
    this.cache = new LRUCache({ max: 10_000, ttl: Math.max(1, cacheMs) });
  }

  /** The caller of a request with this Authorization header; throws AuthenticationError. */
  async authenticate(header: string | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!match)
      throw new AuthenticationError(
        header ? 'the Authorization header must be "Bearer <token>"' : 'this route needs an API token (Authorization: Bearer <token>)',
      );
    const hash = hashToken(match[1]!);
    let found = this.cache.get(hash);
    if (!found) {
      found = await useApiToken(this.db, hash);
      this.cache.set(hash, found);
    }
    return principalOf(found);
  }

  /** The caller of a browser session naming this token id (checked again, so a revoked token ends its sessions). */
  async authenticateSession(tokenId: string): Promise<Principal> {
    const key = `id:${tokenId}`;
    let found = this.cache.get(key);
    if (!found) {
      found = await apiTokenById(this.db, tokenId);
      this.cache.set(key, found);
    }
    return principalOf(found);
  }
}

function principalOf(found: TokenLookup): Principal {
  if (found.status !== 'live') throw new AuthenticationError(found.status === 'unknown' ? 'unknown API token' : `the API token is ${found.status}`);
  return { tokenId: found.token.id, name: found.token.name, role: found.token.role };
}

/** Throws PermissionDeniedError unless `principal`'s role is at least `needed`. */
export function requireRole(principal: Principal, needed: ApiRole): void {
  if (RANK[principal.role] < RANK[needed]) throw new PermissionDeniedError(principal.role, needed);
}
