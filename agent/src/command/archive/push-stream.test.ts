import * as grpc from '@grpc/grpc-js';
import { ArchiveStageMissingError, RepoUnavailableError, errorToDetail, protoLoad } from '@openrds/common';
import type { AgentGatewayClient, ArchivePushesMessage__Output, ArchivePushesReply } from '@openrds/common';
import { ArchivePushStream } from './push-stream';

// A real gRPC server on 127.0.0.1 with the AgentGateway service, answering ArchivePushes as each test says.
const proto = protoLoad();
const header = (walName: string) => ({ stanza: 's', walName, size: 16, sha256: 'x', compressType: 'zst', agentId: 'a', staged: 8 });

describe('ArchivePushStream', () => {
  let server: grpc.Server;
  let port: number;
  let client: AgentGatewayClient;
  /** Streams the server was asked to open, and the messages it got. */
  let opened = 0;
  let got: ArchivePushesMessage__Output[] = [];
  /** How the server answers a message: a reply, or undefined for none. */
  let answer: (m: ArchivePushesMessage__Output, call: grpc.ServerDuplexStream<ArchivePushesMessage__Output, ArchivePushesReply>) => void;

  async function serve(handlers: grpc.UntypedServiceImplementation): Promise<void> {
    server = new grpc.Server();
    server.addService(proto.AgentGateway.service, handlers);
    port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = new proto.AgentGateway(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as AgentGatewayClient;
  }

  beforeEach(async () => {
    opened = 0;
    got = [];
    await serve({
      ArchivePushes: (call: grpc.ServerDuplexStream<ArchivePushesMessage__Output, ArchivePushesReply>) => {
        opened++;
        call.on('data', (m: ArchivePushesMessage__Output) => { got.push(m); answer(m, call); });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
  });
  afterEach(() => { client.close(); server.forceShutdown(); });

  test('pushes share one stream and each gets its own answer, in whatever order they come', async () => {
    const held: (() => void)[] = [];
    answer = (m, call) => {
      const reply = () => call.write({ id: m.id, result: { duplicate: false, warning: '', repoKey: `key-${m.header!.walName}` } });
      // The first waits for the second: answers come in the other order.
      if (m.header!.walName.endsWith('1')) held.push(reply);
      else { reply(); held.shift()?.(); }
    };
    const s = new ArchivePushStream(client);
    const [a, b] = await Promise.all([
      s.push(header('000000010000000000000001'), Buffer.from('rest one'), 5000),
      s.push(header('000000010000000000000002'), Buffer.from('rest two'), 5000),
    ]);
    expect(a.repoKey).toBe('key-000000010000000000000001');
    expect(b.repoKey).toBe('key-000000010000000000000002');
    expect(got.map((m) => [m.header!.walName, m.header!.staged, Buffer.from(m.data).toString()])).toEqual([
      ['000000010000000000000001', 8, 'rest one'], ['000000010000000000000002', 8, 'rest two']]);
    // A later push goes on the same stream.
    await s.push(header('000000010000000000000003'), Buffer.alloc(0), 5000);
    expect(opened).toBe(1);
    s.close();
  });

  test('a refused push rejects with the repo-server\'s error class and hint, and the stream goes on', async () => {
    answer = (m, call) => {
      if (m.header!.walName.endsWith('1')) call.write({ id: m.id, error: errorToDetail(new ArchiveStageMissingError('no stage here', { hint: 'push it whole' })) });
      else call.write({ id: m.id, result: { duplicate: true, warning: 'already there', repoKey: 'k' } });
    };
    const s = new ArchivePushStream(client);
    const err = await s.push(header('000000010000000000000001'), Buffer.from('r'), 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveStageMissingError);
    expect((err as ArchiveStageMissingError).hint).toBe('push it whole');
    await expect(s.push(header('000000010000000000000002'), Buffer.from('r'), 5000)).resolves.toMatchObject({ duplicate: true, warning: 'already there' });
    expect(opened).toBe(1);
    expect(s.unimplemented).toBe(false);
    s.close();
  });

  test('no answer in time fails the push as an unreachable repo-server; the next push opens a new stream', async () => {
    answer = (m, call) => { if (!m.header!.walName.endsWith('1')) call.write({ id: m.id, result: { duplicate: false, warning: '', repoKey: 'k' } }); };
    const s = new ArchivePushStream(client);
    await expect(s.push(header('000000010000000000000001'), Buffer.from('r'), 300)).rejects.toBeInstanceOf(RepoUnavailableError);
    await expect(s.push(header('000000010000000000000002'), Buffer.from('r'), 5000)).resolves.toMatchObject({ repoKey: 'k' });
    expect(opened).toBe(2);
    s.close();
  });

  test('a repo-server without ArchivePushes (older) sets unimplemented, for the caller to push with a call', async () => {
    client.close();
    server.forceShutdown();
    await serve({});
    const s = new ArchivePushStream(client);
    await expect(s.push(header('000000010000000000000001'), Buffer.from('r'), 5000)).rejects.toThrow(/UNIMPLEMENTED/);
    expect(s.unimplemented).toBe(true);
  });
});
