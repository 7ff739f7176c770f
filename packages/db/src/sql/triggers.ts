import type { Queryable } from '../client';

export interface ClaimedTriggerRow {
  id: string;
  classpath: string;
  kwargs: string;
  queue: string | null;
  /** The task waiting on it, for logs. */
  task_instance_id: string | null;
}

// Claims unassigned triggers, and those of triggerers whose heartbeat is older than the health
// threshold, for which a task still waits. Index: trigger_claim_idx (triggerer_id, queue).
// SKIP LOCKED: replicas claiming at once take disjoint sets.
const CLAIM = `
WITH alive AS (
  SELECT id FROM job
  WHERE job_type = 'triggerer' AND state = 'running'
    AND latest_heartbeat > now() - make_interval(secs => $3::float8 / 1000)
), picked AS (
  SELECT t.id FROM trigger t
  WHERE t.event IS NULL
    AND (t.triggerer_id IS NULL OR t.triggerer_id NOT IN (SELECT id FROM alive))
    AND coalesce(t.queue, 'default') = ANY($4::text[])
    AND EXISTS (SELECT 1 FROM task_instance ti WHERE ti.trigger_id = t.id AND ti.state = 'deferred')
  ORDER BY t.created_at
  LIMIT $2
  FOR UPDATE OF t SKIP LOCKED
)
UPDATE trigger t SET triggerer_id = $1
WHERE t.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING t.id, t.classpath, t.kwargs, t.queue,
  (SELECT ti.id FROM task_instance ti WHERE ti.trigger_id = t.id AND ti.state = 'deferred' LIMIT 1) AS task_instance_id`;

export async function claimTriggers(
  db: Queryable,
  a: { triggererId: string; limit: number; healthThresholdMs: number; queues: readonly string[] },
): Promise<ClaimedTriggerRow[]> {
  if (a.limit <= 0) return [];
  return (await db.query<ClaimedTriggerRow>(CLAIM, [a.triggererId, a.limit, a.healthThresholdMs, a.queues])).rows;
}

// How many triggerers serve these queues, and how many unfired triggers they share: each replica
// claims up to its fair share, so work spreads instead of piling onto the first replica.
// Index: job_liveness_idx; the count scans trigger_claim_idx.
const LOAD = `
SELECT
  (SELECT count(*) FROM job
    WHERE job_type = 'triggerer' AND state = 'running'
      AND latest_heartbeat > now() - make_interval(secs => $1::float8 / 1000)
      AND queues && $2::text[])::int AS alive,
  (SELECT count(*) FROM trigger
    WHERE event IS NULL AND coalesce(queue, 'default') = ANY($2::text[]))::int AS unfired,
  (SELECT (extract(epoch FROM (min(latest_heartbeat) - now())) * 1000 + $1::float8)::float8 FROM job
    WHERE job_type = 'triggerer' AND state = 'running' AND id <> $3
      AND latest_heartbeat > now() - make_interval(secs => $1::float8 / 1000)) AS next_expiry_ms`;

/**
 * Live triggerers serving these queues, unfired triggers in them, and in how many ms the stalest
 * live peer would be declared dead if it stopped heartbeating now (null without peers).
 */
export async function triggererLoad(
  db: Queryable,
  a: { healthThresholdMs: number; queues: readonly string[]; self: string },
): Promise<{ alive: number; unfired: number; next_expiry_ms: number | null }> {
  const { rows } = await db.query<{ alive: number; unfired: number; next_expiry_ms: number | null }>(LOAD, [
    a.healthThresholdMs,
    a.queues,
    a.self,
  ]);
  return rows[0] ?? { alive: 0, unfired: 0, next_expiry_ms: null };
}

/** How many unfired triggers are assigned to this triggerer (index: trigger_claim_idx). */
export async function assignedTriggerCount(db: Queryable, triggererId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM trigger WHERE triggerer_id = $1 AND event IS NULL',
    [triggererId],
  );
  return rows[0]?.n ?? 0;
}

/** Ids of the unfired triggers assigned to this triggerer: anything else it runs is to be stopped. */
export async function assignedTriggerIds(db: Queryable, triggererId: string): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM trigger WHERE triggerer_id = $1 AND event IS NULL',
    [triggererId],
  );
  return new Set(rows.map((r) => r.id));
}

// First outcome wins (event IS NULL): if two replicas ran one trigger during a handover, only one
// event is recorded, and the task resumes once.
const RECORD = `
UPDATE trigger t SET event = v.event, fired_at = now()
FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::jsonb[]) AS event) v
WHERE t.id = v.id AND t.event IS NULL
RETURNING t.id`;

/** Records fired events or failures; returns the ids actually recorded now. */
export async function recordTriggerOutcomes(
  db: Queryable,
  outcomes: readonly { triggerId: string; outcome: unknown }[],
): Promise<string[]> {
  if (outcomes.length === 0) return [];
  const { rows } = await db.query<{ id: string }>(RECORD, [
    outcomes.map((o) => o.triggerId),
    outcomes.map((o) => JSON.stringify(o.outcome)),
  ]);
  return rows.map((r) => r.id);
}

/** On clean shutdown: hand every trigger back so other replicas claim them at once. */
export async function releaseTriggers(db: Queryable, triggererId: string): Promise<number> {
  const { rowCount } = await db.query('UPDATE trigger SET triggerer_id = NULL WHERE triggerer_id = $1 AND event IS NULL', [triggererId]);
  return rowCount ?? 0;
}
