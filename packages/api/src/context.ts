import type { TaskCatalog } from '@deferrable/catalog';
import type { Db } from '@deferrable/db';
import type { ApiRole, Principal, TokenVerifier } from './auth';

/** What every route is built from. */
export interface ApiContext {
  db: Db;
  catalog: TaskCatalog;
  tokens: TokenVerifier;
  /** A process whose heartbeat is older than this is unhealthy. */
  healthThresholdMs: number;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role that may call the route; unset: the route is public (health, docs). */
    role?: ApiRole;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}
