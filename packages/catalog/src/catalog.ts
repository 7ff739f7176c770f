import { findTaskType, taskTypeNames, type NewTaskInstance, type Queryable, type TaskTypeRow } from '@deferrable/db';
import {
  assertJsonSize,
  EnqueueRequestSchema,
  InvalidInputError,
  parseInput,
  RetryPolicySchema,
  UnknownTaskTypeError,
  type EnqueueRequest,
} from '@deferrable/domain';
import type { ValidateFunction } from 'ajv/dist/2020';
import { LRUCache } from 'lru-cache';
import { closeNames } from './suggest';
import { argsIssues, compileArgsSchema } from './validator';

const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

export interface TaskCatalogOptions {
  /**
   * Accept task names that no worker has registered yet, with the system defaults and no argument
   * check (for a deployment that enqueues before its workers first start). Off by default: an
   * unknown name is refused.
   */
  allowUnregistered?: boolean;
  /** How long a definition read from the catalog is used before it is read again (ms). */
  cacheTtlMs?: number;
  maxPayloadBytes?: number;
}

/** What an enqueue writes, once checked and with every default applied. */
export type CheckedRequest = Omit<NewTaskInstance, 'id' | 'actor'>;

const SYSTEM_DEFAULTS = RetryPolicySchema.parse({});
// A cached "no such type" is a row of null (LRUCache does not store undefined).
type Cached = { row: TaskTypeRow | null };

/**
 * The task catalog as every entry sees it: checks a request against its task type's definition
 * (arguments against the JSON Schema, queue among those the type allows) and fills in the
 * definition's defaults where the request is silent. Precedence, field by field: the request,
 * then the task definition, then the system defaults (queue `default`, priority 0, one try,
 * retry delay 1 s doubling up to 1 h, no execution timeout).
 * Definitions are cached for `cacheTtlMs`, validators per name and definition hash.
 */
export class TaskCatalog {
  private readonly types: LRUCache<string, Cached>;
  private readonly validators = new LRUCache<string, ValidateFunction>({ max: 500 });
  private names: { list: string[]; at: number } | null = null;
  private readonly ttlMs: number;

  constructor(
    private readonly db: Queryable,
    private readonly opts: TaskCatalogOptions = {},
  ) {
    this.ttlMs = opts.cacheTtlMs ?? 2000;
    this.types = new LRUCache<string, Cached>({ max: 1000, ttl: Math.max(1, this.ttlMs) });
  }

  /** Checks a request and resolves every field an enqueue writes. Throws typed errors; writes nothing. */
  async check(request: EnqueueRequest): Promise<CheckedRequest> {
    const req = parseInput(EnqueueRequestSchema, request, 'enqueue request');
    assertJsonSize(req.args, this.opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES, 'task arguments');
    const type = await this.find(req.task);
    if (!type && !this.opts.allowUnregistered) throw await this.unknown(req.task);
    if (type) {
      const allowed = [type.queue, ...type.queues];
      if (req.queue !== undefined && !allowed.includes(req.queue)) {
        const list = allowed.map((q) => `"${q}"`).join(', ');
        throw new InvalidInputError('enqueue request', [
          { path: 'queue', message: `task type "${type.name}" runs on ${allowed.length > 1 ? 'queues' : 'queue'} ${list}, not "${req.queue}"` },
        ]);
      }
      const validate = this.validator(type);
      if (validate && !validate(req.args)) throw new InvalidInputError(`arguments of task "${type.name}"`, argsIssues(validate.errors));
    }
    return {
      taskName: req.task,
      args: req.args,
      queue: req.queue ?? type?.queue ?? 'default',
      priority: req.priority ?? type?.priority ?? 0,
      maxTries: req.maxTries ?? type?.max_tries ?? SYSTEM_DEFAULTS.maxTries,
      retryDelayMs: req.retry?.delayMs ?? type?.retry_delay_ms ?? SYSTEM_DEFAULTS.delayMs,
      retryBackoff: req.retry?.backoff ?? type?.retry_backoff ?? SYSTEM_DEFAULTS.backoff,
      retryMaxDelayMs: req.retry?.maxDelayMs ?? type?.retry_max_delay_ms ?? SYSTEM_DEFAULTS.maxDelayMs,
      executionTimeoutMs: req.executionTimeoutMs ?? type?.execution_timeout_ms ?? null,
      runAfter: req.runAfter ? new Date(req.runAfter) : null,
      idempotencyKey: req.idempotencyKey ?? null,
    };
  }

  private async find(name: string): Promise<TaskTypeRow | null> {
    const cached = this.types.get(name);
    if (cached) return cached.row;
    const row = await findTaskType(this.db, name);
    this.types.set(name, { row });
    return row;
  }

  private validator(type: TaskTypeRow): ValidateFunction | null {
    if (type.args_schema === null || type.args_schema === undefined) return null;
    const key = `${type.name}\u0000${type.definition_hash}`;
    let v = this.validators.get(key);
    if (!v) {
      v = compileArgsSchema(type.args_schema, `argument schema of task type "${type.name}"`);
      this.validators.set(key, v);
    }
    return v;
  }

  private async unknown(name: string): Promise<UnknownTaskTypeError> {
    if (!this.names || Date.now() - this.names.at > this.ttlMs) this.names = { list: await taskTypeNames(this.db), at: Date.now() };
    const hint =
      this.names.list.length === 0 ? 'no worker has registered any task type yet: start a worker that loads it, or allow unregistered task types' : undefined;
    return new UnknownTaskTypeError(name, closeNames(name, this.names.list), hint);
  }
}
