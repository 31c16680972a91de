// An encrypted repository in Azure Blob Storage (azurite started by the test): full → incr →
// point-in-time restore, with the data checked.
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import type { PgCluster } from './harness/cluster';
import { azuriteStart, type Azurite } from './harness/objstore';
import { fullIncrPitr } from './harness/repo-scenarios';
import { Stack } from './stack';

jest.setTimeout(900_000);

describe('encrypted Azure repository (azurite)', () => {
  let az: Azurite;
  let stack: Stack;
  const restored: PgCluster[] = [];

  beforeAll(async () => {
    az = await azuriteStart('openrds-e2e');
    stack = await Stack.create({ version: 15, stanza: 'aze', globalOptions: {
      'repo1-type': 'azure', 'repo1-path': '/openrds', 'repo1-azure-account': az.account, 'repo1-azure-container': az.container,
      'repo1-azure-endpoint': az.endpoint, 'repo1-cipher-type': 'aes-256-gcm',
    } });
    stack.serverEnv = { OPENRDS_REPO1_AZURE_KEY: az.key, OPENRDS_REPO1_CIPHER_PASS: 'an azure repository passphrase' };
    await stack.start();
  });
  afterAll(async () => {
    for (const c of restored) await c.destroy().catch(() => undefined);
    await stack?.destroy();
    await az?.stop();
  });

  it('full, incr, and a point-in-time restore from the container give the data of that moment', async () => {
    const container = new BlobServiceClient(az.endpoint, new StorageSharedKeyCredential(az.account, az.key)).getContainerClient(az.container);
    await fullIncrPitr(stack, async () => {
      const names: string[] = [];
      for await (const b of container.listBlobsFlat({ prefix: 'openrds/' })) names.push(b.name.slice('openrds/'.length));
      return names;
    }, restored);
  });
});
