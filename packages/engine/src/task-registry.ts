import { UnknownTaskTypeError, type TaskType } from '@deferrable/domain';

/** Task types by name, in the worker. */
export class TaskRegistry {
  private readonly types = new Map<string, TaskType>();

  constructor(types: readonly TaskType[] = []) {
    for (const t of types) this.register(t);
  }

  register(type: TaskType): this {
    if (this.types.has(type.name)) throw new Error(`task type "${type.name}" is registered twice`);
    this.types.set(type.name, type);
    return this;
  }

  get(name: string): TaskType {
    const t = this.types.get(name);
    if (!t) throw new UnknownTaskTypeError(name);
    return t;
  }

  has(name: string): boolean {
    return this.types.has(name);
  }

  all(): TaskType[] {
    return [...this.types.values()];
  }

  names(): string[] {
    return [...this.types.keys()];
  }
}
