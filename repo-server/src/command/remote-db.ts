import { randomUUID } from 'node:crypto';
import type { AgentConnection } from '../server/agent-registry';

/**
 * A PostgreSQL session held by the agent on the database host: the repo-server never connects
 * to PostgreSQL itself. The session lives until `close()` or until the agent's session ends.
 */
export class RemoteDb {
  private constructor(private readonly agent: AgentConnection, private readonly stanza: string, private readonly id: string) {}

  static async open(agent: AgentConnection, stanza: string, applicationName: string): Promise<RemoteDb> {
    const id = randomUUID();
    await agent.job(stanza, { dbOpen: { dbSessionId: id, applicationName } });
    return new RemoteDb(agent, stanza, id);
  }

  /** Rows as objects; values as node-postgres returns them, through JSON. */
  async query<T = Record<string, unknown>>(sql: string, params: string[] = []): Promise<T[]> {
    const res = await this.agent.job<{ rows: T[] }>(this.stanza, { dbQuery: { dbSessionId: this.id, sql, params } });
    return res.rows;
  }

  async one<T = Record<string, unknown>>(sql: string, params: string[] = []): Promise<T> {
    const rows = await this.query<T>(sql, params);
    return rows[0] as T;
  }

  async close(): Promise<void> {
    await this.agent.job(this.stanza, { dbClose: { dbSessionId: this.id } }).catch(() => undefined);
  }
}
