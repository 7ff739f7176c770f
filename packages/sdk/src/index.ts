export * from './enqueue';
export * from './client';
