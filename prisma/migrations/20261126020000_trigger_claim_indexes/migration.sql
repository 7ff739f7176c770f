-- Claims read only what they need. The claim and the triggerers' load count used to scan the
-- whole trigger table (fired and applied triggers stay until the cleanup deletes them, and a
-- busy table holds many dead versions): several ms of CPU per claim, and a triggerer claims on
-- every new-trigger hint. Now:
--   - unassigned unfired triggers, oldest first: trigger_unassigned_idx (usually a handful);
--   - unfired triggers per triggerer (takeover, sync, release, load): trigger_claim_idx, partial;
--   - fired triggers (the scheduler's backstop scan): trigger_fired_idx, partial.
-- A partial index also takes no entry for a row version outside it (fewer index writes).
-- No index now serves "all triggers of triggerer X, fired or not": deleting a job row (nothing
-- does today) would scan the table for its ON DELETE SET NULL.

-- DropIndex
DROP INDEX "trigger_claim_idx";
DROP INDEX "trigger_fired_idx";

-- CreateIndex
CREATE INDEX "trigger_claim_idx" ON "trigger"("triggerer_id", "queue") WHERE (event IS NULL);

-- CreateIndex
CREATE INDEX "trigger_unassigned_idx" ON "trigger"("created_at") WHERE ((triggerer_id IS NULL) AND (event IS NULL));

-- CreateIndex
CREATE INDEX "trigger_fired_idx" ON "trigger"("fired_at") WHERE (fired_at IS NOT NULL);
