/** Turns one pino JSON line into a short readable line for the demo terminal. */
const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info ', 40: 'warn ', 50: 'error', 60: 'fatal' };
const SHOWN = ['task', 'method', 'try', 'triggerType', 'state', 'count', 'queues', 'slots', 'capacity', 'reason', 'code'];

export function formatLine(app: string, line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `${app.padEnd(9)} ${line}`;
  }
  const time = typeof rec.time === 'string' ? rec.time.slice(11, 23) : '';
  const level = LEVELS[Number(rec.level)] ?? String(rec.level);
  const ids: string[] = [];
  if (typeof rec.taskInstanceId === 'string') ids.push(`task=${rec.taskInstanceId.slice(0, 8)}`);
  if (typeof rec.triggerId === 'string') ids.push(`trigger=${rec.triggerId.slice(0, 8)}`);
  const extra = SHOWN.filter((k) => rec[k] !== undefined).map((k) => `${k}=${JSON.stringify(rec[k])}`);
  const err = rec.err && typeof rec.err === 'object' ? ` err=${JSON.stringify((rec.err as { message?: string }).message)}` : '';
  return `${time} ${app.padEnd(9)} ${level} ${typeof rec.msg === 'string' ? rec.msg : JSON.stringify(rec.msg ?? '')}  ${[...ids, ...extra].join(' ')}${err}`;
}
