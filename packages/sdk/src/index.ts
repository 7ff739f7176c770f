export * from './client';
export * from './http-client';
export {
  DatabaseUnavailableError,
  IdempotencyConflictError,
  InvalidInputError,
  InvalidTransitionError,
  PayloadTooLargeError,
  TaskNotFoundError,
  UnknownTaskTypeError,
} from '@deferrable/domain';
