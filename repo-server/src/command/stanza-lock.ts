import { LockAcquireError } from '@openrds/common';

const held = new Map<string, string>();

/**
 * Runs `fn` holding one of the stanza's locks: 'backup' (backup and expire share it, as in
 * pgBackRest) or 'restore'. A second holder fails at once with a clear error instead of waiting
 * or interleaving. The lock is in the repo-server process, which owns the repository.
 */
export async function withStanzaLock<T>(stanza: string, command: string, fn: () => Promise<T>, lock: 'backup' | 'restore' = 'backup'): Promise<T> {
  const key = `${lock}:${stanza}`;
  const holder = held.get(key);
  if (holder) {
    throw new LockAcquireError(`unable to ${command} stanza '${stanza}': a ${holder} is running`, { hint: `wait for the ${holder} to finish` });
  }
  held.set(key, command);
  try {
    return await fn();
  } finally {
    held.delete(key);
  }
}
