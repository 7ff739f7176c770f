import path from 'node:path';
import type { TaskType, TriggerType } from '@deferrable/domain';

export interface RegistrationModule {
  tasks?: TaskType[];
  triggers?: TriggerType<object>[];
}

/**
 * Loads the modules named in DEFERRABLE_MODULES (paths or package names), each exporting `tasks`
 * and/or `triggers`. This is process configuration, not data: the database never names code.
 */
export function loadModules(specs: readonly string[], cwd = process.cwd()): Required<RegistrationModule> {
  const out: Required<RegistrationModule> = { tasks: [], triggers: [] };
  for (const spec of specs) {
    const resolved = spec.startsWith('.') || spec.startsWith('/') ? path.resolve(cwd, spec) : spec;
    const mod = require(resolved) as RegistrationModule;
    if (!Array.isArray(mod.tasks) && !Array.isArray(mod.triggers)) {
      throw new Error(`module ${spec} exports neither "tasks" nor "triggers"`);
    }
    out.tasks.push(...(mod.tasks ?? []));
    out.triggers.push(...(mod.triggers ?? []));
  }
  return out;
}
