import { ConfigError } from '@deferrable/domain';
import {
  DEFAULT_HEALTH_PORTS,
  DEV_KWARGS_KEY,
  healthSettings,
  loadConfig,
  shownValue,
  SchedulerConfigSchema,
  TriggererConfigSchema,
  WorkerConfigSchema,
} from './index';

describe('configuration', () => {
  test('defaults point at localhost', () => {
    const c = loadConfig(WorkerConfigSchema, {});
    expect(c.DATABASE_URL).toBe('postgresql://postgres@127.0.0.1:5432/deferrable');
    expect(c.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(c.DEFERRABLE_WORKER_SLOTS).toBe(4);
    expect(c.DEFERRABLE_KWARGS_KEYS).toEqual([DEV_KWARGS_KEY]);
    expect(Buffer.from(DEV_KWARGS_KEY, 'base64')).toHaveLength(32);
  });

  test('a bad value fails with the variable named', () => {
    expect(() => loadConfig(WorkerConfigSchema, { DEFERRABLE_WORKER_SLOTS: 'many' })).toThrow(ConfigError);
    expect(() => loadConfig(WorkerConfigSchema, { DEFERRABLE_WORKER_SLOTS: 'many' })).toThrow(/DEFERRABLE_WORKER_SLOTS.*many/);
    expect(() => loadConfig(SchedulerConfigSchema, { DATABASE_URL: 'nope' })).toThrow(/DATABASE_URL/);
    expect(() => loadConfig(TriggererConfigSchema, { DEFERRABLE_TRIGGERER_CAPACITY: '0' })).toThrow(/DEFERRABLE_TRIGGERER_CAPACITY/);
  });

  test('lists are comma separated', () => {
    const c = loadConfig(TriggererConfigSchema, { DEFERRABLE_TRIGGERER_QUEUES: 'default, heavy ,', DEFERRABLE_MODULES: './a.js,pkg' });
    expect(c.DEFERRABLE_TRIGGERER_QUEUES).toEqual(['default', 'heavy']);
    expect(c.DEFERRABLE_MODULES).toEqual(['./a.js', 'pkg']);
  });

  test('an empty variable takes the default, as if unset', () => {
    const c = loadConfig(WorkerConfigSchema, { DEFERRABLE_SHUTDOWN_GRACE_MS: '', DEFERRABLE_HEALTH_PORT: ' ', DEFERRABLE_WORKER_SLOTS: '' });
    expect(c.DEFERRABLE_SHUTDOWN_GRACE_MS).toBe(10000);
    expect(c.DEFERRABLE_HEALTH_PORT).toBeUndefined();
    expect(c.DEFERRABLE_WORKER_SLOTS).toBe(4);
    expect(loadConfig(WorkerConfigSchema, { DEFERRABLE_HEALTH_PORT: '0' }).DEFERRABLE_HEALTH_PORT).toBe(0);
  });

  test('health: the default port may fall back to a free one; a port set explicitly may not; loopback unless told', () => {
    expect(healthSettings(loadConfig(WorkerConfigSchema, {}), DEFAULT_HEALTH_PORTS.worker)).toEqual({ port: 8792, portFixed: false, host: '127.0.0.1' });
    expect(healthSettings(loadConfig(TriggererConfigSchema, { DEFERRABLE_HEALTH_PORT: '' }), DEFAULT_HEALTH_PORTS.triggerer)).toMatchObject({
      port: 8791,
      portFixed: false,
    });
    expect(healthSettings(loadConfig(SchedulerConfigSchema, { DEFERRABLE_HEALTH_PORT: '8790' }), DEFAULT_HEALTH_PORTS.scheduler)).toMatchObject({
      port: 8790,
      portFixed: true,
    });
    expect(healthSettings(loadConfig(WorkerConfigSchema, { DEFERRABLE_HEALTH_PORT: '-1', DEFERRABLE_HEALTH_HOST: '0.0.0.0' }), 8792)).toEqual({
      port: -1,
      portFixed: true,
      host: '0.0.0.0',
    });
    expect(() => loadConfig(WorkerConfigSchema, { DEFERRABLE_HEALTH_PORT: '70000' })).toThrow(/DEFERRABLE_HEALTH_PORT/);
  });

  test('a triggerer health threshold under 3 heartbeats is refused, naming the variable', () => {
    expect(() => loadConfig(TriggererConfigSchema, { DEFERRABLE_HEARTBEAT_MS: '2000', DEFERRABLE_HEALTH_THRESHOLD_MS: '500' })).toThrow(
      /DEFERRABLE_HEALTH_THRESHOLD_MS.*3 times DEFERRABLE_HEARTBEAT_MS.*500/,
    );
    expect(loadConfig(TriggererConfigSchema, { DEFERRABLE_HEARTBEAT_MS: '300', DEFERRABLE_HEALTH_THRESHOLD_MS: '900' }).DEFERRABLE_HEALTH_THRESHOLD_MS).toBe(
      900,
    );
  });

  test('REDIS_URL must be redis:// or rediss://', () => {
    expect(() => loadConfig(WorkerConfigSchema, { REDIS_URL: 'http://127.0.0.1:6379' })).toThrow(/REDIS_URL/);
    expect(loadConfig(WorkerConfigSchema, { REDIS_URL: 'rediss://cache.example:6380/2' }).REDIS_URL).toBe('rediss://cache.example:6380/2');
  });

  test('NODE_ENV is unset unless given', () => {
    expect(loadConfig(WorkerConfigSchema, {}).NODE_ENV).toBeUndefined();
    expect(loadConfig(WorkerConfigSchema, { NODE_ENV: 'test' }).NODE_ENV).toBe('test');
  });

  test('the development key is refused in production', () => {
    expect(() => loadConfig(WorkerConfigSchema, { NODE_ENV: 'production' })).toThrow(/DEFERRABLE_KWARGS_KEYS/);
    const key = Buffer.alloc(32, 7).toString('base64');
    expect(loadConfig(WorkerConfigSchema, { NODE_ENV: 'production', DEFERRABLE_KWARGS_KEYS: key }).DEFERRABLE_KWARGS_KEYS).toEqual([key]);
  });

  describe('a configuration error never prints a secret', () => {
    const messageOf = (f: () => unknown): string => {
      try {
        f();
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('expected a ConfigError');
    };

    test('a URL is shown with its password masked, or not at all when unparsable', () => {
      const redis = messageOf(() => loadConfig(WorkerConfigSchema, { REDIS_URL: 'http://app:hunter2@cache.example:6379/0' }));
      expect(redis).toContain('REDIS_URL');
      expect(redis).toContain('app:***@cache.example');
      expect(redis).not.toContain('hunter2');
      const db = messageOf(() => loadConfig(SchedulerConfigSchema, { DATABASE_URL: 'postgresql://app:hunter2@db.example:5432:x/deferrable' }));
      expect(db).toContain('DATABASE_URL');
      expect(db).not.toContain('hunter2');
      const query = messageOf(() => loadConfig(WorkerConfigSchema, { REDIS_URL: 'http://cache.example:6379/0?password=hunter2' }));
      expect(query).not.toContain('hunter2');
    });

    test('a variable that names a key, secret, token or password is never echoed', () => {
      const keys = messageOf(() => loadConfig(WorkerConfigSchema, { DEFERRABLE_KWARGS_KEYS: ' , ' }));
      expect(keys).toContain('DEFERRABLE_KWARGS_KEYS');
      expect(keys).not.toContain('(got');
      for (const name of ['DEFERRABLE_API_TOKEN', 'SESSION_SECRET', 'PGPASSWORD', 'DEFERRABLE_KWARGS_KEYS']) expect(shownValue(name, 'hunter2')).toBeNull();
    });

    test('any value that is a URL is masked, whatever its variable; other values are shown, bounded', () => {
      expect(shownValue('DEFERRABLE_MODULES', 'https://u:hunter2@x.example/m.js')).toBe('https://u:***@x.example/m.js');
      expect(shownValue('DEFERRABLE_WORKER_SLOTS', 'many')).toBe('many');
      expect(shownValue('DEFERRABLE_WORKER_SLOTS', 'x'.repeat(500))).toHaveLength(80);
      expect(messageOf(() => loadConfig(WorkerConfigSchema, { DEFERRABLE_WORKER_SLOTS: 'many' }))).toContain('(got "many")');
    });
  });
});
