import { Client as PgClient } from 'pg';
import { DbConnectError, lsnParse, log } from '@openrds/common';
import type { Config } from '@openrds/common';

/**
 * A connection to the local cluster as the daemon's configuration names it (pg1-socket-path,
 * pg1-port, pg1-user, pg1-database). A broken connection later does not crash the daemon: `lost`
 * hears of it, and the next query fails.
 */
export async function pgConnect(config: Config, applicationName: string, lost: (err: Error) => void): Promise<PgClient> {
  const client = new PgClient({
    host: config.str('pg1-socket-path'), port: config.int('pg1-port'), user: config.str('pg1-user'),
    database: config.str('pg1-database'), application_name: applicationName,
  });
  client.on('error', lost);
  try {
    await client.connect();
  } catch (err) {
    throw new DbConnectError(`unable to connect to the cluster at socket '${config.str('pg1-socket-path')}' port ${config.int('pg1-port')}: ${(err as Error).message}`,
      { hint: 'check pg1-socket-path, pg1-port and pg1-user, and that PostgreSQL is running' });
  }
  return client;
}

/** Where PostgreSQL has flushed its WAL to: the segment file that holds the position, and the bytes of it that are final. */
export interface WalFlushed { name: string; lsn: bigint }

/** After a failed look (no connection, a standby), this long before the next try. */
const RETRY_MS = 10_000;

/**
 * The primary's WAL flush position, for WAL pre-streaming (wal-stream.ts): WAL before it is on
 * disk and PostgreSQL never writes those bytes again, so what is read of it is what the segment
 * will hold. One short query on a connection kept open. Undefined when it cannot be had (no
 * connection, or a standby, where the position is not the primary's): the stream then falls
 * back to the page headers and the push compares the whole file.
 */
export class WalFlushProbe {
  private client: PgClient | undefined;
  private retryAt = 0;
  private told = false;

  constructor(private readonly connect: (lost: (err: Error) => void) => Promise<PgClient>) {}

  async position(): Promise<WalFlushed | undefined> {
    if (Date.now() < this.retryAt) return undefined;
    try {
      this.client ??= await this.connect(() => this.drop());
      // One evaluation of the position for both (a second call could be in the next segment). At a
      // segment's end pg_walfile_name names that segment, whose bytes are then all flushed.
      const res = await this.client.query<{ l: string; n: string }>('SELECT l::text AS l, pg_walfile_name(l) AS n FROM pg_current_wal_flush_lsn() AS l');
      const row = res.rows[0];
      if (!row) throw new Error('no row');
      if (this.told) { log.info('WAL pre-streaming: the flush position of PostgreSQL is read again'); this.told = false; }
      return { name: row.n, lsn: lsnParse(row.l) };
    } catch (err) {
      if (!this.told) {
        log.detail(`WAL pre-streaming: the flush position of PostgreSQL is not available (${(err as Error).message}): the page headers are followed, and each push compares its segment`);
        this.told = true;
      }
      this.drop();
      this.retryAt = Date.now() + RETRY_MS;
      return undefined;
    }
  }

  close(): void { this.drop(); }

  private drop(): void {
    const c = this.client;
    this.client = undefined;
    c?.end().catch(() => undefined);
  }
}
