export * from './storage';
export * from './posix';
