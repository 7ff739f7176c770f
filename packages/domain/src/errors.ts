/**
 * Typed errors. Every error the system records carries a stable `code` and a message for a person.
 * Control flow that is not failure (a task
 * deferring) has its own class that is not a DeferrableError.
 */
export type ErrorCode =
  | 'INVALID_TRANSITION'
  | 'INVALID_INPUT'
  | 'UNKNOWN_TASK_TYPE'
  | 'TASK_NOT_FOUND'
  | 'DATABASE_UNAVAILABLE'
  | 'UNKNOWN_TRIGGER_TYPE'
  | 'UNKNOWN_CALLBACK'
  | 'TRIGGER_TIMEOUT'
  | 'TRIGGER_FAILED'
  | 'EXECUTION_TIMEOUT'
  | 'TASK_FAILED'
  | 'UNRECOVERABLE'
  | 'HEARTBEAT_LOST'
  | 'PAYLOAD_TOO_LARGE'
  | 'KWARGS_DECRYPTION'
  | 'CONFIG'
  | 'NOT_MIGRATED'
  | 'IDEMPOTENCY_CONFLICT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'NOT_FOUND'
  | 'INTERNAL';

export class DeferrableError extends Error {
  readonly code: ErrorCode;
  /** Whether the task's retry policy applies. Errors of bad input or unknown types never retry. */
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? true;
  }
}

export class InvalidTransitionError extends DeferrableError {
  constructor(
    readonly transition: string,
    readonly from: string | null,
    readonly to: string,
  ) {
    super('INVALID_TRANSITION', `transition ${transition} cannot move a task from ${from ?? '(new)'} to ${to}`, {
      retryable: false,
    });
  }
}

export interface InputIssue {
  path: string;
  message: string;
}

export class InvalidInputError extends DeferrableError {
  constructor(
    readonly where: string,
    readonly issues: InputIssue[],
  ) {
    super('INVALID_INPUT', `invalid ${where}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`, {
      retryable: false,
    });
  }
}

export class UnknownTaskTypeError extends DeferrableError {
  /**
   * `suggestions`: registered names close to this one; `hint`: what to do (the catalog says
   * when no worker has registered any task type yet).
   */
  constructor(
    readonly taskName: string,
    readonly suggestions: readonly string[] = [],
    hint?: string,
  ) {
    const didYouMean = suggestions.length ? `; did you mean ${suggestions.map((s) => `"${s}"`).join(' or ')}?` : '';
    super('UNKNOWN_TASK_TYPE', `no task type named "${taskName}" is registered${didYouMean}${hint ? ` (${hint})` : ''}`, { retryable: false });
  }
}

export class TaskNotFoundError extends DeferrableError {
  constructor(readonly taskInstanceId: string) {
    super('TASK_NOT_FOUND', `no task instance with id ${taskInstanceId}`, { retryable: false });
  }
}

/**
 * PostgreSQL could not be reached, or dropped the connection (a restart, a failover). Retryable:
 * send the same request again, with the same idempotency key, so that a write that did commit is
 * not made twice.
 */
export class DatabaseUnavailableError extends DeferrableError {
  constructor(options: { cause?: unknown } = {}) {
    // The driver's last line says what happened (Prisma puts its invocation before it).
    const reason = options.cause instanceof Error ? `: ${options.cause.message.trim().split('\n').pop() ?? ''}` : '';
    super('DATABASE_UNAVAILABLE', `the database is unavailable${reason}; retry with the same idempotency key`, { ...options, retryable: true });
  }
}

export class UnknownTriggerTypeError extends DeferrableError {
  constructor(readonly triggerType: string) {
    super('UNKNOWN_TRIGGER_TYPE', `no trigger type named "${triggerType}" is registered`, { retryable: false });
  }
}

export class UnknownCallbackError extends DeferrableError {
  constructor(
    readonly taskName: string,
    readonly method: string,
  ) {
    super('UNKNOWN_CALLBACK', `task type "${taskName}" has no callback named "${method}"`, { retryable: false });
  }
}

/** Raised inside the task when its deferral's trigger did not fire before the deferral timeout. */
export class TriggerTimeoutError extends DeferrableError {
  constructor(readonly triggerId: string | null) {
    super('TRIGGER_TIMEOUT', `the trigger${triggerId ? ` ${triggerId}` : ''} did not fire before the deferral timed out`);
  }
}

/** Raised inside the task when its trigger failed (threw, or its type is unknown to the triggerer). */
export class TriggerFailedError extends DeferrableError {
  constructor(
    readonly triggerId: string | null,
    readonly reason: string,
  ) {
    super('TRIGGER_FAILED', `the trigger${triggerId ? ` ${triggerId}` : ''} failed: ${reason}`);
  }
}

