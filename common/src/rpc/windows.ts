import type * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';
import { log } from '../log';

/**
 * HTTP/2 receive windows of the repo-server. grpc-js fixes the server's windows at HTTP/2's
 * default 64 KiB (grpc-node PR #3058 is open), which caps one upload at ~255 MB/s on loopback
 * and at window / RTT across hosts (~65 MB/s at 1 ms). grpc-js has no option for it, so this
 * reaches into two of its internals, checked at run time: the settings it passes to
 * http2.createServer (the per-stream initial window, sent in the SETTINGS frame) and the
 * http2 servers it binds (the connection window, raised per session). When an internal is not
 * there (another grpc-js version) it warns and the server works with the default windows.
 */
export const SERVER_WINDOW_BYTES = 16 * 1024 * 1024;

interface ServerInternals {
  commonServerOptions?: http2.ServerOptions;
  http2Servers?: Map<http2.Http2Server, unknown>;
}

/** Before bind: the per-stream window every session of the server announces. */
export function grpcServerStreamWindow(server: grpc.Server, bytes = SERVER_WINDOW_BYTES): boolean {
  const internals = server as unknown as ServerInternals;
  if (!internals.commonServerOptions || typeof internals.commonServerOptions !== 'object') {
    log.warn('unable to raise the HTTP/2 stream window of the gRPC server (grpc-js internals changed): uploads are limited to the 64 KiB default window');
    return false;
  }
  internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, initialWindowSize: bytes };
  return true;
}

/** After bind: every new session gets a connection window as large as the stream window. */
export function grpcServerSessionWindow(server: grpc.Server, bytes = SERVER_WINDOW_BYTES): boolean {
  const servers = (server as unknown as ServerInternals).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    log.warn('unable to raise the HTTP/2 connection window of the gRPC server (grpc-js internals changed): uploads are limited to the 64 KiB default window');
    return false;
  }
  for (const h2 of servers.keys()) {
    h2.on('session', (session: http2.ServerHttp2Session) => {
      const raise = (): void => { try { session.setLocalWindowSize(bytes); } catch { /* closed already */ } };
      // setLocalWindowSize needs the session's socket to be set up.
      if (session.socket) raise(); else session.once('connect', raise);
    });
  }
  return true;
}
