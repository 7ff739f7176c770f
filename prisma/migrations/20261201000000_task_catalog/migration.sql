-- The task catalog: every task type a worker loads, published at its startup, so that every entry
-- (SDK, task-request queue, HTTP API) checks a request against the definition before writing
-- anything, also in a service that does not have the task's code.

-- CreateTable
CREATE TABLE "task_type" (
    "name" TEXT NOT NULL,
    "definition_hash" TEXT NOT NULL,
    "args_schema" JSONB,
    "queue" TEXT NOT NULL,
    "queues" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "priority" INTEGER NOT NULL DEFAULT 0,
    "max_tries" INTEGER NOT NULL,
    "retry_delay_ms" INTEGER NOT NULL,
    "retry_backoff" DOUBLE PRECISION NOT NULL,
    "retry_max_delay_ms" INTEGER NOT NULL,
    "execution_timeout_ms" INTEGER,
    "callbacks" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "version" INTEGER NOT NULL DEFAULT 1,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_type_pkey" PRIMARY KEY ("name")
);

-- Which process registered which definition of a task type: two live workers with different
-- hashes under one name are a conflict a person should see (`deferrable task-types list`).
-- CreateTable
CREATE TABLE "task_type_registration" (
    "job_id" UUID NOT NULL,
    "task_name" TEXT NOT NULL,
    "definition_hash" TEXT NOT NULL,
    "registered_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_type_registration_pkey" PRIMARY KEY ("job_id", "task_name")
);

-- CreateIndex
CREATE INDEX "task_type_registration_name_idx" ON "task_type_registration"("task_name");

-- AddForeignKey
ALTER TABLE "task_type_registration" ADD CONSTRAINT "task_type_registration_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
