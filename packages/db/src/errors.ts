/**
 * Whether a failed statement failed because the database could not be reached or dropped the
 * connection (a restart, a failover, an outage), rather than because of what it asked. Such a
 * statement may be sent again as it is; any other error would only repeat.
 *
 * A statement cut off after its COMMIT reached the server may have committed: callers retry only
 * compare-and-set writes, which then simply match nothing.
 */
export function isTransientDbError(err: unknown): boolean {
  // Duck-typed: errors raised by Node's own sockets are not always of this realm's Error.
  if (typeof err !== 'object' || err === null || typeof (err as { message?: unknown }).message !== 'string') return false;
  const { code, message, errors } = err as { code?: unknown; message: string; errors?: unknown };
  // Connecting to a name with several addresses fails with one error per address.
  if (Array.isArray(errors) && errors.some(isTransientDbError)) return true;
  // Prisma reports an unreachable server with its own codes (the driver's error is its cause).
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined && cause !== err && isTransientDbError(cause)) return true;
  if (typeof code === 'string') {
    if (NODE_CODES.has(code) || PRISMA_CODES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code)) {
      // SQLSTATE class 08: connection exception (not 08P01, a protocol violation: a bug that
      // would only repeat).
      if (code.startsWith('08')) return code !== '08P01';
      if (SQLSTATES.has(code)) return true;
      // A database that refuses connections for now (ALLOW_CONNECTIONS false, as during some
      // maintenance) reports the generic 55000: recognised by its message only.
      return code === '55000' && /not currently accepting connections/.test(message);
    }
    return false;
  }
  // node-postgres reports a connection lost mid-statement, or a connect timeout, without a code.
  return /Connection terminated|connection error|timeout exceeded when trying to connect|Connection ended unexpectedly/i.test(message);
}

const NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

// Can't reach the server, timed out connecting, operation timed out, server closed the connection.
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017']);

const SQLSTATES = new Set([
  '57P01', // admin_shutdown: the server is shutting down, or the backend was terminated
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the server is starting up
  '53300', // too_many_connections
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);
