-- Fewer writes per transition (bench/RESULTS.md). Every transition changes `state`, so no update
-- of task_instance can be HOT: each one adds an entry to every index whose new row qualifies.
-- With full indexes that was 6 entries per transition; with partial indexes a row sits only in
-- the index of the state it is in (plus the primary key), about 2 per transition.

-- DropIndex
DROP INDEX "task_instance_dispatch_idx";
DROP INDEX "task_instance_trigger_idx";
DROP INDEX "task_instance_trigger_timeout_idx";
DROP INDEX "task_instance_heartbeat_idx";
DROP INDEX "task_instance_idempotency_key_key";

-- CreateIndex
CREATE UNIQUE INDEX "task_instance_idempotency_key_key" ON "task_instance"("idempotency_key") WHERE (idempotency_key IS NOT NULL);

-- CreateIndex
CREATE INDEX "task_instance_dispatch_idx" ON "task_instance"("queue", "priority" DESC, "run_after") WHERE (state = 'scheduled'::task_state);

-- CreateIndex
CREATE INDEX "task_instance_retry_idx" ON "task_instance"("run_after") WHERE (state = 'up_for_retry'::task_state);

-- CreateIndex
CREATE INDEX "task_instance_queued_idx" ON "task_instance"("queue", "queued_at") WHERE (state = 'queued'::task_state);

-- CreateIndex
CREATE INDEX "task_instance_heartbeat_idx" ON "task_instance"("heartbeat_at") WHERE (state = 'running'::task_state);

-- CreateIndex
CREATE INDEX "task_instance_trigger_idx" ON "task_instance"("trigger_id") WHERE (trigger_id IS NOT NULL);

-- CreateIndex
CREATE INDEX "task_instance_trigger_timeout_idx" ON "task_instance"("trigger_timeout") WHERE (trigger_timeout IS NOT NULL);

-- The audit log, written once per statement from its transition tables instead of once per row:
-- a batch of 100 transitions costs one trigger call and one INSERT ... SELECT. A statement-level
-- trigger with transition tables cannot name columns (`UPDATE OF state`), so it runs for every
-- UPDATE and keeps only the rows whose state changed.
DROP TRIGGER "task_instance_log_transition" ON "task_instance";
DROP FUNCTION "deferrable_log_transition"();

CREATE FUNCTION "deferrable_log_inserted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "task_transition" ("task_instance_id", "try_number", "from_state", "to_state", "actor")
  SELECT n."id", n."try_number", NULL, n."state", n."last_actor" FROM new_rows n;
  RETURN NULL;
END
$$;

-- The join of the transition tables is planned once per connection and cached; planned for a
-- one-row statement it would be a nested loop, quadratic for a batch of thousands: hash or merge
-- joins only. No JIT: a disabled plan node's cost would otherwise trigger compilation (100 ms).
-- A resume that is dispatched at once goes from deferred to queued in one statement: it passes
-- through scheduled (never visible outside the statement), and the log records both steps.
CREATE FUNCTION "deferrable_log_updated"() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off SET jit = off AS $$
BEGIN
  WITH c AS (
    SELECT n."id", n."try_number", n."last_actor", o."state" AS old_state, n."state" AS new_state
    FROM new_rows n JOIN old_rows o ON o."id" = n."id"
    WHERE n."state" IS DISTINCT FROM o."state"
  )
  INSERT INTO "task_transition" ("task_instance_id", "try_number", "from_state", "to_state", "actor")
  SELECT x."id", x."try_number", x.from_state, x.to_state, x."last_actor"
  FROM (
    SELECT c."id", c."try_number", c."last_actor", c.old_state AS from_state, 'scheduled'::task_state AS to_state, 1 AS step
    FROM c WHERE c.old_state = 'deferred' AND c.new_state = 'queued'
    UNION ALL
    SELECT c."id", c."try_number", c."last_actor",
           CASE WHEN c.old_state = 'deferred' AND c.new_state = 'queued' THEN 'scheduled'::task_state ELSE c.old_state END,
           c.new_state, 2
    FROM c
  ) x
  ORDER BY x."id", x.step;
  RETURN NULL;
END
$$;

CREATE TRIGGER "task_instance_log_inserted"
AFTER INSERT ON "task_instance" REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION "deferrable_log_inserted"();

CREATE TRIGGER "task_instance_log_updated"
AFTER UPDATE ON "task_instance" REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION "deferrable_log_updated"();
