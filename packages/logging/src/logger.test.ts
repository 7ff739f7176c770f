import { Writable } from 'node:stream';
import { createLogger, safeUrl } from './index';

function capture(): { lines: () => Record<string, unknown>[]; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('logger', () => {
  test('redacts arguments, kwargs, events, results and secrets but keeps the ids', () => {
    const out = capture();
    const log = createLogger({ name: 'test', destination: out.stream });
    log.child({ taskInstanceId: 't-1', triggerId: 'g-1', try: 2 }).info(
      {
        args: { card: '4111' },
        kwargs: { apiKey: 'k' },
        trigger: { kwargs: { token: 'x' } },
        event: { payload: 1 },
        result: { secretValue: 's' },
        password: 'hunter2',
        nested: { secret: 'abc', token: 'def' },
      },
      'hello',
    );
    const [line] = out.lines();
    const text = JSON.stringify(line);
    for (const leaked of ['4111', '"k"', '"x"', 'hunter2', 'abc', 'def', 'secretValue']) expect(text).not.toContain(leaked);
    expect(line).toMatchObject({ taskInstanceId: 't-1', triggerId: 'g-1', try: 2, msg: 'hello', name: 'test' });
    expect(line!.args).toBe('[redacted]');
  });

  test('safeUrl hides the password of a connection URL', () => {
    expect(safeUrl('postgresql://user:pw@host:5432/db')).toBe('postgresql://user:***@host:5432/db');
    expect(safeUrl('not a url')).toBe('(unparsable url)');
  });

  test('safeUrl hides query parameters that name a secret', () => {
    expect(safeUrl('postgresql://host/db?sslmode=require&password=hunter2&sslkey=/k')).toBe('postgresql://host/db?sslmode=require&password=***&sslkey=***');
  });
});
