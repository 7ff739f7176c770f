import { redisOptions } from './redis';

describe('redisOptions', () => {
  test('redis:// gives host, port, db and decoded credentials, without TLS', () => {
    expect(redisOptions('redis://us%40er:p%3Ass@10.0.0.5:6380/3')).toEqual({ host: '10.0.0.5', port: 6380, db: 3, username: 'us@er', password: 'p:ss' });
    expect(redisOptions('redis://127.0.0.1')).toEqual({ host: '127.0.0.1', port: 6379, db: 0 });
  });

  test('rediss:// turns TLS on, checking the certificate against the host name', () => {
    // Before, the scheme was ignored and a rediss:// deployment was spoken to in plain text.
    expect(redisOptions('rediss://:secret@cache.example.com:6380')).toEqual({
      host: 'cache.example.com',
      port: 6380,
      db: 0,
      password: 'secret',
      tls: { servername: 'cache.example.com' },
    });
  });

  test('another scheme is refused', () => {
    expect(() => redisOptions('http://127.0.0.1:6379')).toThrow(/redis:\/\/ or rediss:\/\//);
  });
});
