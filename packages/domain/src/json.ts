import { z } from 'zod';
import { InvalidInputError, PayloadTooLargeError } from './errors';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** Half of a UTF-16 surrogate pair without its other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * A string PostgreSQL can store in text and jsonb: no NUL character (\u0000), which both refuse,
 * and no lone UTF-16 surrogate (JSON keeps it as an escape such as \ud800, which jsonb refuses).
 */
export const StorableString = z
  .string()
  .refine((s) => !s.includes('\u0000'), 'contains a NUL character (\\u0000), which PostgreSQL cannot store')
  .refine((s) => !LONE_SURROGATE.test(s), 'contains a lone UTF-16 surrogate, which PostgreSQL cannot store');

export const JsonSchema: z.ZodType<Json> = z.lazy(() =>
  z.union([StorableString, z.number().finite(), z.boolean(), z.null(), z.array(JsonSchema), z.record(StorableString, JsonSchema)]),
);
export const JsonObjectSchema = z.record(z.string(), JsonSchema);
export type JsonObject = z.infer<typeof JsonObjectSchema>;

/** Parses `value` with `schema`, or throws an InvalidInputError that names `where` and each issue. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new InvalidInputError(
    where,
    result.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
  );
}

/** Byte size of a value once serialised as JSON; throws when over `limit`. */
export function assertJsonSize(value: unknown, limit: number, what: string): number {
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? 'null', 'utf8');
  if (bytes > limit) throw new PayloadTooLargeError(what, bytes, limit);
  return bytes;
}
