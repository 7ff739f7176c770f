import type { Queryable } from '../client';
import { JOB_RUNNING } from './jobs';
import { sqlState } from './states';

export interface ClaimedTriggerRow {
  id: string;
  classpath: string;
  kwargs: string;
  queue: string | null;
  /** The task waiting on it, for logs. */
  task_instance_id: string | null;
}

// Claims unfired triggers for which a task still waits: unassigned ones, and those of triggerers
// whose heartbeat is older than the health threshold (or that ended without releasing them),
// oldest first. SKIP LOCKED: replicas claiming at once take disjoint sets.
// Both halves read indexes of unfired triggers only, never the whole table (it also holds fired
// triggers until cleanup, and many dead row versions):
//   - unassigned: trigger_unassigned_idx;
//   - taken over: the triggerers holding unfired triggers, found by a loose index scan of
//     trigger_claim_idx (one probe per holder, so ended job rows piling up cost nothing), minus
//     the live ones, then their triggers through the same index.
// Each half locks up to $2 rows before the oldest $2 of both are kept; the rest stay locked until
// commit, so a replica claiming at that instant skips them (it gets them on its next claim).
// One half of the claim: unfired triggers of these queues held as `owner` says, for which a task
// still waits, oldest first, locked.
const claimable = (owner: string) => `
  SELECT t.id, t.created_at FROM trigger t
  WHERE ${owner} AND t.event IS NULL
    AND coalesce(t.queue, 'default') = ANY($4::text[])
    AND EXISTS (SELECT 1 FROM task_instance ti WHERE ti.trigger_id = t.id AND ti.state = ${sqlState('deferred')})
  ORDER BY t.created_at
  LIMIT $2
  FOR UPDATE OF t SKIP LOCKED`;

// The triggerers holding unfired triggers (a loose index scan of trigger_claim_idx: one probe per
// holder) that are not alive by the health threshold given as `thresholdMs` (a parameter).
const DEAD_HOLDERS = (thresholdMs: string) => `holders AS (
  (SELECT triggerer_id FROM trigger WHERE event IS NULL AND triggerer_id IS NOT NULL ORDER BY triggerer_id LIMIT 1)
  UNION ALL
  SELECT (SELECT t.triggerer_id FROM trigger t
          WHERE t.event IS NULL AND t.triggerer_id > h.triggerer_id ORDER BY t.triggerer_id LIMIT 1)
  FROM holders h WHERE h.triggerer_id IS NOT NULL
), dead AS (
  SELECT h.triggerer_id AS id FROM holders h
  WHERE h.triggerer_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM job j WHERE j.id = h.triggerer_id AND j.job_type = 'triggerer' AND j.state = ${JOB_RUNNING}
      AND j.latest_heartbeat > now() - make_interval(secs => ${thresholdMs}::float8 / 1000))
)`;

const CLAIM = `
WITH RECURSIVE ${DEAD_HOLDERS('$3')}, fresh AS (${claimable('t.triggerer_id IS NULL')}
), orphaned AS (${claimable('t.triggerer_id = ANY(ARRAY(SELECT id FROM dead))')}
), picked AS (
  SELECT id FROM (SELECT * FROM fresh UNION ALL SELECT * FROM orphaned) p ORDER BY created_at LIMIT $2
)
UPDATE trigger t SET triggerer_id = $1
WHERE t.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING t.id, t.classpath, t.kwargs, t.queue,
  (SELECT ti.id FROM task_instance ti WHERE ti.trigger_id = t.id AND ti.state = ${sqlState('deferred')} LIMIT 1) AS task_instance_id`;

export async function claimTriggers(
  db: Queryable,
  a: { triggererId: string; limit: number; healthThresholdMs: number; queues: readonly string[] },
): Promise<ClaimedTriggerRow[]> {
  if (a.limit <= 0) return [];
  return (await db.query<ClaimedTriggerRow>(CLAIM, [a.triggererId, a.limit, a.healthThresholdMs, a.queues])).rows;
}

// How many triggerers serve these queues, and how many unfired triggers they share: each replica
// claims up to its fair share, so work spreads instead of piling onto the first replica. The
// share is computed only when there are peers (a lone triggerer claims up to its capacity, and
// unfired is then null), and only from what is cheap to read, never a count of every trigger:
//   - what the live triggerers run: the load each heartbeats into its job row (job_liveness_idx;
//     a peer's load counts all its queues), and this triggerer's own running count ($4), exact;
//   - unassigned unfired triggers: trigger_unassigned_idx (usually a handful);
//   - triggers held by dead triggerers (about to be taken over): their holders found by a loose
//     index scan of trigger_claim_idx (one probe per holder), then their triggers through it.
const LOAD = `
WITH RECURSIVE ${DEAD_HOLDERS('$1')}, live AS (
  SELECT id, load FROM job
  WHERE job_type = 'triggerer' AND state = ${JOB_RUNNING}
    AND latest_heartbeat > now() - make_interval(secs => $1::float8 / 1000)
    AND queues && $2::text[]
), a AS (
  SELECT count(*)::int AS alive FROM live
)
SELECT
  a.alive,
  CASE WHEN a.alive > 1 THEN
    (SELECT coalesce(sum(load), 0) FROM live WHERE id <> $3)::int + $4::int
    + (SELECT count(*) FROM trigger WHERE triggerer_id IS NULL AND event IS NULL AND coalesce(queue, 'default') = ANY($2::text[]))::int
    + (SELECT count(*) FROM trigger WHERE triggerer_id = ANY(ARRAY(SELECT id FROM dead)) AND event IS NULL
         AND coalesce(queue, 'default') = ANY($2::text[]))::int
  END AS unfired,
  -- Index: trigger_unassigned_idx (created_at, only unassigned unfired triggers: a handful).
  CASE WHEN a.alive > 1 THEN (SELECT (extract(epoch FROM now() - min(created_at)) * 1000)::float8 FROM trigger
    WHERE triggerer_id IS NULL AND event IS NULL AND coalesce(queue, 'default') = ANY($2::text[])) END AS unassigned_age_ms,
  (SELECT (extract(epoch FROM (min(latest_heartbeat) - now())) * 1000 + $1::float8)::float8 FROM job
    WHERE job_type = 'triggerer' AND state = ${JOB_RUNNING} AND id <> $3
      AND latest_heartbeat > now() - make_interval(secs => $1::float8 / 1000)) AS next_expiry_ms
FROM a`;

