import { AsyncLocalStorage, createHook, type AsyncHook } from 'node:async_hooks';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';

export interface TriggerScope {
  triggerId: string;
  triggerType: string;
  taskInstanceId: string | null;
}

export interface BlockReport extends TriggerScope {
  blockedMs: number;
}

/**
 * Names the trigger that blocked the event loop. Each trigger runs inside an AsyncLocalStorage
 * scope; an async hook times every callback that runs in such a scope, and one that runs longer
 * than the threshold is reported with its trigger. Node has no cheaper way to attribute a stall to
 * the code that caused it. A histogram of event-loop delay gives the overall picture.
 */
export class BlockDetector {
  private readonly scope = new AsyncLocalStorage<TriggerScope>();
  private readonly hook: AsyncHook | null;
  private readonly delay: IntervalHistogram;
  private depth = 0;
  private current: TriggerScope | undefined;
  private startedAt = 0;
  readonly counts = new Map<string, number>();

  constructor(
    private readonly thresholdMs: number,
    private readonly onBlock: (report: BlockReport) => void,
  ) {
    this.delay = monitorEventLoopDelay({ resolution: 20 });
    this.hook =
      thresholdMs > 0
        ? createHook({
            before: () => {
              if (this.depth++ === 0) {
                this.current = this.scope.getStore();
                this.startedAt = performance.now();
              }
            },
            after: () => {
              if (--this.depth === 0) this.finish();
            },
          })
        : null;
  }

  start(): void {
    this.delay.enable();
    this.hook?.enable();
  }

  stop(): void {
    this.hook?.disable();
    this.delay.disable();
  }

  /** Runs `fn` (the synchronous start of a trigger) in its scope, timing it too. */
  run<T>(scope: TriggerScope, fn: () => T): T {
    if (!this.hook) return fn();
    const outer = this.depth === 0;
    if (outer) {
      this.depth++;
      this.current = scope;
      this.startedAt = performance.now();
    }
    try {
      return this.scope.run(scope, fn);
    } finally {
      if (outer && --this.depth === 0) this.finish();
    }
  }

  /** Runs `fn` outside any trigger's scope (work done on behalf of many triggers, such as a flush). */
  outside<T>(fn: () => T): T {
    return this.scope.exit(fn);
  }

  /** Event-loop delay percentiles since start, in ms. */
  loopDelay(): { p50: number; p99: number; max: number } {
    return { p50: this.delay.percentile(50) / 1e6, p99: this.delay.percentile(99) / 1e6, max: this.delay.max / 1e6 };
  }

  private finish(): void {
    const scope = this.current;
    this.current = undefined;
    if (!scope) return;
    const blockedMs = performance.now() - this.startedAt;
    if (blockedMs >= this.thresholdMs) {
      this.counts.set(scope.triggerType, (this.counts.get(scope.triggerType) ?? 0) + 1);
      this.onBlock({ ...scope, blockedMs: Math.round(blockedMs) });
    }
  }
}
