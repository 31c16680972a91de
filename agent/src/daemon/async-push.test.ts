import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ArchivePushResult__Output } from '@openrds/common';
import { AsyncPusher, PUSHES_PER_PROCESS } from './async-push';
import { until } from './test-until';

describe('AsyncPusher', () => {
  let dir: string;
  let pusher: AsyncPusher | undefined;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'async-push-')); });
  afterEach(() => { pusher?.stop(); pusher = undefined; fs.rmSync(dir, { recursive: true, force: true }); });

  it.each([1, 2])('process-max %i: PUSHES_PER_PROCESS pushes per process-max on their way, in WAL order, each acknowledged once it returned', async (processMax) => {
    const status = path.join(dir, 'pg', 'pg_wal', 'archive_status');
    fs.mkdirSync(status, { recursive: true });
    const names = Array.from({ length: 7 }, (_, i) => `00000001000000000000000${i + 1}`);
    for (const n of names) fs.writeFileSync(path.join(status, `${n}.ready`), '');
    const started: string[] = [];
    const waiting = new Map<string, () => void>();
    let running = 0, most = 0;
    pusher = new AsyncPusher({
      pgPath: path.join(dir, 'pg'), spoolPath: path.join(dir, 'spool'), stanza: 's', processMax, intervalMs: 20,
      push: (walPath) => new Promise<ArchivePushResult__Output>((resolve) => {
        const name = path.basename(walPath);
        started.push(name);
        most = Math.max(most, ++running);
        waiting.set(name, () => { running--; resolve({ duplicate: false, warning: '', repoKey: `k/${name}` }); });
      }),
    });
    await pusher.start();
    const lanes = PUSHES_PER_PROCESS * processMax;
    await until(() => started.length === lanes);
    // No more than that while none has returned, whatever the scans find.
    await new Promise((r) => setTimeout(r, 100));
    expect(started).toEqual(names.slice(0, lanes));
    const spool = path.join(dir, 'spool', 'archive', 's', 'out');
    expect(fs.readdirSync(spool).filter((f) => f.endsWith('.ok'))).toEqual([]);
    // One returns: its acknowledgement is written, and the next ready file starts in its place.
    waiting.get(names[0]!)!();
    await until(() => started.length === lanes + 1);
    expect(fs.existsSync(path.join(spool, `${names[0]!}.ok`))).toBe(true);
    expect(started[lanes]).toBe(names[lanes]);
    // The rest, as each returns.
    for (let i = 1; i < names.length; i++) {
      await until(() => waiting.has(names[i]!));
      waiting.get(names[i]!)!();
    }
    await until(() => names.every((n) => fs.existsSync(path.join(spool, `${n}.ok`))));
    expect(started).toEqual(names);
    expect(most).toBe(lanes);
  });
});
