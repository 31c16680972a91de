import { FilterPool } from '@openrds/common';

let pool: FilterPool | undefined;

/**
 * The repo-server's worker threads, one set for the process (made when first needed; idle
 * workers do not keep it up): pushed WAL is checked there, and a backup's small files written.
 */
export function serverPool(): FilterPool {
  pool ??= new FilterPool();
  return pool;
}
