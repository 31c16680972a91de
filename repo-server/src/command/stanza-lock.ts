import { LockAcquireError } from '@openrds/common';

const held = new Map<string, string>();

/**
 * Runs `fn` holding the stanza's backup lock (backup and expire share it, as in pgBackRest); a
 * second holder fails at once with a clear error instead of waiting or interleaving. The lock is
 * in the repo-server process, which owns the repository.
 */
export async function withStanzaLock<T>(stanza: string, command: string, fn: () => Promise<T>): Promise<T> {
  const holder = held.get(stanza);
  if (holder) {
    throw new LockAcquireError(`unable to ${command} stanza '${stanza}': a ${holder} is running`, { hint: `wait for the ${holder} to finish` });
  }
  held.set(stanza, command);
  try {
    return await fn();
  } finally {
    held.delete(stanza);
  }
}
