import type { Db, KwargsCipher } from '@deferrable/db';
import type { Clock } from '@deferrable/domain';
import type { Logger } from '@deferrable/logging';

/** What every lifecycle system is built from: real services in production and in tests, a fake clock where a test needs one. */
export interface Resources {
  db: Db;
  databaseUrl: string;
  redisUrl: string;
  /** Redis key prefix (with a hash tag) shared by every queue of a deployment. */
  prefix: string;
  clock: Clock;
  logger: Logger;
  cipher: KwargsCipher;
}
