export * from './option-table';
export * from './config';
export * from './help';
