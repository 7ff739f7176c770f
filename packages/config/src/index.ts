import { ConfigError } from '@deferrable/domain';
import { safeUrl } from '@deferrable/logging';
import { z } from 'zod';

/**
 * One zod schema per app, parsed once at startup from environment variables. Defaults are for a
 * local machine (PostgreSQL and Redis on localhost). A bad value fails fast with the variable named.
 */

/** A fixed key for local development only; production must set DEFERRABLE_KWARGS_KEYS. */
export const DEV_KWARGS_KEY = 'ZGVmZXJyYWJsZS1kZXZlbG9wbWVudC1rZXktMzJieXQ=';

// An empty variable (VAR= in a compose file or a shell) counts as unset: it takes the default,
// rather than coercing to 0 (no shutdown grace, a random health port).
const unsetIfEmpty = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const int = (def: number, min = 0) => z.preprocess(unsetIfEmpty, z.coerce.number().int().min(min).default(def));
const csv = (def: string) =>
  z
    .string()
    .default(def)
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    );

const bool = (def: boolean) =>
  z.preprocess(unsetIfEmpty, z.enum(['true', 'false', '1', '0']).default(def ? 'true' : 'false')).transform((v) => v === 'true' || v === '1');

/**
 * -1 disables the health endpoint; 0 picks a free port. Unset: the app's default port, or a free
 * one when another process (a second replica on this host) holds it (see healthSettings).
 */
const healthPort = z.preprocess(unsetIfEmpty, z.coerce.number().int().min(-1).max(65535).optional());

/** The app's default health ports, when DEFERRABLE_HEALTH_PORT is not set. */
export const DEFAULT_HEALTH_PORTS = { scheduler: 8790, triggerer: 8791, worker: 8792 } as const;

/** Where an app serves /livez, /readyz and /status. */
export interface HealthSettings {
  /** -1: no health server; 0: any free port. */
  port: number;
  /** Set by the operator: when it is in use, the app refuses to start. Otherwise it falls back to a free port. */
  portFixed: boolean;
  host: string;
}

export function healthSettings(config: { DEFERRABLE_HEALTH_PORT?: number | undefined; DEFERRABLE_HEALTH_HOST: string }, defaultPort: number): HealthSettings {
  const fixed = config.DEFERRABLE_HEALTH_PORT !== undefined;
  return { port: config.DEFERRABLE_HEALTH_PORT ?? defaultPort, portFixed: fixed, host: config.DEFERRABLE_HEALTH_HOST };
}

const common = {
  DATABASE_URL: z.string().url().default('postgresql://postgres@127.0.0.1:5432/deferrable'),
  REDIS_URL: z
    .string()
    .url()
    .refine((u) => /^rediss?:\/\//.test(u), 'must be a redis:// or rediss:// (TLS) URL')
    .default('redis://127.0.0.1:6379'),
  DEFERRABLE_PREFIX: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9_{}.-]+$/)
    .default('{deferrable}'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Unset unless given: the development key is refused in production, and warned of unless development or test. */
  NODE_ENV: z.string().optional(),
  DEFERRABLE_KWARGS_KEYS: csv(DEV_KWARGS_KEY).refine((keys) => keys.length > 0, 'at least one key'),
  /** Modules (paths or package names) exporting `tasks` and/or `triggers` arrays to register. */
  DEFERRABLE_MODULES: csv(''),
  DEFERRABLE_MAX_PAYLOAD_BYTES: int(256 * 1024, 1024),
  DEFERRABLE_HEALTH_PORT: healthPort,
  /** The health server's bind address: loopback by default; 0.0.0.0 where probes come from outside (Kubernetes). */
  DEFERRABLE_HEALTH_HOST: z.preprocess(unsetIfEmpty, z.string().min(1).max(255).default('127.0.0.1')),
};

export const WorkerConfigSchema = z.object({
  ...common,
  DEFERRABLE_WORKER_SLOTS: int(4, 1),
  DEFERRABLE_WORKER_QUEUES: csv('default'),
  DEFERRABLE_HEARTBEAT_MS: int(2000, 50),
  DEFERRABLE_SHUTDOWN_GRACE_MS: int(10000),
});

