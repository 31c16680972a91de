import * as grpc from '@grpc/grpc-js';
import {
  ArchiveDuplicateError, FileMissingError, InternalError, OpenrdsError, OptionInvalidError, RepoUnavailableError,
  StanzaMissingError,
} from '../error';
import { logRedact } from '../log';
import { RemoteError, errorFromGrpc, errorGrpcStatus, errorToGrpc } from './error-transport';

// A tiny JSON service, so the test depends on nothing but grpc-js.
const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString()),
};
const service: grpc.ServiceDefinition = {
  fail: {
    path: '/test.Errors/Fail', requestStream: false, responseStream: false,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  },
  failStream: {
    path: '/test.Errors/FailStream', requestStream: false, responseStream: true,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  },
};
const ErrorsClient = grpc.makeGenericClientConstructor(service, 'Errors');
type Client = InstanceType<typeof ErrorsClient> & {
  fail(req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: unknown) => void): void;
  failStream(req: unknown): grpc.ClientReadableStream<unknown>;
};

describe('errors across gRPC', () => {
  let server: grpc.Server;
  let port: number;
  /** What the server answers with: an error to throw, 'hang' to never answer. */
  let answer: unknown;

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(service, {
      fail: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        if (answer === 'hang') return;
        cb(answer instanceof grpc.Metadata ? { code: grpc.status.UNKNOWN, details: 'from the future', metadata: answer } : errorToGrpc(answer));
      },
      failStream: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        call.write({ progress: 1 });
        call.emit('error', errorToGrpc(answer));
      },
    });
    port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  });
  afterAll(() => server.forceShutdown());

  function client(p = port): Client {
    return new ErrorsClient(`127.0.0.1:${p}`, grpc.credentials.createInsecure()) as Client;
  }

  /** Calls Fail and returns the raw gRPC error the client got. */
  function fail(p = port, deadlineMs = 3000): Promise<grpc.ServiceError> {
    const c = client(p);
    return new Promise((resolve, reject) => c.fail({}, { deadline: Date.now() + deadlineMs }, (err) => {
      c.close();
      if (err) resolve(err); else reject(new Error('the call succeeded'));
    }));
  }

  it('rebuilds the same class with its code, message and hint, non-ASCII and multi-line included', async () => {
    answer = new ArchiveDuplicateError("WAL file '000000010000000000000001' in 'répertoire'\nalready exists",
      { hint: 'is another cluster archiving here? 100% sûr\nsecond line' });
    const raw = await fail();
    expect(raw.code).toBe(grpc.status.ALREADY_EXISTS);
    const err = errorFromGrpc(raw);
    expect(err).toBeInstanceOf(ArchiveDuplicateError);
    expect(err.code).toBe(45);
    expect(err.message).toBe("WAL file '000000010000000000000001' in 'répertoire'\nalready exists");
    expect(err.hint).toBe('is another cluster archiving here? 100% sûr\nsecond line');
  });

  it('rebuilds an error emitted on a server stream after some messages', async () => {
    answer = new StanzaMissingError("stanza 'main' does not exist", { hint: 'run stanza-create' });
    const stream = client().failStream({});
    const messages: unknown[] = [];
    const err = await new Promise<OpenrdsError>((resolve) => {
      stream.on('data', (m) => messages.push(m));
      stream.on('error', (e: grpc.ServiceError) => {
        expect(e.code).toBe(grpc.status.NOT_FOUND);
        resolve(errorFromGrpc(e));
      });
    });
    expect(messages).toEqual([{ progress: 1 }]);
    expect([err.constructor, err.code, err.message, err.hint]).toEqual([StanzaMissingError, 100, "stanza 'main' does not exist", 'run stanza-create']);
  });

  it('turns a plain error into an InternalError rather than losing it', async () => {
    answer = new Error('kaboom');
    const raw = await fail();
    expect(raw.code).toBe(grpc.status.INTERNAL);
    const err = errorFromGrpc(raw);
    expect([err.constructor, err.code, err.message, err.hint]).toEqual([InternalError, 122, 'kaboom', undefined]);
  });

  it('keeps the name and exit code of a class this side does not know', async () => {
    const md = new grpc.Metadata();
    md.set('openrds-error-name', 'FutureError');
    md.set('openrds-error-code', '177');
    md.set('openrds-error-hint', encodeURIComponent('upgrade the admin'));
    answer = md;
    const err = errorFromGrpc(await fail());
    expect(err).toBeInstanceOf(RemoteError);
    expect([err.name, err.code, err.message, err.hint]).toEqual(['FutureError', 177, 'from the future', 'upgrade the admin']);
  });

  it('never sends a registered secret', async () => {
    logRedact('Pa55-w0rd');
    answer = new OptionInvalidError("'Pa55-w0rd' is not a valid key", { hint: 'not Pa55-w0rd' });
    const raw = await fail();
    expect(raw.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(JSON.stringify([raw.details, raw.metadata.getMap()])).not.toContain('Pa55-w0rd');
    const err = errorFromGrpc(raw);
    expect([err.message, err.hint]).toEqual(["'<redacted>' is not a valid key", 'not <redacted>']);
  });

  it('reports an unreachable server as RepoUnavailableError naming the address', async () => {
    const err = errorFromGrpc(await fail(1), '127.0.0.1:1');
    expect(err).toBeInstanceOf(RepoUnavailableError);
    expect(err.message).toContain('unable to reach the repo-server at 127.0.0.1:1');
    expect(err.hint).toContain('is openrds-repo-server running');
  });

  it('reports a server that does not answer in time as RepoUnavailableError', async () => {
    answer = 'hang';
    const raw = await fail(port, 200);
    expect(raw.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const err = errorFromGrpc(raw, `127.0.0.1:${port}`);
    expect(err).toBeInstanceOf(RepoUnavailableError);
    expect(err.message).toContain(`the repo-server at 127.0.0.1:${port} did not answer in time`);
  });
});

describe('errorGrpcStatus and errorFromGrpc without a call', () => {
  it('maps our errors to a fitting status, UNKNOWN otherwise', () => {
    expect(errorGrpcStatus(new FileMissingError('x'))).toBe(grpc.status.NOT_FOUND);
    expect(errorGrpcStatus(new OptionInvalidError('x'))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(errorGrpcStatus(new OpenrdsError('x'))).toBe(grpc.status.UNKNOWN);
  });

  it('passes our errors through and wraps anything else', () => {
    const ours = new FileMissingError('x');
    expect(errorFromGrpc(ours)).toBe(ours);
    const wrapped = errorFromGrpc(Object.assign(new Error('disk full'), { code: 'ENOSPC' }));
    expect([wrapped.constructor, wrapped.message]).toEqual([InternalError, 'disk full']);
    const cancelled = errorFromGrpc(Object.assign(new Error('x'), { code: grpc.status.CANCELLED, details: 'Cancelled on client' }));
    expect([cancelled.constructor, cancelled.message]).toEqual([OpenrdsError, 'CANCELLED: Cancelled on client']);
  });
});
