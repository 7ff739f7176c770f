export * from './auth';
export type { ApiContext } from './context';
export * from './errors';
export * from './server';