export class ExecutionTimeoutError extends DeferrableError {
  constructor(readonly timeoutMs: number) {
    super('EXECUTION_TIMEOUT', `the task ran longer than its execution timeout of ${timeoutMs} ms`);
  }
}

/** Thrown by task code to fail at once, whatever tries remain. */
export class UnrecoverableTaskError extends DeferrableError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('UNRECOVERABLE', message, { ...options, retryable: false });
  }
}

export class HeartbeatLostError extends DeferrableError {
  constructor(readonly workerId: string | null) {
    super('HEARTBEAT_LOST', `the worker${workerId ? ` ${workerId}` : ''} running this try stopped heartbeating`);
  }
}

export class PayloadTooLargeError extends DeferrableError {
  constructor(
    readonly what: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super('PAYLOAD_TOO_LARGE', `${what} is ${bytes} bytes, over the limit of ${limit}`, { retryable: false });
  }
}

export class KwargsDecryptionError extends DeferrableError {
  constructor(reason: string) {
    super('KWARGS_DECRYPTION', `trigger kwargs could not be decrypted: ${reason}`, { retryable: false });
  }
}

export class ConfigError extends DeferrableError {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super('CONFIG', `configuration ${variable}: ${message}`, { retryable: false });
  }
}

/** The database lacks migrations this build needs: a worker or triggerer refuses to start. */
export class DatabaseNotMigratedError extends DeferrableError {
  constructor(readonly missing: readonly string[]) {
    const shown = missing.slice(0, 10).join(', ') + (missing.length > 10 ? ` and ${missing.length - 10} more` : '');
    super(
      'NOT_MIGRATED',
      `the database is missing ${missing.length} migration(s) this build needs (${shown}): run \`npm run migrate\` (or \`deferrable migrate\`) with this DATABASE_URL, or start a scheduler, which migrates on start`,
      { retryable: false },
    );
  }
}

/** An idempotency key already names a task enqueued with a different request. */
export class IdempotencyConflictError extends DeferrableError {
  constructor(
    readonly idempotencyKey: string,
    readonly taskInstanceId: string,
  ) {
    super('IDEMPOTENCY_CONFLICT', `idempotency key "${idempotencyKey}" was used for a different request (task instance ${taskInstanceId})`, {
      retryable: false,
    });
  }
}

/** No credentials, or credentials that are unknown, revoked or expired. */
export class AuthenticationError extends DeferrableError {
  constructor(reason: string) {
    super('UNAUTHENTICATED', reason, { retryable: false });
  }
}

/** The credentials are valid, but their role may not do this. */
export class PermissionDeniedError extends DeferrableError {
  constructor(
    readonly role: string,
    readonly needed: string,
  ) {
    super('FORBIDDEN', `the ${role} role may not do this (needs ${needed})`, { retryable: false });
  }
}

/** A failure of task code that is not one of ours. */
export class TaskFailedError extends DeferrableError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('TASK_FAILED', message, options);
  }
}

/** Turns anything caught into a DeferrableError, keeping the original as `cause`. */
export function toDeferrableError(value: unknown): DeferrableError {
  if (value instanceof DeferrableError) return value;
  if (value instanceof Error) return new TaskFailedError(`${value.name}: ${value.message}`, { cause: value });
  return new TaskFailedError(`non-error thrown: ${safeString(value)}`, { cause: value });
}

function safeString(value: unknown): string {
  try {
    return String(value).slice(0, 200);
  } catch {
    return '(unprintable)';
  }
}

/** The error as it is stored on a task instance and shown to a person. */
export interface RecordedError {
  code: ErrorCode;
  type: string;
  message: string;
  /** Where it was thrown: the stack of the task code's own error (a TaskFailedError's cause), bounded. */
  stack?: string;
}

const MAX_MESSAGE = 2000;
export const MAX_STACK = 4000;

// Without NUL characters: the record goes into jsonb, which refuses them (22P05).
const storable = (s: string, max: number) => s.replaceAll('\u0000', '\\u0000').slice(0, max);

/**
 * Where the failure was thrown, for a person debugging their task: the stack of the error's cause
 * (the task or trigger code's own error that a TaskFailedError wraps), or of an
 * UnrecoverableTaskError that task code threw itself. Errors the system raises on its own (a lost
 * heartbeat, a timeout) have none: their stack would only show our internals.
 */
function originalStack(err: DeferrableError): string | undefined {
  const origin: unknown = err.cause instanceof Error ? err.cause : err instanceof UnrecoverableTaskError ? err : undefined;
  if (!(origin instanceof Error) || typeof origin.stack !== 'string' || origin.stack === '') return undefined;
  return storable(origin.stack, MAX_STACK);
}

export function recordError(value: unknown): RecordedError {
  const err = toDeferrableError(value);
  const stack = originalStack(err);
  return { code: err.code, type: err.name, message: storable(err.message, MAX_MESSAGE), ...(stack === undefined ? {} : { stack }) };
}
