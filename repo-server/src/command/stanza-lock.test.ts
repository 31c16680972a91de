import { LockAcquireError, sleep } from '@openrds/common';
import { withStanzaLock } from './stanza-lock';

describe('withStanzaLock', () => {
  it('refuses a second backup-lock holder at once, lets restore and other stanzas run, and frees on failure', async () => {
    const first = withStanzaLock('a', 'backup', () => sleep(50));
    await expect(withStanzaLock('a', 'expire', async () => 1)).rejects.toThrow(LockAcquireError);
    await expect(withStanzaLock('a', 'expire', async () => 1)).rejects.toThrow("unable to expire stanza 'a': a backup is running");
    await expect(withStanzaLock('a', 'restore', async () => 2, 'restore')).resolves.toBe(2);
    await expect(withStanzaLock('b', 'backup', async () => 3)).resolves.toBe(3);
    await first;
    await expect(withStanzaLock('a', 'backup', async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    await expect(withStanzaLock('a', 'expire', async () => 4)).resolves.toBe(4);
  });
});
