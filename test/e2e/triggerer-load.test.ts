import { startSystem, waitFor, type E2E } from './helpers';
import { bulkDefer, logsWith, percentile, startTriggerer } from './triggerers';

/** Timer triggers on the loaded replica, due over WINDOW_MS starting LEAD_MS after they are written. */
const TRIGGERS = 20_000;
const WINDOW_MS = 10_000;
const LEAD_MS = 15_000;
/**
 * The replicas run with the default health threshold (what users get), not testkit's fast 2 s:
 * this test is about a replica's own work starving its heartbeat, and on a machine whose cores
 * are busy with other work (load average 20 and more) 2 s is crossed without any fault of the
 * replica's (seen: heartbeats 5.6 s and 9.6 s old, and the peer taking 5,000 triggers).
 */
const REPLICA_ENV = { DEFERRABLE_HEALTH_THRESHOLD_MS: '10000' };
const THRESHOLD_MS = Number(REPLICA_ENV.DEFERRABLE_HEALTH_THRESHOLD_MS);

/**
 * Only triggerers run here: the property is the triggerer's own liveness while tens of thousands
 * of its triggers fire (each fire records the event in PostgreSQL and publishes it to Redis). With
 * no scheduler, fired triggers stay in the table, so who held each one can be checked exactly.
 */
