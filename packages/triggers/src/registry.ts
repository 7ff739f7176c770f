import { parseInput, UnknownTriggerTypeError, type SerializedTrigger, type Trigger, type TriggerType } from '@deferrable/domain';

/** Trigger types by name. The database stores the name and kwargs; this maps them back to code. */
export class TriggerRegistry {
  private readonly types = new Map<string, TriggerType<object>>();

  constructor(types: readonly TriggerType<object>[] = []) {
    for (const t of types) this.register(t);
  }

  register(type: TriggerType<object>): this {
    if (this.types.has(type.type)) throw new Error(`trigger type "${type.type}" is registered twice`);
    this.types.set(type.type, type);
    return this;
  }

  has(name: string): boolean {
    return this.types.has(name);
  }

  names(): string[] {
    return [...this.types.keys()];
  }

  /** Validates the kwargs with the type's schema (a boundary: they came from the database). */
  create(serialized: SerializedTrigger): Trigger {
    const type = this.types.get(serialized.type);
    if (!type) throw new UnknownTriggerTypeError(serialized.type);
    const kwargs = parseInput(type.kwargs, serialized.kwargs, `kwargs of trigger type "${serialized.type}"`);
    return type.create(kwargs);
  }

  /** Checks at deferral time that a trigger's type is known and its kwargs are valid. */
  validate(serialized: SerializedTrigger): void {
    const type = this.types.get(serialized.type);
    if (!type) throw new UnknownTriggerTypeError(serialized.type);
    parseInput(type.kwargs, serialized.kwargs, `kwargs of trigger type "${serialized.type}"`);
  }
}
