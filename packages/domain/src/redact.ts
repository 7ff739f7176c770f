/**
 * What may be shown of input that was refused (a rejection row): its shape, and the fields that
 * name or route a task without saying what it carries. Arguments, kwargs, payloads and any value
 * not known to be safe become a description ("[redacted object, 3 keys]"): input refused at the
 * door may still hold secrets, and a rejection row is read by people who should not see them.
 */

/** Fields shown as they are when their value has the type the field is meant to have (or is null). */
const SAFE_FIELDS: Record<string, 'string' | 'number'> = {
  task: 'string',
  taskName: 'string',
  queue: 'string',
  priority: 'number',
  idempotencyKey: 'string',
  tryNumber: 'number',
  dispatchAttempt: 'number',
  maxTries: 'number',
  id: 'string',
  taskInstanceId: 'string',
  triggerId: 'string',
  jobId: 'string',
};

const MAX_KEYS = 30;
const MAX_KEY_CHARS = 60;
const MAX_SAFE_CHARS = 200;

/** A description of a value that says its kind and size, never its content. */
export function describeRedacted(value: unknown): string {
  if (value === null) return '[redacted null]';
  if (Array.isArray(value)) return `[redacted array, ${value.length} ${value.length === 1 ? 'item' : 'items'}]`;
  if (typeof value === 'string') return `[redacted string, ${value.length} chars]`;
  if (typeof value === 'object') {
    let n = 0;
    try {
      n = Object.keys(value).length;
    } catch {
      return '[redacted object]';
    }
    return `[redacted object, ${n} ${n === 1 ? 'key' : 'keys'}]`;
  }
  return `[redacted ${typeof value}]`;
}

function shownAsIs(kind: 'string' | 'number' | undefined, value: unknown): string | number | null | undefined {
  if (kind === undefined) return undefined;
  if (value === null) return null;
  if (kind === 'number' && typeof value === 'number' && Number.isFinite(value)) return value;
  if (kind === 'string' && typeof value === 'string') return value.slice(0, MAX_SAFE_CHARS);
  return undefined;
}

/**
 * The refused value with its top-level keys kept (at most 30, each cut to 60 characters), the safe
 * fields' values shown when of their type (strings cut to 200 characters), and every other value
 * described.
 */
export function redactedExcerpt(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return describeRedacted(value);
  let keys: string[];
  try {
    keys = Object.keys(value);
  } catch {
    return '[redacted object]';
  }
  const out: Record<string, unknown> = {};
  for (const key of keys.slice(0, MAX_KEYS)) {
    let v: unknown;
    try {
      v = (value as Record<string, unknown>)[key];
    } catch {
      v = undefined;
    }
    const safe = shownAsIs(Object.hasOwn(SAFE_FIELDS, key) ? SAFE_FIELDS[key] : undefined, v);
    out[key.slice(0, MAX_KEY_CHARS)] = safe !== undefined ? safe : describeRedacted(v);
  }
  if (keys.length > MAX_KEYS) out['…'] = `${keys.length - MAX_KEYS} more keys`;
  return out;
}
