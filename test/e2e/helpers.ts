import { DeferrableClient, type TaskInstanceView } from '@deferrable/sdk';
import { AppProcess, createTestEnv, stopApps, waitFor, type AppName, type TestEnv } from '@deferrable/testkit';

/**
 * How long an app may take to log that it started. Generous: on a machine whose cores are busy
 * with other work a Node process can take many seconds to load; a slow start is not what any
 * test here is about, and an app that fails to start exits, which fails the test at once.
 */
export const START_TIMEOUT_MS = 45_000;

/** Starts the given apps as processes and waits until each has logged that it started. */
export async function startApps(env: Record<string, string>, names: AppName[] = ['scheduler', 'triggerer', 'worker']): Promise<AppProcess[]> {
  const apps = names.map((n) => new AppProcess(n, env));
  try {
    await Promise.all(apps.map((a) => a.started(START_TIMEOUT_MS)));
  } catch (err) {
    await stopApps(apps);
    throw err;
  }
  return apps;
}

export interface E2E {
  env: TestEnv;
  client: DeferrableClient;
  apps: AppProcess[];
  app(name: AppName): AppProcess;
  close(): Promise<void>;
}

/** A test environment with the three apps running as processes, and an SDK client. */
export async function startSystem(label: string, extraEnv: Record<string, string> = {}, names?: AppName[]): Promise<E2E> {
  const env = await createTestEnv(label);
  // Without a worker, no task type is in the catalog: the client may enqueue them unchecked.
  const allowUnregisteredTasks = names !== undefined && !names.includes('worker');
  const client = new DeferrableClient({ databaseUrl: env.databaseUrl, redisUrl: env.redisUrl, prefix: env.prefix, actor: 'e2e', allowUnregisteredTasks });
  let apps: AppProcess[] = [];
  try {
    apps = await startApps(env.appEnv(extraEnv), names);
  } catch (err) {
    await client.close();
    await env.cleanup();
    throw err;
  }
  let closed = false;
  const sys: E2E = {
    env,
    client,
    apps,
    app(name) {
      const found = [...sys.apps].reverse().find((a) => a.name === name && a.running);
      if (!found) throw new Error(`no running ${name}`);
      return found;
    },
    async close() {
      // Idempotent: an afterEach may meet a system that an earlier test already closed.
      if (closed) return;
      closed = true;
      await stopApps(sys.apps);
      await client.close();
      await env.cleanup();
    },
  };
  return sys;
}

export async function waitAll(client: DeferrableClient, ids: readonly string[], timeoutMs = 30_000): Promise<TaskInstanceView[]> {
  return Promise.all(ids.map((id) => client.waitFor(id, { timeoutMs, pollMs: 100 })));
}

export interface TransitionRow {
  try_number: number;
  from_state: string | null;
  to_state: string;
}

/** The audit log of one task instance, in order. */
export async function transitions(env: TestEnv, id: string): Promise<TransitionRow[]> {
  const { rows } = await env.db.pool.query<TransitionRow>(
    'SELECT try_number, from_state, to_state FROM task_transition WHERE task_instance_id = $1 ORDER BY at, id',
    [id],
  );
  return rows;
}

export function count(rows: readonly TransitionRow[], from: string | null, to: string): number {
  return rows.filter((r) => r.from_state === from && r.to_state === to).length;
}

export async function stateCounts(env: TestEnv, ids: readonly string[]): Promise<Record<string, number>> {
  const { rows } = await env.db.pool.query<{ state: string; n: number }>(
    'SELECT state::text, count(*)::int AS n FROM task_instance WHERE id = ANY($1::uuid[]) GROUP BY state',
    [ids],
  );
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

export { waitFor };
