-- CreateEnum
CREATE TYPE "task_state" AS ENUM ('scheduled', 'queued', 'running', 'deferred', 'up_for_retry', 'success', 'failed', 'skipped', 'cancelled');

-- CreateTable
CREATE TABLE "task_instance" (
    "id" UUID NOT NULL,
    "task_name" TEXT NOT NULL,
    "args" JSONB NOT NULL DEFAULT '{}',
    "queue" TEXT NOT NULL DEFAULT 'default',
    "priority" INTEGER NOT NULL DEFAULT 0,
    "state" "task_state" NOT NULL,
    "try_number" INTEGER NOT NULL DEFAULT 1,
    "max_tries" INTEGER NOT NULL DEFAULT 1,
    "retry_delay_ms" INTEGER NOT NULL DEFAULT 1000,
    "retry_backoff" DOUBLE PRECISION NOT NULL DEFAULT 2,
    "retry_max_delay_ms" INTEGER NOT NULL DEFAULT 3600000,
    "execution_timeout_ms" INTEGER,
    "run_after" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "dispatch_attempt" INTEGER NOT NULL DEFAULT 0,
    "queued_at" TIMESTAMPTZ(3),
    "trigger_id" UUID,
    "next_method" TEXT,
    "next_kwargs" JSONB,
    "trigger_timeout" TIMESTAMPTZ(3),
    "idempotency_key" TEXT,
    "worker_id" UUID,
    "heartbeat_at" TIMESTAMPTZ(3),
    "result" JSONB,
    "error" JSONB,
    "last_actor" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "ended_at" TIMESTAMPTZ(3),

    CONSTRAINT "task_instance_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "trigger" (
    "id" UUID NOT NULL,
    "classpath" TEXT NOT NULL,
    "kwargs" TEXT NOT NULL,
    "queue" TEXT,
    "triggerer_id" UUID,
    "event" JSONB,
    "fired_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "trigger_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "job" (
    "id" UUID NOT NULL,
    "job_type" TEXT NOT NULL,
    "hostname" TEXT NOT NULL,
    "pid" INTEGER NOT NULL,
    "state" TEXT NOT NULL,
    "capacity" INTEGER NOT NULL DEFAULT 0,
    "load" INTEGER NOT NULL DEFAULT 0,
    "queues" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "ended_at" TIMESTAMPTZ(3),
    "latest_heartbeat" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "job_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "task_transition" (
    "id" BIGSERIAL NOT NULL,
    "task_instance_id" UUID NOT NULL,
    "try_number" INTEGER NOT NULL,
    "from_state" "task_state",
    "to_state" "task_state" NOT NULL,
    "actor" TEXT,
    "at" TIMESTAMPTZ(6) NOT NULL DEFAULT clock_timestamp(),

    CONSTRAINT "task_transition_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "rejection" (
    "id" BIGSERIAL NOT NULL,
    "source" TEXT NOT NULL,
    "job_id" TEXT,
    "reason" TEXT NOT NULL,
    "excerpt" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "rejection_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "task_instance_idempotency_key_key" ON "task_instance"("idempotency_key");

-- CreateIndex
CREATE INDEX "task_instance_dispatch_idx" ON "task_instance"("state", "priority" DESC, "run_after");

-- CreateIndex
CREATE INDEX "task_instance_trigger_idx" ON "task_instance"("trigger_id", "state");

-- CreateIndex
CREATE INDEX "task_instance_trigger_timeout_idx" ON "task_instance"("trigger_timeout");

-- CreateIndex
CREATE INDEX "task_instance_heartbeat_idx" ON "task_instance"("state", "heartbeat_at");

-- CreateIndex
CREATE INDEX "trigger_claim_idx" ON "trigger"("triggerer_id", "queue");

-- CreateIndex
CREATE INDEX "trigger_fired_idx" ON "trigger"("fired_at");

-- CreateIndex
CREATE INDEX "job_liveness_idx" ON "job"("job_type", "state", "latest_heartbeat");

-- CreateIndex
CREATE INDEX "task_transition_task_idx" ON "task_transition"("task_instance_id", "at");

-- CreateIndex
CREATE INDEX "rejection_created_idx" ON "rejection"("created_at");

-- AddForeignKey
ALTER TABLE "task_instance" ADD CONSTRAINT "task_instance_trigger_id_fkey" FOREIGN KEY ("trigger_id") REFERENCES "trigger"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "trigger" ADD CONSTRAINT "trigger_triggerer_id_fkey" FOREIGN KEY ("triggerer_id") REFERENCES "job"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "task_transition" ADD CONSTRAINT "task_transition_task_instance_id_fkey" FOREIGN KEY ("task_instance_id") REFERENCES "task_instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The audit log of transitions is written by the database itself, so no code path can forget it.
-- Prisma's schema has no notion of triggers; this is outside what `prisma migrate diff` compares.
CREATE FUNCTION "deferrable_log_transition"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "task_transition" ("task_instance_id", "try_number", "from_state", "to_state", "actor")
    VALUES (NEW."id", NEW."try_number", NULL, NEW."state", NEW."last_actor");
  ELSIF NEW."state" IS DISTINCT FROM OLD."state" THEN
    INSERT INTO "task_transition" ("task_instance_id", "try_number", "from_state", "to_state", "actor")
    VALUES (NEW."id", NEW."try_number", OLD."state", NEW."state", NEW."last_actor");
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER "task_instance_log_transition"
AFTER INSERT OR UPDATE OF "state" ON "task_instance"
FOR EACH ROW EXECUTE FUNCTION "deferrable_log_transition"();
