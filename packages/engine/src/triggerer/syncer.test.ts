import { randomUUID } from 'node:crypto';
import { claimTriggers } from '@deferrable/db';
import { waitFor } from '@deferrable/testkit';
import { createHarness, deferredTask, peerTriggerer, testTriggers, triggerRow, type Harness } from './__tests__/support';
import { TriggerClaimer } from './claimer';
import { OutcomeRecorder } from './outcome-recorder';
import { TriggerRunner } from './runner';
import { TriggerSyncer } from './syncer';

let h: Harness;
let recorder: OutcomeRecorder;
let runner: TriggerRunner;
let syncer: TriggerSyncer;
const cleanups = new Map<string, number>();
const triggererId = randomUUID();

beforeAll(async () => {
  h = await createHarness('trigger-syncer');
  recorder = new OutcomeRecorder(h.res);
  runner = new TriggerRunner(h.res, { triggers: testTriggers(cleanups), blockWarnMs: 0, maxPayloadBytes: 256 * 1024 }, recorder);
  // Never started: the syncer only reads its claim counters and may wake it.
  const claimer = new TriggerClaimer(h.res, { capacity: 100, queues: ['default'], healthThresholdMs: 30_000, claimIntervalMs: 60_000 }, triggererId, runner);
  syncer = new TriggerSyncer(h.res, { syncIntervalMs: 60_000 }, triggererId, runner, recorder, claimer);
  await peerTriggerer(h.res, { id: triggererId });
});

afterAll(async () => {
  await runner?.stop(1000);
  await recorder?.close();
  await h?.cleanup();
});

describe('TriggerSyncer', () => {
  test('stops a trigger no longer assigned here, and hands back one assigned here that does not run', async () => {
    const kept = await deferredTask(h.res, { type: 'test.forever', kwargs: {} });
    const takenAway = await deferredTask(h.res, { type: 'test.forever', kwargs: {} });
    runner.startClaimed(await claimTriggers(h.res.db.pool, { triggererId, limit: 10, healthThresholdMs: 30_000, queues: ['default'] }));
    expect(runner.size).toBe(2);
    // Nothing changed: the sync leaves everything as it is.
    await new Promise((r) => setTimeout(r, 5));
    await syncer.sync();
    expect(runner.size).toBe(2);
    // One is taken away (its task was cancelled, or a peer took it over).
    await h.res.db.pool.query('UPDATE trigger SET triggerer_id = $2 WHERE id = $1', [takenAway.triggerId, await peerTriggerer(h.res)]);
    await syncer.sync();
    await waitFor(() => runner.size === 1, 5000, 'the cancelled trigger ended');
    expect(runner.ids()).toEqual([kept.triggerId]);
    expect(cleanups.get(takenAway.triggerId)).toBe(1);
    // One more is assigned here without this replica knowing (a claim whose answer was lost).
    const lost = await deferredTask(h.res, { type: 'test.forever', kwargs: {} });
    await h.res.db.pool.query('UPDATE trigger SET triggerer_id = $2 WHERE id = $1', [lost.triggerId, triggererId]);
    await syncer.sync();
    expect(runner.ids()).toEqual([kept.triggerId]);
    expect((await triggerRow(h.res, lost.triggerId)).triggerer_id).toBeNull();
    expect((await triggerRow(h.res, kept.triggerId)).triggerer_id).toBe(triggererId);
  });
});
