-- The HTTP API: API tokens with roles, the request an idempotency key was first used with, and
-- the order of the task list.

-- API tokens: only a SHA-256 of the secret is kept (the secret is shown once, at creation).
-- CreateTable
CREATE TABLE "api_token" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "token_hash" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_token_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "api_token_token_hash_key" ON "api_token"("token_hash");

-- A hash of the request that first used a task's idempotency key: a repeat with another request
-- is refused (409 over HTTP) instead of silently returning a different task. NULL for rows
-- enqueued before this column (a repeat of those is taken as the same request).
-- AlterTable
ALTER TABLE "task_instance" ADD COLUMN "request_hash" TEXT;

-- The task list, newest first, paged by (created_at, id) keyset.
-- CreateIndex
CREATE INDEX "task_instance_created_idx" ON "task_instance"("created_at" DESC, "id" DESC);
