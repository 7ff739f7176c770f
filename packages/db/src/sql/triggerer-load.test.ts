/**
 * The fair-share figures a triggerer reads before it claims (triggererLoad), against a real,
 * migrated PostgreSQL database.
 */
import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import type { Pool } from 'pg';
import { registerJob } from './jobs';
import { triggererLoad } from './triggers';

let env: TestEnv;
let pool: Pool;

beforeAll(async () => {
  env = await createTestEnv('triggerer-load');
  pool = env.db.pool;
});

afterAll(async () => {
  await env?.cleanup();
});

beforeEach(async () => {
  await pool.query('TRUNCATE task_transition, task_instance, trigger, task_type_registration, job');
});

async function triggerer(load = 0, queues = ['default']): Promise<string> {
  const id = randomUUID();
  await registerJob(pool, { id, jobType: 'triggerer', hostname: 'h', pid: 1, capacity: 1000, queues });
  await pool.query('UPDATE job SET load = $2 WHERE id = $1', [id, load]);
  return id;
}

/** Unfired trigger rows (no task behind them: the load reads triggers only), held by `holder`. */
async function triggers(n: number, holder: string | null = null, queue: string | null = null): Promise<void> {
  for (let i = 0; i < n; i++) {
    await pool.query("INSERT INTO trigger (id, classpath, kwargs, queue, triggerer_id) VALUES ($1, 'datetime', 'x', $2, $3)", [randomUUID(), queue, holder]);
  }
}

const load = (self: string, running = 0) => triggererLoad(pool, { healthThresholdMs: 30_000, queues: ['default'], self, running });

describe('triggererLoad', () => {
  it("adds up the live peers' reported loads, this triggerer's running count, and the unassigned triggers", async () => {
    const self = await triggerer();
    expect(await load(self)).toMatchObject({ alive: 1, unfired: null });
    // A peer that reports 100 running triggers, with no trigger rows behind it: only its job row
    // says so. A count of trigger rows would see none of them.
    await triggerer(100);
    await triggers(3);
    await triggers(2, null, 'other');
    expect(await load(self, 7)).toMatchObject({ alive: 2, unfired: 100 + 7 + 3 });
  });

  it('counts the triggers held by dead triggerers (about to be taken over), not the rows held by live ones', async () => {
    const self = await triggerer();
    const peer = await triggerer(4);
    // The live peer's rows are counted through its reported load, once.
    await triggers(4, peer);
    const dead = await triggerer(9);
    await pool.query("UPDATE job SET latest_heartbeat = now() - interval '1 hour' WHERE id = $1", [dead]);
    await triggers(5, dead);
    expect(await load(self)).toMatchObject({ alive: 2, unfired: 4 + 5 });
  });
});
