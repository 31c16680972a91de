// One conformance suite, every repository driver: posix on a temp directory, s3 on a real
// radosgw (single-node Ceph started by the test on 127.0.0.1), azure on azurite. Parts of 5 MiB
// (blocks of 4 MiB) so that the large case is a real multipart upload (block list).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PosixStorage, storageRepoNew, type S3StorageOptions, type Storage } from '@openrds/common';
import { azuriteStart, radosgwStart, type Azurite, type Radosgw } from './harness/objstore';
import { storageConformance } from './harness/storage-conformance';

jest.setTimeout(300_000);

const posixDir = fs.mkdtempSync(path.join(os.tmpdir(), 'openrds-conf-'));
afterAll(() => fs.rmSync(posixDir, { recursive: true, force: true }));
storageConformance('posix', () => new PosixStorage({ path: posixDir }), { large: 12 * 1024 * 1024 });

let rgw: Radosgw | undefined;
const s3 = (o: Partial<S3StorageOptions> = {}): Storage => storageRepoNew({ type: 's3', path: '/repo', s3: {
  bucket: rgw!.bucket, endpoint: rgw!.endpoint, region: 'us-east-1', uriStyle: 'path', keyType: 'shared',
  key: rgw!.key, keySecret: rgw!.keySecret, verifyTls: true, ...o,
} });
describe('s3 on radosgw', () => {
  beforeAll(async () => { rgw = await radosgwStart(); });
  afterAll(async () => { await rgw?.stop(); });
  storageConformance('s3', () => s3({ partSize: 5 * 1024 * 1024 }), { large: 12 * 1024 * 1024 });

  it('reports a stopped gateway as a clear, unavailable repository (after the SDK retries)', async () => {
    const s = s3({ maxAttempts: 2 });
    await rgw!.gatewayStop();
    try {
      await expect(s.put('down/x', 'x')).rejects.toThrow(/unable to write 'down\/x' in s3 bucket 'openrds-test'/);
      await expect(s.put('down/x', 'x')).rejects.toMatchObject({ code: 104 });
    } finally {
      await rgw!.gatewayStart();
    }
    await s.put('down/x', 'x');
    expect((await s.get('down/x')).toString()).toBe('x');
    const wrongKey = s3({ keySecret: 'not the secret', maxAttempts: 1 });
    await expect(wrongKey.get('down/x')).rejects.toThrow(/SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId|HTTP 403/);
  });
});

let azurite: Azurite | undefined;
describe('azure on azurite', () => {
  beforeAll(async () => { azurite = await azuriteStart(); });
  afterAll(async () => { await azurite?.stop(); });
  const azure = (): Storage => storageRepoNew({ type: 'azure', path: '/repo', azure: {
    account: azurite!.account, container: azurite!.container, keyType: 'shared', key: azurite!.key, endpoint: azurite!.endpoint,
    blockSize: 4 * 1024 * 1024, maxTries: 2,
  } });
  storageConformance('azure', azure, { large: 12 * 1024 * 1024 });

  it('reports a stopped service as a clear, unavailable repository', async () => {
    const s = azure();
    await azurite!.stop();
    try {
      await expect(s.put('down/x', 'x')).rejects.toMatchObject({ code: 104 });
      await expect(s.get('down/x')).rejects.toThrow(/unable to read 'down\/x' in azure container 'openrds-test'/);
    } finally {
      await azurite!.start();
    }
  });
});
