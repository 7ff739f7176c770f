import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Paths never logged in plain text: task arguments, trigger kwargs (plain or encrypted), events,
 * results, and anything that looks like a secret.
 */
const REDACT_PATHS = [
  'args',
  '*.args',
  'kwargs',
  '*.kwargs',
  'nextKwargs',
  '*.nextKwargs',
  'next_kwargs',
  '*.next_kwargs',
  'encryptedKwargs',
  'payload',
  '*.payload',
  'event',
  '*.event',
  'result',
  '*.result',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'keys',
  '*.keys',
  'databaseUrl',
  'redisUrl',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination,
  );
}

/** A logger that drops everything (for libraries and tests that do not care). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

const SECRET_PARAM = /pass|secret|token|key/i;

/** Hides the password in a connection URL (and any query parameter that names a secret), for a log line or an error. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const name of Array.from(u.searchParams.keys())) if (SECRET_PARAM.test(name)) u.searchParams.set(name, '***');
    return u.toString();
  } catch {
    return '(unparsable url)';
  }
}
