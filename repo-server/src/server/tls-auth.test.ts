import { AccessDeniedError, OptionInvalidError, protoLoad } from '@openrds/common';
import { tlsAuthDeny, tlsAuthParse, tlsMethodAccess } from './tls-auth';

describe('tls-server-auth and tls-server-admin', () => {
  const rules = tlsAuthParse({ 'db1': 'main', 'db2': 'a, b', 'ops-agent': '*' }, ['admin1,admin2', 'admin3']);

  it('parses CN → stanzas, * for every stanza, and admin CNs repeated or comma-separated', () => {
    expect(rules.agents.get('db1')).toEqual(new Set(['main']));
    expect(rules.agents.get('db2')).toEqual(new Set(['a', 'b']));
    expect(rules.agents.get('ops-agent')).toBe('*');
    expect([...rules.admins]).toEqual(['admin1', 'admin2', 'admin3']);
  });

  it('refuses a stanza name that is not one, and * mixed with stanzas', () => {
    expect(() => tlsAuthParse({ db1: 'main,../x' }, [])).toThrow(OptionInvalidError);
    expect(() => tlsAuthParse({ db1: 'main,../x' }, [])).toThrow("tls-server-auth: '../x' (CN 'db1') is not a stanza name");
    expect(() => tlsAuthParse({ db1: 'main,*' }, [])).toThrow("tls-server-auth: '*' must stand alone for CN 'db1'");
    expect(() => tlsAuthParse({ db1: '' }, [])).toThrow(OptionInvalidError);
    expect(() => tlsAuthParse({}, [''])).toThrow("tls-server-admin: '' is not a certificate CN");
  });

  const deny = (method: string, cn: string | undefined, stanza?: string) =>
    tlsAuthDeny(rules, { method: `/openrds.v1.${method}`, cn, ...(stanza === undefined ? {} : { stanza }) });

  it('lets anyone ping, with or without a certificate', () => {
    expect(deny('Admin/Ping', undefined)).toBeUndefined();
    expect(deny('Admin/Ping', 'db1')).toBeUndefined();
  });

  it('classifies every method the repo-server serves (a method left out would be refused to everyone under TLS)', () => {
    const proto = protoLoad();
    const paths = [...Object.values(proto.AgentGateway.service), ...Object.values(proto.Admin.service)].map((m) => m.path);
    expect(paths).toContain('/openrds.v1.AgentGateway/ArchivePushes');
    expect(paths.filter((p) => tlsMethodAccess(p) === undefined)).toEqual([]);
  });

  it('refuses every other call without a verified certificate, saying what to set', () => {
    for (const m of ['Admin/Run', 'AgentGateway/Session', 'AgentGateway/ArchivePush', 'AgentGateway/ArchiveGet', 'AgentGateway/PutBackupFile', 'AgentGateway/GetBackupFile']) {
      const e = deny(m, undefined, 'main');
      expect(e).toBeInstanceOf(AccessDeniedError);
      expect(e?.message).toContain('requires a client certificate signed by its CA');
      expect(e?.hint).toContain('repo-host-cert-file');
    }
  });

  it('runs admin commands for admin CNs only; an agent CN is not an admin', () => {
    expect(deny('Admin/Run', 'admin2')).toBeUndefined();
    const e = deny('Admin/Run', 'ops-agent');
    expect(e?.message).toBe("client certificate CN 'ops-agent' may not run admin commands");
    expect(e?.code).toBe(72);
  });

  it('serves agent calls only for the stanzas of the CN', () => {
    expect(deny('AgentGateway/ArchivePush', 'db1', 'main')).toBeUndefined();
    expect(deny('AgentGateway/ArchiveGet', 'db2', 'b')).toBeUndefined();
    expect(deny('AgentGateway/Session', 'ops-agent', 'anything')).toBeUndefined();
    const e = deny('AgentGateway/ArchivePush', 'db1', 'b');
    expect(e?.message).toBe("client certificate CN 'db1' is not authorized for stanza 'b'");
    expect(e?.hint).toContain('tls-server-auth=db1=main,b');
  });

  it('refuses agent calls of a CN that is no agent, even an admin', () => {
    expect(deny('AgentGateway/Session', 'admin1', 'main')?.message).toBe("client certificate CN 'admin1' is not an agent of this repo-server");
    // Before the stanza is known (the interceptor): an agent CN passes, others do not.
    expect(deny('AgentGateway/PutBackupFile', 'db1')).toBeUndefined();
    expect(deny('AgentGateway/PutBackupFile', 'stranger')).toBeInstanceOf(AccessDeniedError);
  });

  it('refuses a method it does not know (deny by default)', () => {
    expect(tlsMethodAccess('/openrds.v1.Admin/Shutdown')).toBeUndefined();
    expect(deny('Admin/Shutdown', 'admin1')?.message).toBe("method '/openrds.v1.Admin/Shutdown' is not served to clients");
  });
});
