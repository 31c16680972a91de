import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { freePort, runOk, tmpDir } from './processes';

const SCRIPTS = path.resolve(__dirname, '..', '..', '..', 'scripts', 'objstore');

/** A running radosgw (single-node Ceph on 127.0.0.1) with a user testkey/testsecret and a bucket. */
export interface Radosgw {
  endpoint: string;
  bucket: string;
  key: string;
  keySecret: string;
  dir: string;
  stop(): Promise<void>;
  /** Stops / starts the S3 gateway only: requests fail meanwhile, the objects stay. */
  gatewayStop(): Promise<void>;
  gatewayStart(): Promise<void>;
}

/** Starts radosgw (installed by scripts/setup-test.sh) and creates `bucket`; ~13 s. */
export async function radosgwStart(bucket = 'openrds-test'): Promise<Radosgw> {
  const dir = path.join(await tmpDir('openrds-rgw-'), 'ceph');
  const port = await freePort();
  const monPort = await freePort();
  const script = path.join(SCRIPTS, 'radosgw.sh');
  {
    await runOk('bash', [script, 'start', dir, String(port), String(monPort)], { timeoutMs: 180_000 });
    const client = new S3Client({
      endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: 'testkey', secretAccessKey: 'testsecret' },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    client.destroy();
  }
  return {
    endpoint: `http://127.0.0.1:${port}`, bucket, key: 'testkey', keySecret: 'testsecret', dir,
    stop: async () => { await runOk('bash', [script, 'stop', dir], { timeoutMs: 60_000 }); },
    gatewayStop: async () => { await runOk('bash', [script, 'gw-stop', dir], { timeoutMs: 60_000 }); },
    gatewayStart: async () => { await runOk('bash', [script, 'gw-start', dir, String(port)], { timeoutMs: 120_000 }); },
  };
}

/** A running azurite (Azure Blob emulator) on 127.0.0.1 with a container; in memory. */
export interface Azurite {
  endpoint: string;
  account: string;
  key: string;
  container: string;
  stop(): Promise<void>;
  /** Starts it again on the same port (in-memory: the blobs of before are gone). */
  start(): Promise<void>;
}

const AZURITE_ACCOUNT = 'devstoreaccount1';
// Azurite's well-known development key (documented by Microsoft; not a secret).
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export async function azuriteStart(container = 'openrds-test'): Promise<Azurite> {
  const port = await freePort();
  const bin = path.resolve(__dirname, '..', '..', '..', 'node_modules', '.bin', 'azurite-blob');
  let child: ChildProcess | undefined;
  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const start = async (): Promise<void> => {
    child = spawn(bin, ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--inMemoryPersistence', '--skipApiVersionCheck', '--disableTelemetry', '--silent', '--loose'],
      { stdio: 'ignore', detached: false });
    const until = Date.now() + 60_000;
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
        s.on('error', () => resolve(false));
      });
      if (up) break;
      if (Date.now() > until) throw new Error('azurite did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await start();
  const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  await service.getContainerClient(container).createIfNotExists();
  return {
    endpoint, account: AZURITE_ACCOUNT, key: AZURITE_KEY, container,
    stop: async () => {
      const c = child;
      if (!c || c.exitCode !== null) return;
      await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGTERM'); });
    },
    start,
  };
}
