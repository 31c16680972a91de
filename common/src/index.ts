// The public face of @openrds/common: everything agent and repo-server share.
export * from './error';
export * from './version';
export * from './log';
export * from './config';
export * from './postgres';
export * from './io';
export * from './storage';
export * from './format';
export * from './rpc/proto';
export * from './rpc/stream';
export * from './rpc/error-transport';
export type * from './proto-gen';
export * from './rpc/call';
export * from './async/limit';
export * from './rpc/windows';
export * from './rpc/tls';
export * from './rpc/ssh-tunnel';
export * from './process/memory';
