export * from './catalog';
export * from './definition';
export * from './enqueue';
export * from './publish';
export { closeNames } from './suggest';
