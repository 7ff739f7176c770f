import { dateTimeTriggerType } from './temporal';
import { fileTriggerType } from './file';
import { TriggerRegistry } from './registry';

export * from './registry';
export * from './temporal';
export * from './file';
export * from './clock';

export const BUILTIN_TRIGGER_TYPES = [dateTimeTriggerType, fileTriggerType];

export function builtinTriggerRegistry(): TriggerRegistry {
  return new TriggerRegistry(BUILTIN_TRIGGER_TYPES);
}
