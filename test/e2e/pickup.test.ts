import { startSystem, stateCounts, waitAll, waitFor, type E2E } from './helpers';

/**
 * The triggerer's claim loop polls only every DEFERRABLE_CLAIM_INTERVAL_MS; a deferral's wake-up
 * hint is what makes it claim at once. With a claim interval of ten minutes, a trigger claimed
 * within the test's timeouts can only have been claimed because of its hint. How fast the hint
 * path is belongs to the benchmarks (`npm run bench -- triggerer`), not to this test.
 */
const NEVER_POLL_MS = '600000';

describe('prompt pickup: a new trigger is claimed on its wake-up hint, not on a poll', () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('pickup', { DEFERRABLE_CLAIM_INTERVAL_MS: NEVER_POLL_MS, LOG_LEVEL: 'debug' });
  });
  afterAll(async () => {
    await sys?.close();
  });

  const triggerHeld = async (id: string) => {
    const r = await sys.env.db.pool.query(
      'SELECT 1 FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id WHERE ti.id = $1 AND t.triggerer_id IS NOT NULL',
      [id],
    );
    return r.rowCount === 1;
  };

  test('each deferral is claimed by the triggerer on its own hint, one after the other', async () => {
    // One at a time: each claim must follow its own deferral's hint, not a later one's.
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const { id } = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 600_000 } });
      ids.push(id);
      await waitFor(async () => (await stateCounts(sys.env, [id])).deferred === 1, 30_000, `task ${i} deferred`);
      await waitFor(() => triggerHeld(id), 30_000, `the trigger of task ${i} claimed (the poll is ten minutes away)`);
    }
    expect(await stateCounts(sys.env, ids)).toEqual({ deferred: 10 });
    // For the record only: each deferral's commit (audit log) against the triggerer's claim log line.
    const { rows } = await sys.env.db.pool.query<{ at: Date }>(
      `SELECT at FROM task_transition WHERE to_state = 'deferred' AND task_instance_id = ANY($1::uuid[]) ORDER BY at`,
      [ids],
    );
    const claims = sys
      .app('triggerer')
      .logs.filter((l) => l.msg === 'claimed triggers')
      .map((c) => Date.parse(String(c.time)));
    const delays = rows.map((r) => (claims.find((c) => c >= r.at.getTime() - 5) ?? NaN) - r.at.getTime());
    console.log(`deferral commit -> claim (not asserted): ${delays.join(', ')} ms`);
    await sys.env.db.pool.query("UPDATE task_instance SET state = 'cancelled', trigger_id = NULL WHERE id = ANY($1::uuid[])", [ids]);
  });

  test('a timer due at once resumes its task without waiting for a poll', async () => {
    const { id } = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 0 } });
    const [done] = await waitAll(sys.client, [id], 45_000);
    expect(done!.state).toBe('success');
  });
});
