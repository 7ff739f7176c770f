import { randomUUID } from 'node:crypto';
import { claimTriggers, registerJob } from '@deferrable/db';
import { waitFor } from '@deferrable/testkit';
import { createHarness, deferredTask, peerTriggerer, testTriggers, type Harness } from './__tests__/support';
import { TriggerClaimer, type TriggerClaimerOptions } from './claimer';
import { OutcomeRecorder } from './outcome-recorder';
import { TriggerRunner } from './runner';

let h: Harness;
let parts: { claimer: TriggerClaimer; runner: TriggerRunner; recorder: OutcomeRecorder } | null = null;

beforeAll(async () => {
  h = await createHarness('trigger-claimer');
});

afterEach(async () => {
  if (parts) {
    await parts.claimer.stop();
    await parts.runner.stop(1000);
    await parts.recorder.close();
    parts.runner.close();
  }
  parts = null;
  await h.res.db.pool.query('TRUNCATE task_transition, task_instance, trigger, task_type_registration, job');
});

afterAll(async () => {
  await h?.cleanup();
});

/** A claimer (with its own live job row) whose runner runs triggers that wait until cancelled. */
async function startClaimer(opts: Partial<TriggerClaimerOptions> = {}): Promise<{ claimer: TriggerClaimer; runner: TriggerRunner; id: string }> {
  const id = randomUUID();
  const o: TriggerClaimerOptions = { capacity: 100, queues: ['default'], healthThresholdMs: 30_000, claimIntervalMs: 60_000, ...opts };
  await registerJob(h.res.db.pool, { id, jobType: 'triggerer', hostname: 'self', pid: process.pid, capacity: o.capacity, queues: o.queues });
  const recorder = new OutcomeRecorder(h.res);
  const runner = new TriggerRunner(h.res, { triggers: testTriggers(), blockWarnMs: 0, maxPayloadBytes: 256 * 1024 }, recorder);
  const claimer = new TriggerClaimer(h.res, o, id, runner);
  parts = { claimer, runner, recorder };
  claimer.start();
  return { claimer, runner, id };
}

async function waiting(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await deferredTask(h.res, { type: 'test.forever', kwargs: {} })).triggerId);
  return ids;
}

async function assignedTo(id: string): Promise<number> {
  const { rows } = await h.res.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM trigger WHERE triggerer_id = $1', [id]);
  return rows[0]!.n;
}

describe('TriggerClaimer', () => {
  test('alone, claims up to its capacity', async () => {
    await waiting(5);
    const { runner, id } = await startClaimer({ capacity: 3 });
    await waitFor(() => runner.size === 3, 5000, 'three running');
    expect(await assignedTo(id)).toBe(3);
  });

  test('with a live peer, claims its fair share of the waiting triggers', async () => {
    await waiting(10);
    await peerTriggerer(h.res);
    const { runner, id } = await startClaimer();
    await waitFor(() => runner.size === 5, 5000, 'five running');
    expect(await assignedTo(id)).toBe(5);
  });

  test('the share follows the load the live peers report, not a count of trigger rows', async () => {
    await waiting(10);
    // The peer reports 100 running triggers (in rows this test never wrote): a fair share of
    // 110 between two is 55, so all 10 waiting triggers are claimed here.
    await peerTriggerer(h.res, { load: 100 });
    const { runner } = await startClaimer();
    await waitFor(() => runner.size === 10, 5000, 'all ten running');
  });

  test('triggers its live peers leave unclaimed for two claim intervals are claimed beyond the share', async () => {
    await waiting(4);
    await peerTriggerer(h.res);
    const { runner } = await startClaimer({ claimIntervalMs: 200 });
    await waitFor(() => runner.size === 4, 10_000, 'all four running');
  });

  test("claims a dead peer's triggers as soon as its heartbeat expires, not a claim interval later", async () => {
    const peer = await peerTriggerer(h.res);
    const ids = await waiting(3);
    expect(await claimTriggers(h.res.db.pool, { triggererId: peer, limit: 10, healthThresholdMs: 30_000, queues: ['default'] })).toHaveLength(3);
    // The claim interval (60 s) is far longer than the test may take: only the expiry wakes it.
    const { runner } = await startClaimer({ healthThresholdMs: 1500 });
    await waitFor(() => runner.size === 3, 10_000, "the dead peer's triggers running here");
    expect(runner.ids().sort()).toEqual([...ids].sort());
  });
});