export interface TriggererLoad {
  alive: number;
  /** Unfired triggers of these queues: what the live triggerers run, unassigned, and held by dead ones. */
  unfired: number | null;
  /** Age of the oldest unassigned unfired trigger in these queues (null: none, or no peers). */
  unassigned_age_ms: number | null;
  next_expiry_ms: number | null;
}

/**
 * Live triggerers serving these queues, unfired triggers in them and the age of the oldest one
 * nobody holds (both null when there is at most one live triggerer: no share to compute), and in
 * how many ms the stalest live peer would be declared dead if it stopped heartbeating now (null
 * without peers). `running`: how many triggers `self` runs now (its job row's load lags).
 */
export async function triggererLoad(
  db: Queryable,
  a: { healthThresholdMs: number; queues: readonly string[]; self: string; running?: number },
): Promise<TriggererLoad> {
  const { rows } = await db.query<TriggererLoad>(LOAD, [a.healthThresholdMs, a.queues, a.self, a.running ?? 0]);
  return rows[0] ?? { alive: 0, unfired: null, unassigned_age_ms: null, next_expiry_ms: null };
}

/** How many unfired triggers are assigned to this triggerer (index: trigger_claim_idx). */
export async function assignedTriggerCount(db: Queryable, triggererId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM trigger WHERE triggerer_id = $1 AND event IS NULL', [triggererId]);
  return rows[0]?.n ?? 0;
}

/** Ids of the unfired triggers assigned to this triggerer: anything else it runs is to be stopped. */
export async function assignedTriggerIds(db: Queryable, triggererId: string): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM trigger WHERE triggerer_id = $1 AND event IS NULL', [triggererId]);
  return new Set(rows.map((r) => r.id));
}

// First outcome wins (event IS NULL): if two replicas ran one trigger during a handover, only one
// event is recorded, and the task resumes once. Returns, for the logs, the task waiting on each
// (index: task_instance_trigger_idx), so the triggerer need not keep it per trigger.
const RECORD = `
UPDATE trigger t SET event = v.event, fired_at = now()
FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::jsonb[]) AS event) v
WHERE t.id = v.id AND t.event IS NULL
RETURNING t.id, t.classpath, (SELECT ti.id FROM task_instance ti WHERE ti.trigger_id = t.id LIMIT 1) AS task_instance_id`;

export interface RecordedTriggerRow {
  id: string;
  classpath: string;
  /** The task waiting on the trigger (null if none still does). */
  task_instance_id: string | null;
}

/** Records fired events or failures; returns the rows actually recorded now, with their tasks. */
export async function recordTriggerOutcomeRows(db: Queryable, outcomes: readonly { triggerId: string; outcome: unknown }[]): Promise<RecordedTriggerRow[]> {
  if (outcomes.length === 0) return [];
  const { rows } = await db.query<RecordedTriggerRow>(RECORD, [outcomes.map((o) => o.triggerId), outcomes.map((o) => JSON.stringify(o.outcome))]);
  return rows;
}

/** Records fired events or failures; returns the ids actually recorded now. */
export async function recordTriggerOutcomes(db: Queryable, outcomes: readonly { triggerId: string; outcome: unknown }[]): Promise<string[]> {
  return (await recordTriggerOutcomeRows(db, outcomes)).map((r) => r.id);
}

/**
 * Hands back these unfired triggers if this triggerer still holds them: ones assigned to it that
 * it does not run (a claim that committed but whose answer was lost).
 */
export async function releaseTriggerIds(db: Queryable, triggererId: string, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const { rowCount } = await db.query('UPDATE trigger SET triggerer_id = NULL WHERE id = ANY($2::uuid[]) AND triggerer_id = $1 AND event IS NULL', [
    triggererId,
    ids,
  ]);
  return rowCount ?? 0;
}

/** On clean shutdown: hand every trigger back so other replicas claim them at once. */
export async function releaseTriggers(db: Queryable, triggererId: string): Promise<number> {
  const { rowCount } = await db.query('UPDATE trigger SET triggerer_id = NULL WHERE triggerer_id = $1 AND event IS NULL', [triggererId]);
  return rowCount ?? 0;
}
