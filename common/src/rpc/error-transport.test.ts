import * as grpc from '@grpc/grpc-js';
import { ArchiveDuplicateError, OpenrdsError, RepoUnavailableError } from '../error';
import { protoLoad } from './proto';
import { errorFromGrpc, errorToGrpc } from './error-transport';

describe('errors across gRPC', () => {
  let server: grpc.Server;
  let port: number;
  let toThrow: unknown;

  beforeAll(async () => {
    const v1 = protoLoad();
    server = new grpc.Server();
    server.addService(v1.Admin.service, {
      Ping: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(errorToGrpc(toThrow) as grpc.ServiceError),
      Run: () => undefined,
    });
    port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  });
  afterAll(() => server.forceShutdown());

  function ping(p = port): Promise<unknown> {
    const v1 = protoLoad();
    const client = new v1.Admin(`127.0.0.1:${p}`, grpc.credentials.createInsecure());
    return new Promise((resolve, reject) => client.ping({}, { deadline: Date.now() + 3000 }, (err, res) => {
      client.close();
      if (err) reject(errorFromGrpc(err, `127.0.0.1:${p}`)); else resolve(res);
    }));
  }

  it('rebuilds the same class with its code, message and hint on the client', async () => {
    toThrow = new ArchiveDuplicateError("WAL file '000000010000000000000001' already exists", { hint: 'is another cluster archiving here? 100% sure' });
    const err = await ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveDuplicateError);
    expect((err as OpenrdsError).code).toBe(45);
    expect((err as OpenrdsError).message).toBe("WAL file '000000010000000000000001' already exists");
    expect((err as OpenrdsError).hint).toBe('is another cluster archiving here? 100% sure');
  });

  it('turns a plain error into an internal error rather than losing it', async () => {
    toThrow = new Error('kaboom');
    const err = await ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenrdsError);
    expect((err as OpenrdsError).message).toBe('kaboom');
  });

  it('reports an unreachable server as RepoUnavailableError naming the address', async () => {
    const err = await ping(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RepoUnavailableError);
    expect((err as OpenrdsError).message).toContain('unable to reach the repo-server at 127.0.0.1:1');
    expect((err as OpenrdsError).hint).toContain('is openrds-repo-server running');
  });
});
