import { DeferrableError, type ErrorCode, type InputIssue, InvalidInputError } from '@deferrable/domain';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/** The one error shape of every response that is not a success. */
export interface ApiErrorBody {
  error: {
    /** Stable: the domain's error codes. */
    code: ErrorCode;
    message: string;
    /** Whether sending the same request again (with the same idempotency key) may succeed. */
    retryable: boolean;
    /** For INVALID_INPUT: what failed, where. */
    paths?: InputIssue[];
  };
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_INPUT: 400,
  UNKNOWN_TASK_TYPE: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  TASK_NOT_FOUND: 404,
  NOT_FOUND: 404,
  INVALID_TRANSITION: 409,
  IDEMPOTENCY_CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  DATABASE_UNAVAILABLE: 503,
};

/** Fastify's own refusals (before a handler runs), by their status. */
const FRAMEWORK: Record<number, ErrorCode> = { 400: 'INVALID_INPUT', 404: 'NOT_FOUND', 413: 'PAYLOAD_TOO_LARGE', 415: 'INVALID_INPUT', 429: 'RATE_LIMITED' };

/**
 * The status and body for anything a route threw. Errors we do not know become a 500 that says
 * nothing of our internals (the caller logs them with their stack).
 */
export function toApiError(err: unknown): { status: number; body: ApiErrorBody; internal: boolean } {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as { validationContext?: string }).validationContext ?? 'request';
    const issues = err.validation.map((v) => ({ path: `${where}${v.instancePath.replaceAll('/', '.')}`, message: v.message ?? 'invalid' }));
    return toApiError(new InvalidInputError(where, issues));
  }
  if (err instanceof DeferrableError) {
    const paths = err instanceof InvalidInputError ? err.issues : undefined;
    const body: ApiErrorBody = { error: { code: err.code, message: err.message, retryable: err.retryable, ...(paths ? { paths } : {}) } };
    return { status: STATUS[err.code] ?? 500, body, internal: false };
  }
  const status = (err as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && FRAMEWORK[status]) {
    const m = (err as { message?: unknown }).message;
    const message = typeof m === 'string' && m ? m : 'request refused';
    return { status, body: { error: { code: FRAMEWORK[status], message, retryable: status === 429 } }, internal: false };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error; see the API log', retryable: true } }, internal: true };
}
