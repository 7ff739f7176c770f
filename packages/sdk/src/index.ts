export * from './client';
export {
  DatabaseUnavailableError,
  InvalidInputError,
  InvalidTransitionError,
  PayloadTooLargeError,
  TaskNotFoundError,
  UnknownTaskTypeError,
} from '@deferrable/domain';
