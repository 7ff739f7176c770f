export * from './catalog';
export * from './redis';
export * from './producer';
export * from './hints';
