-- Retention: the scheduler deletes finished task instances, old job rows and old rejections in
-- small batches (packages/db/src/sql/retention.ts).

-- Finished task instances by age, oldest first. Partial: only terminal states, so the index takes
-- no entry for a row in flight (every transition of a live task would otherwise write one).
-- CreateIndex
CREATE INDEX "task_instance_ended_idx" ON "task_instance"("ended_at") WHERE (state = ANY (ARRAY['success'::task_state, 'failed'::task_state, 'skipped'::task_state, 'cancelled'::task_state]));

-- Deleting a job row must not scan the trigger table. With this foreign key, each deleted job
-- row ran `UPDATE trigger SET triggerer_id = NULL WHERE triggerer_id = ...` (ON DELETE SET NULL),
-- and no index serves triggerer_id over all triggers (trigger_claim_idx holds only unfired ones).
-- The key is not needed: the claim already treats a triggerer without a live job row as dead and
-- takes its triggers over, and a fired trigger's triggerer_id is read by nothing.
-- DropForeignKey
ALTER TABLE "trigger" DROP CONSTRAINT "trigger_triggerer_id_fkey";
