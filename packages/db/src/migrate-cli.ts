#!/usr/bin/env node
import { ensureDatabase, migrate } from './migrate';

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/deferrable';
  await ensureDatabase(url);
  const result = await migrate(url);
  process.stdout.write(
    `migrations: ${result.applied.length} applied (${result.applied.join(', ') || 'none'}), ${result.alreadyApplied.length} already applied\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`migrate failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
