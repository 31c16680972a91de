import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pgDataList } from './list';

describe('pgDataList', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'list-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists files with sizes and mtimes, and follows tablespace links under pg_tblspc/<oid>/', async () => {
    const pg = path.join(dir, 'pg'), ts = path.join(dir, 'ts');
    fs.mkdirSync(path.join(pg, 'base', '1'), { recursive: true });
    fs.mkdirSync(path.join(pg, 'pg_tblspc'));
    fs.mkdirSync(path.join(ts, 'PG_15_202209061', '5'), { recursive: true });
    fs.writeFileSync(path.join(pg, 'base', '1', '1259'), Buffer.alloc(8192));
    fs.writeFileSync(path.join(ts, 'PG_15_202209061', '5', '16386'), 'abc');
    fs.symlinkSync(ts, path.join(pg, 'pg_tblspc', '16385'));
    fs.utimesSync(path.join(pg, 'base', '1', '1259'), 1700000000, 1700000000);
    const entries = [];
    for await (const e of pgDataList(pg, { followTablespaces: true })) entries.push(e);
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect(byName.get('base/1/1259')).toEqual(expect.objectContaining({ type: 'file', size: 8192, mtime: 1700000000 }));
    expect(byName.get('pg_tblspc/16385')).toEqual(expect.objectContaining({ type: 'link', linkTarget: ts }));
    expect(byName.get('pg_tblspc/16385/PG_15_202209061/5/16386')).toEqual(expect.objectContaining({ type: 'file', size: 3 }));
    expect(byName.get('base')?.type).toBe('dir');
  });
});