describe('a replica under heavy load is never declared dead while its process is alive', () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('trigload', {}, []);
  });
  afterAll(async () => {
    await sys?.close();
  });

  test(`${TRIGGERS.toLocaleString('en')} timers firing over ${WINDOW_MS / 1000} s on one replica: it is never taken for dead (its row stays running, the other replica takes none of its triggers)`, async () => {
    const db = sys.env.db.pool;
    const heldBy = async (id: string) => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM trigger WHERE triggerer_id = $1', [id])).rows[0]!.n;
    /**
     * The loaded replica, TRIGGERS timers due over the window from `leadMs` on, all held by it, then
     * a second replica, alive for the whole window: it would take the triggers of a dead replica.
     */
    const setUp = async (leadMs: number) => {
      const loaded = await startTriggerer(sys, REPLICA_ENV);
      const t0 = Date.now();
      const start = t0 + leadMs;
      const moments = Array.from({ length: TRIGGERS }, (_, i) => new Date(start + Math.floor((i * WINDOW_MS) / TRIGGERS)));
      const { triggerIds } = await bulkDefer(sys.env, moments);
      const writtenMs = Date.now() - t0;
      await waitFor(async () => (await heldBy(loaded.id)) === TRIGGERS, 120_000, 'the loaded replica holds every trigger', 100);
      const claimedMs = Date.now() - t0;
      const other = await startTriggerer(sys, { ...REPLICA_ENV, LOG_LEVEL: 'debug' });
      const otherStartedMs = Date.now() - t0;
      return { loaded, other, t0, start, triggerIds, writtenMs, claimedMs, otherStartedMs };
    };
    // Both replicas must be up before the first timer is due. A set-up slower than the lead (a busy
    // machine) is thrown away and done again with a lead sized from the one measured.
    let lead = LEAD_MS;
    let run = await setUp(lead);
    for (let attempt = 2; Date.now() >= run.start - 1000; attempt++) {
      console.log(`load: set-up took ${run.otherStartedMs} ms, over the ${lead} ms lead; again with a longer lead`);
      if (attempt > 3) throw new Error(`set-up overran the lead ${attempt - 1} times (last: ${run.otherStartedMs} ms for a ${lead} ms lead)`);
      await Promise.all([run.loaded.app.stop(), run.other.app.stop()]);
      await db.query('TRUNCATE task_transition, task_instance, trigger');
      lead = 2 * run.otherStartedMs + 5000;
      run = await setUp(lead);
    }
    const { loaded, other, t0, triggerIds, writtenMs, claimedMs, otherStartedMs } = run;

    interface Sample {
      at: number;
      age: number;
      state: string;
      load: number;
      notLoaded: number;
      fired: number;
    }
    const samples: Sample[] = [];
    const sample = async (): Promise<Sample> => {
      const { rows } = await db.query<{ age: number; state: string; load: number; not_loaded: number; fired: number }>(
        `SELECT (extract(epoch FROM now() - j.latest_heartbeat) * 1000)::float8 AS age, j.state, j.load,
                (SELECT count(*) FROM trigger WHERE triggerer_id IS DISTINCT FROM $1)::int AS not_loaded,
                (SELECT count(*) FROM trigger WHERE event IS NOT NULL)::int AS fired
         FROM job j WHERE j.id = $1`,
        [loaded.id],
      );
      const r = rows[0]!;
      const s = { at: Date.now(), age: r.age, state: r.state, load: r.load, notLoaded: r.not_loaded, fired: r.fired };
      samples.push(s);
      return s;
    };
    // Every 200 ms, until every trigger has fired.
    await waitFor(async () => (await sample()).fired === TRIGGERS, lead + WINDOW_MS + 60_000, 'every trigger fired', 200);
    const doneMs = Date.now() - t0;
    const firedUnwatched = samples[0]!.fired;

    const maxAge = Math.max(...samples.map((s) => s.age));
    const gaps = samples.slice(1).map((s, i) => s.at - samples[i]!.at);
    const {
      rows: [late],
    } = await db.query<{ p50: number; p99: number; max: number; rec_p99: number }>(
      `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY l) AS p99, max(l) AS max,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY r) AS rec_p99
       FROM (SELECT (extract(epoch FROM (event #>> '{payload,firedAt}')::timestamptz - (event #>> '{payload,moment}')::timestamptz) * 1000)::float8 AS l,
                    (extract(epoch FROM fired_at - (event #>> '{payload,moment}')::timestamptz) * 1000)::float8 AS r
             FROM trigger) x`,
    );
    const ages = samples.map((s) => s.age).sort((a, b) => a - b);
    console.log(
      `load: ${TRIGGERS} triggers written in ${writtenMs} ms, all held by the loaded replica at ${claimedMs} ms, second replica up at ${otherStartedMs} ms, ` +
        `all fired at ${doneMs} ms (window ${lead}-${lead + WINDOW_MS} ms; ${firedUnwatched} fired before the watch began). Heartbeat age over ${samples.length} samples: ` +
        `p50 ${Math.round(percentile(ages, 50))} ms, max ${Math.round(maxAge)} ms (threshold ${THRESHOLD_MS} ms); largest sampling gap ${Math.max(...gaps)} ms. ` +
        `Lateness (fired - due): p50 ${Math.round(late!.p50)} ms, p99 ${Math.round(late!.p99)} ms, max ${Math.round(late!.max)} ms; recorded p99 ${Math.round(late!.rec_p99)} ms`,
    );

    // The watch covered most of the firing: a test that watched nothing proves nothing.
    expect(firedUnwatched).toBeLessThan(TRIGGERS / 2);
    expect(samples.length).toBeGreaterThan(10);
    // Never dead in the eyes of the others: its row stayed running, and no trigger ever left it.
    // Its heartbeat's age (logged above) is how close it came: a machine whose cores are busy
    // with other work ages it too, so it is reported, not asserted.
    expect(samples.filter((s) => s.state !== 'running')).toEqual([]);
    expect(samples.filter((s) => s.notLoaded !== 0)).toEqual([]);
    expect(logsWith(other.app, 'claimed triggers')).toEqual([]);
    // Its sync loop may "cancel" a trigger whose event it has just recorded (still finishing its
    // publish); any other cancellation would mean a trigger was taken from it.
    const cancelled = logsWith(loaded.app, 'trigger no longer wanted here; cancelling');
    const { rows: notYetFired } = await db.query<{ id: string }>(
      `SELECT c.id FROM unnest($1::uuid[], $2::timestamptz[]) AS c(id, at)
       LEFT JOIN trigger t ON t.id = c.id WHERE t.fired_at IS NULL OR t.fired_at > c.at`,
      [cancelled.map((r) => r.triggerId as string), cancelled.map((r) => r.time as string)],
    );
    console.log(`load: the loaded replica logged ${cancelled.length} cancellations, ${notYetFired.length} of them before the trigger had fired`);
    expect(notYetFired).toEqual([]);
    expect(logsWith(loaded.app, 'job row is no longer running')).toEqual([]);
    const {
      rows: [end],
    } = await db.query<{ n: number; fired: number; held: number }>(
      'SELECT count(*)::int AS n, count(*) FILTER (WHERE event IS NOT NULL)::int AS fired, count(*) FILTER (WHERE triggerer_id = $2)::int AS held FROM trigger WHERE id = ANY($1::uuid[])',
      [triggerIds, loaded.id],
    );
    expect(end).toEqual({ n: TRIGGERS, fired: TRIGGERS, held: TRIGGERS });
    expect(loaded.app.running && other.app.running).toBe(true);
  }, 600_000);
});
