import { AccessDeniedError, logRedact } from '@openrds/common';
import { JobRunner } from './jobs';

/** A failed job is emitted as an ErrorDetail (the repo-server's side: agent-registry.test.ts). */
describe('JobRunner: a failed job', () => {
  const run = async (runner: JobRunner, job: Record<string, unknown>): Promise<unknown[]> => {
    const sent: unknown[] = [];
    await runner.run({ jobId: 'j', ...job } as never, async (ev) => { sent.push(ev); }, new AbortController().signal);
    return sent;
  };

  it('sends its class, exit code, message and hint', async () => {
    // An agent running as root for restores refuses other jobs.
    const sent = await run(new JobRunner({ restoreOwner: { uid: 0, gid: 0 } } as never), { kind: 'dbOpen', dbOpen: { dbSessionId: 'x', applicationName: 'a' } });
    expect(sent).toEqual([{ error: { name: 'AccessDeniedError', code: new AccessDeniedError('').code, message: expect.stringMatching(/refuses dbOpen jobs/), hint: expect.stringMatching(/PostgreSQL OS user/) } }]);
  });

  it('redacts registered secrets from what it sends', async () => {
    logRedact('s3cr3t-value');
    const sent = await run(new JobRunner({} as never), { kind: 's3cr3t-value' });
    expect(sent).toEqual([{ error: { name: 'AssertError', code: expect.any(Number), message: "unknown job kind '<redacted>'", hint: expect.stringMatching(/upgrade openrds-agent/) } }]);
  });
});
