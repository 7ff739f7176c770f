import { startSystem, stateCounts, waitAll, waitFor, type E2E } from './helpers';

describe('prompt pickup: a new trigger runs within tens of milliseconds, not a poll period', () => {
  let sys: E2E;
  beforeAll(async () => {
    // A claim interval of 10 s: only the wake-up hint can explain a pickup in milliseconds.
    sys = await startSystem('pickup', { DEFERRABLE_CLAIM_INTERVAL_MS: '10000', LOG_LEVEL: 'debug' });
  });
  afterAll(async () => {
    await sys?.close();
  });

  test('the triggerer claims a new trigger right after the deferral commits', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push((await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 30_000 } })).id);
      await waitFor(async () => (await stateCounts(sys.env, [ids[i]!])).deferred === 1, 10_000, 'deferred');
    }
    const triggerer = sys.app('triggerer');
    await waitFor(async () => {
      const r = await sys.env.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM trigger WHERE triggerer_id IS NOT NULL');
      return r.rows[0]!.n === ids.length;
    }, 5_000, 'all claimed well before the 10 s claim interval');
    // Each deferral's commit time (audit log) against the triggerer's log line for its claim.
    const { rows } = await sys.env.db.pool.query<{ id: string; at: Date; trigger_id: string }>(
      `SELECT t.task_instance_id AS id, t.at, ti.trigger_id FROM task_transition t JOIN task_instance ti ON ti.id = t.task_instance_id
       WHERE t.to_state = 'deferred' AND t.task_instance_id = ANY($1::uuid[])`,
      [ids],
    );
    const claims = triggerer.logs.filter((l) => l.msg === 'claimed triggers');
    expect(claims.length).toBeGreaterThanOrEqual(1);
    const delays = rows.map((r) => {
      const claim = claims.find((c) => Date.parse(String(c.time)) >= r.at.getTime() - 5);
      if (!claim) throw new Error(`no claim after the deferral of ${r.id}`);
      return Date.parse(String(claim.time)) - r.at.getTime();
    });
    delays.sort((a, b) => a - b);
    console.log(`deferral commit -> claim: ${delays.join(', ')} ms`);
    expect(delays[Math.floor(delays.length / 2)]!).toBeLessThan(100);
    expect(delays[delays.length - 1]!).toBeLessThan(1000);
    await sys.env.db.pool.query("UPDATE task_instance SET state = 'cancelled', trigger_id = NULL WHERE id = ANY($1::uuid[])", [ids]);
  });

  test('a timer due at once resumes its task promptly', async () => {
    const started = Date.now();
    const { id } = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 0 } });
    const [done] = await waitAll(sys.client, [id], 10_000);
    expect(done!.state).toBe('success');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
