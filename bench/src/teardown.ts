/**
 * What must be undone however the benchmark ends (child processes, databases, Redis keys): run
 * in reverse order on normal exit, on failure, and on SIGINT/SIGTERM. Each undo runs once; a
 * second request for it (the run's own `finally` racing a signal) waits for the same promise.
 */
interface Entry {
  label: string;
  undo: () => Promise<unknown>;
  running: Promise<void> | null;
}

const stack: Entry[] = [];
let signalled = false;

function run(entry: Entry): Promise<void> {
  entry.running ??= entry
    .undo()
    .then(
      () => undefined,
      (err: unknown) => void process.stderr.write(`teardown of ${entry.label} failed: ${String(err)}\n`),
    )
    .finally(() => {
      const i = stack.indexOf(entry);
      if (i >= 0) stack.splice(i, 1);
    });
  return entry.running;
}

/** Registers `undo`; the returned function runs it now (once). */
export function onTeardown(label: string, undo: () => Promise<unknown>): () => Promise<void> {
  const entry: Entry = { label, undo, running: null };
  stack.push(entry);
  return () => run(entry);
}

/** Undoes everything still registered, last registered first. */
export async function teardownAll(): Promise<void> {
  while (stack.length > 0) {
    for (const entry of [...stack].reverse()) await run(entry);
  }
}

export const interrupted = (): boolean => signalled;

/** A first signal tears everything down and exits; a second one exits at once. */
export function teardownOnSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (signalled) process.exit(130);
      signalled = true;
      process.stderr.write(`\n${signal}: stopping child processes, dropping the benchmark database and Redis keys...\n`);
      void teardownAll().finally(() => process.exit(130));
    });
  }
}
