export * from './info-file';
export * from './manifest';
export * from './backup-label';
