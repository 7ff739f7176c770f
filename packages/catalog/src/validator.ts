import { InvalidInputError, type InputIssue } from '@deferrable/domain';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

// One Ajv instance: its compiled functions are kept by the callers' bounded caches, not by Ajv
// (addSchema is never used, so Ajv holds no reference to them). Draft 2020-12, as z.toJSONSchema
// writes. Unknown formats (zod knows more than ajv-formats) are not checked here: the worker's
// zod parse still checks them before each run.
const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false, validateSchema: true });
addFormats(ajv);

/** Compiles an argument schema, or throws an InvalidInputError saying why it cannot be used. */
export function compileArgsSchema(schema: unknown, where: string): ValidateFunction {
  try {
    return ajv.compile(schema as object);
  } catch (err) {
    throw new InvalidInputError(where, [{ path: 'args', message: `argument schema cannot be compiled: ${(err as Error).message}` }]);
  }
}

/** Ajv's errors as our issues: a dotted path to the failing value and what is wrong with it. */
export function argsIssues(errors: readonly ErrorObject[] | null | undefined): InputIssue[] {
  return (errors ?? []).slice(0, 20).map((e) => {
    const path = e.instancePath
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const params = e.params as { missingProperty?: string; additionalProperty?: string; allowedValues?: unknown[] };
    if (e.keyword === 'required' && params.missingProperty) path.push(params.missingProperty);
    if (e.keyword === 'additionalProperties' && params.additionalProperty) path.push(params.additionalProperty);
    let message = e.message ?? e.keyword;
    if (e.keyword === 'enum' && params.allowedValues) message += `: ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    return { path: ['args', ...path].join('.'), message };
  });
}
