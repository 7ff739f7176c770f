/**
 * What must be undone however the benchmark ends (child processes, databases, Redis keys): run
 * in reverse order on normal exit, on failure, and on SIGINT/SIGTERM.
 */
type Undo = () => Promise<unknown>;

const stack: { label: string; undo: Undo }[] = [];

/** Registers `undo`; the returned function runs it now (once) and unregisters it. */
export function onTeardown(label: string, undo: Undo): () => Promise<void> {
  const entry = { label, undo };
  stack.push(entry);
  return async () => {
    const i = stack.indexOf(entry);
    if (i < 0) return;
    stack.splice(i, 1);
    await undo();
  };
}

export async function teardownAll(): Promise<void> {
  while (stack.length > 0) {
    const { label, undo } = stack.pop()!;
    await undo().catch((err: unknown) => process.stderr.write(`teardown of ${label} failed: ${String(err)}\n`));
  }
}

/** A first signal tears everything down and exits; a second one exits at once. */
export function teardownOnSignals(): void {
  let signalled = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (signalled) process.exit(130);
      signalled = true;
      process.stderr.write(`\n${signal}: stopping child processes and dropping the benchmark databases...\n`);
      void teardownAll().finally(() => process.exit(130));
    });
  }
}