export const TriggererConfigSchema = z
  .object({
    ...common,
    // 100,000 timer triggers measured at ~462 heap bytes each with lateness p99 ~20 ms (bench/RESULTS.md).
    DEFERRABLE_TRIGGERER_CAPACITY: int(100_000, 1),
    DEFERRABLE_TRIGGERER_QUEUES: csv('default'),
    DEFERRABLE_HEARTBEAT_MS: int(2000, 50),
    DEFERRABLE_HEALTH_THRESHOLD_MS: int(10000, 100),
    DEFERRABLE_CLAIM_INTERVAL_MS: int(1000, 10),
    DEFERRABLE_SYNC_INTERVAL_MS: int(2000, 10),
    DEFERRABLE_BLOCK_WARN_MS: int(200),
    DEFERRABLE_CLAIM_BATCH: int(5000, 1),
    DEFERRABLE_SHUTDOWN_GRACE_MS: int(10000),
  })
  .refine((c) => c.DEFERRABLE_HEALTH_THRESHOLD_MS >= 3 * c.DEFERRABLE_HEARTBEAT_MS, {
    // Below a few heartbeats, a live replica is declared dead between two of its beats and its
    // triggers are taken over (and run twice) back and forth.
    path: ['DEFERRABLE_HEALTH_THRESHOLD_MS'],
    message: 'must be at least 3 times DEFERRABLE_HEARTBEAT_MS',
  });

export const SchedulerConfigSchema = z.object({
  ...common,
  DEFERRABLE_POLL_MS: int(1000, 10),
  DEFERRABLE_DISPATCH_BATCH: int(500, 1),
  DEFERRABLE_DISPATCH_AHEAD: int(1000, 1),
  DEFERRABLE_REAP_AFTER_MS: int(30000, 100),
  DEFERRABLE_REDISPATCH_AFTER_MS: int(10000, 100),
  DEFERRABLE_CLEANUP_INTERVAL_MS: int(5000, 10),
  DEFERRABLE_EVENT_CONCURRENCY: int(256, 1),
  /** Record task requests for task types no worker has registered in the catalog (off: refused). */
  DEFERRABLE_ALLOW_UNREGISTERED_TASKS: bool(false),
  /** Retention (0 keeps rows for ever): finished task instances and their transitions, by ended_at. */
  DEFERRABLE_RETENTION_MS: int(7 * 24 * 3600 * 1000),
  /** Job rows, by ended_at or (a process killed with kill -9) latest_heartbeat. */
  DEFERRABLE_JOB_RETENTION_MS: int(7 * 24 * 3600 * 1000),
  DEFERRABLE_REJECTION_RETENTION_MS: int(7 * 24 * 3600 * 1000),
  DEFERRABLE_RETENTION_INTERVAL_MS: int(60_000, 10),
});

export const ApiConfigSchema = z.object({
  ...common,
  DEFERRABLE_API_PORT: z.preprocess(unsetIfEmpty, z.coerce.number().int().min(0).max(65535).default(8780)),
  /** Loopback by default; 0.0.0.0 to serve other hosts (behind TLS). */
  DEFERRABLE_API_HOST: z.preprocess(unsetIfEmpty, z.string().min(1).max(255).default('127.0.0.1')),
  /** Requests per minute per API token (or per address without one). */
  DEFERRABLE_API_RATE_LIMIT: int(60_000, 1),
  /** A process whose heartbeat is older than this shows as unhealthy. */
  DEFERRABLE_HEALTH_THRESHOLD_MS: int(10000, 100),
  /** Accept task types no worker has registered in the catalog (off: refused). */
  DEFERRABLE_ALLOW_UNREGISTERED_TASKS: bool(false),
  /** Signs browser session cookies (32 characters or more); unset: a random one, so sessions end when the API restarts. */
  DEFERRABLE_API_SESSION_SECRET: z.preprocess(unsetIfEmpty, z.string().min(32).max(1000).optional()),
  DEFERRABLE_API_SESSION_TTL_MS: int(12 * 3600 * 1000, 60_000),
  /** Session cookies only over HTTPS: set when the API is served behind TLS. */
  DEFERRABLE_API_SECURE_COOKIES: bool(false),
});

const SECRET_VARIABLE = /KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL/i;

/**
 * A bad value as a configuration error may show it: never the value of a variable that names a
 * secret (key, secret, token, password), a URL only with its password masked, at most 80 characters.
 */
export function shownValue(variable: string, value: unknown): string | null {
  if (SECRET_VARIABLE.test(variable)) return null;
  const text = String(value);
  if (/_URL$/i.test(variable) || /^[a-z][a-z0-9+.-]*:\/\//i.test(text.trim())) return safeUrl(text.trim()).slice(0, 80);
  return text.slice(0, 80);
}

/** Parses `env` with `schema`, or throws a ConfigError naming the first bad variable. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const variable = issue.path.map(String).join('.') || '(environment)';
    const shown = variable in env ? shownValue(variable, env[variable]) : null;
    throw new ConfigError(variable, `${issue.message}${shown === null ? '' : ` (got "${shown}")`}`);
  }
  const config = result.data as z.output<S> & { NODE_ENV?: string; DEFERRABLE_KWARGS_KEYS?: string[] };
  if (config.NODE_ENV === 'production' && config.DEFERRABLE_KWARGS_KEYS?.includes(DEV_KWARGS_KEY)) {
    throw new ConfigError('DEFERRABLE_KWARGS_KEYS', 'the development key must not be used in production');
  }
  return config;
}
