import { DeferrableClient, type TaskInstanceView } from '@deferrable/sdk';
import { createTestEnv, startApps, stopApps, waitFor, type AppName, type AppProcess, type TestEnv } from '@deferrable/testkit';

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
