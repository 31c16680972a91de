import { AccessDeniedError, RemoteError } from '@openrds/common';
import type { AgentHello__Output, JobEvent, ServerMessage } from '@openrds/common';
import { AgentConnection } from './agent-registry';

/**
 * A job's failure reaches the repo-server as an ErrorDetail on the agent's session stream (the
 * agent's side: jobs.test.ts): the same class with its hint, or an unknown (newer agent's) class
 * with its name and exit code. The stream is a stand-in that answers each job written to it.
 */
describe('AgentConnection: a job error the agent reported', () => {
  function connected(answer: Omit<JobEvent, 'jobId'>): AgentConnection {
    const hello = { stanzas: [{ stanza: 's' }] } as unknown as AgentHello__Output;
    let conn: AgentConnection | undefined;
    const call = {
      write: (msg: ServerMessage) => {
        const jobId = msg.job?.jobId;
        if (jobId) setImmediate(() => conn!.onEvent({ jobId, ...answer } as never));
        return true;
      },
    };
    conn = new AgentConnection(hello, call as never, 'test');
    return conn;
  }

  it('keeps the class and hint of a class it knows', async () => {
    const conn = connected({ error: { name: 'AccessDeniedError', code: 0, message: 'refused', hint: 'run it as postgres' } });
    const err = await conn.job('s', { dbOpen: { dbSessionId: 'x', applicationName: 'a' } } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect(err).toMatchObject({ message: 'refused', hint: 'run it as postgres' });
  });

  it('rebuilds a class it does not know with its name and exit code', async () => {
    const conn = connected({ error: { name: 'NewerAgentError', code: 97, message: 'failed', hint: '' } });
    const err = await conn.job('s', { dbOpen: { dbSessionId: 'x', applicationName: 'a' } } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ name: 'NewerAgentError', code: 97, message: 'failed', hint: undefined });
  });
});
