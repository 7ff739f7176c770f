import { DeferrableError, type EnqueueRequest, type ErrorCode, type InputIssue, isTerminal, type TaskState } from '@deferrable/domain';
import { type TaskInstanceView, TaskWaitTimeoutError } from './client';

/** A task instance as the HTTP API returns it: the database client's view with times as ISO 8601 strings, and its trigger. */
export interface HttpTaskView extends Omit<TaskInstanceView, 'result' | 'createdAt' | 'startedAt' | 'endedAt' | 'triggerId'> {
  priority: number;
  idempotencyKey: string | null;
  result: unknown;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  trigger: { id: string; type: string; queue: string | null; triggererId: string | null; waitingSince: string; timeoutAt: string | null } | null;
}

export interface HttpTaskList {
  items: Omit<HttpTaskView, 'nextMethod' | 'result' | 'error' | 'startedAt' | 'trigger'>[];
  nextCursor: string | null;
}

export interface DeferrableHttpClientOptions {
  /** The API's address, such as http://127.0.0.1:8780. */
  baseUrl: string;
  /** An API token (`deferrable tokens create`); operator to enqueue and cancel, viewer to read. */
  token: string;
  /** Per request. Default 10 s. */
  requestTimeoutMs?: number;
  /**
   * How long `enqueue` keeps retrying a retryable failure (the API or its database unreachable)
   * when the request has an idempotency key. Default 10 s; 0 turns it off.
   */
  retryForMs?: number;
}

/** A refusal or failure reported by the API: its stable code, status and, for 400, the failing paths. */
export class HttpApiError extends DeferrableError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly status: number | null,
    retryable: boolean,
    readonly paths: InputIssue[] = [],
    cause?: unknown,
  ) {
    super(code, message, { retryable, cause });
  }
}

/**
 * The SDK for services without database access: the database client's methods (enqueue, get,
 * list, waitFor, cancel) over the HTTP API, with an API token. Failures are HttpApiError with the
 * API's error codes (the same codes the database client's errors carry).
 */
export class DeferrableHttpClient {
  private readonly base: string;

  constructor(private readonly opts: DeferrableHttpClientOptions) {
    this.base = `${opts.baseUrl.replace(/\/+$/, '')}/api/v1`;
  }

  /** Enqueues; with an idempotency key, a repeat of the same request returns the same task (`created: false`). */
  async enqueue(request: EnqueueRequest): Promise<{ id: string; created: boolean; task: HttpTaskView }> {
    const deadline = Date.now() + (request.idempotencyKey ? (this.opts.retryForMs ?? 10_000) : 0);
    for (let attempt = 0; ; attempt++) {
      try {
        const { status, body } = await this.call<HttpTaskView>('POST', '/tasks', request);
        return { id: body.id, created: status === 201, task: body };
      } catch (err) {
        if (!(err instanceof HttpApiError) || !err.retryable || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }

  /** The task, or null when no task has this id. */
  async get(id: string): Promise<HttpTaskView | null> {
    try {
      return (await this.call<HttpTaskView>('GET', `/tasks/${encodeURIComponent(id)}`)).body;
    } catch (err) {
      if (err instanceof HttpApiError && err.code === 'TASK_NOT_FOUND') return null;
      throw err;
    }
  }

  /** One page of tasks, newest first; pass `nextCursor` back as `cursor` for the next. */
  async list(filter: { state?: TaskState; task?: string; queue?: string; since?: Date; cursor?: string; limit?: number } = {}): Promise<HttpTaskList> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, v instanceof Date ? v.toISOString() : String(v));
    return (await this.call<HttpTaskList>('GET', `/tasks${q.size ? `?${q.toString()}` : ''}`)).body;
  }

  /** Polls until the task reaches a terminal state; a retryable failure (429, 503, no answer) is polled through. */
  async waitFor(id: string, opts: { timeoutMs?: number; pollMs?: number } = {}): Promise<HttpTaskView> {
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    let last: HttpTaskView | null = null;
    for (;;) {
      try {
        last = await this.get(id);
      } catch (err) {
        if (!(err instanceof HttpApiError) || !err.retryable || Date.now() >= deadline) throw err;
      }
      if (last && isTerminal(last.state)) return last;
      if (Date.now() >= deadline) throw new TaskWaitTimeoutError(id, last?.state ?? null);
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 200));
    }
  }

  /** Cancels a task that has not ended; 409 (INVALID_TRANSITION) when it had. */
  async cancel(id: string): Promise<HttpTaskView> {
    return (await this.call<HttpTaskView>('POST', `/tasks/${encodeURIComponent(id)}/cancel`)).body;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.opts.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new HttpApiError(
        'INTERNAL',
        `the API at ${this.opts.baseUrl} could not be reached: ${err instanceof Error ? err.message : String(err)}`,
        null,
        true,
        [],
        err,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (res.ok) return { status: res.status, body: parsed as T };
    const e = (parsed as { error?: { code?: ErrorCode; message?: string; retryable?: boolean; paths?: InputIssue[] } } | null)?.error;
    throw new HttpApiError(e?.code ?? 'INTERNAL', e?.message ?? `HTTP ${res.status}`, res.status, e?.retryable ?? res.status >= 500, e?.paths ?? []);
  }
}
