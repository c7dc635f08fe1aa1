/**
 * The `npm run local` interface others script against (local/main.ts): up / status / down, .local/endpoints.json,
 * and a table created after `up` being replicated without restarts. Runs the real CLI in a temporary state folder
 * (LOCAL_STATE_DIR) so it never touches a developer's own .local/.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../local/pipeline';
import { waitFor } from '../../local/services/process';

const dir = mkdtempSync(join(tmpdir(), 'cdc-cli-'));

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'local/main.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, LOCAL_STATE_DIR: dir },
    timeout: 300_000,
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); // a zombie has exited
}

afterAll(() => {
  // A failed test must not leave a background pipeline behind.
  if (existsSync(join(dir, 'supervisor.pid'))) cli('down');
  rmSync(dir, { recursive: true, force: true });
});

describe('npm run local (CLI)', () => {
  it('rejects a bad --load value and an unknown verb, naming what it got', () => {
    const load = cli('up', '--load', 'fast');
    expect(load.code).toBe(2);
    expect(load.stderr).toContain('--load needs a positive number of rows/s, got "fast"');
    const verb = cli('start');
    expect(verb.code).toBe(2);
    expect(verb.stderr).toContain('unknown verb "start"');
  });

  it('says so when status is asked and nothing runs', () => {
    const res = cli('status');
    expect(res.code).toBe(1);
    expect(res.stdout).toContain('not running');
  });

  it("down leaves alone a process whose pid a dead supervisor's pid file names (pids are reused)", async () => {
    // Here pid_max is 32768: a stale pid file soon names someone else's process (a test's MariaDB server, say).
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore', detached: true });
    try {
      writeFileSync(join(dir, 'supervisor.pid'), String(stranger.pid));
      expect(cli('status').stdout).toContain('not running');
      const down = cli('down');
      expect(down.stdout).toContain('not running');
      expect(alive(stranger.pid!)).toBe(true);
    } finally {
      stranger.kill('SIGKILL');
      rmSync(join(dir, 'supervisor.pid'), { force: true });
    }
  });

  it('up returns once ready with endpoints.json; tables created right afterwards (keyed and keyless) are replicated; status shows it; down stops it all', async () => {
    const up = cli('up');
    expect(up.code, up.stderr).toBe(0);
    const ep = JSON.parse(readFileSync(join(dir, 'endpoints.json'), 'utf8'));
    expect(ep).toMatchObject({
      mysql: {
        host: expect.any(String),
        port: expect.any(Number),
        user: expect.any(String),
        password: expect.any(String),
        database: expect.any(String),
      },
      postgres: { url: expect.stringMatching(/^postgres(ql)?:\/\//) },
      replicaSchema: expect.any(String),
    });
    const pid = Number(readFileSync(join(dir, 'supervisor.pid'), 'utf8'));
    expect(alive(pid)).toBe(true);

    const my = await mysql.createConnection(ep.mysql);
    const warehouse = new pg.Client({ connectionString: ep.postgres.url });
    await warehouse.connect();
    try {
      // Right after `up` returns, into a keyless table (which no snapshot covers): captured by the stream.
      await my.query('CREATE TABLE tags (label VARCHAR(20))');
      await my.query("INSERT INTO tags VALUES ('x'), ('y'), ('y')");
      await my.query('CREATE TABLE parcels (id INT PRIMARY KEY, label VARCHAR(20), weight_kg DECIMAL(6,3))');
      await my.query("INSERT INTO parcels VALUES (1, 'a', 1.500), (2, 'b', 0.250), (3, 'c', 12.000)");
      await my.query("UPDATE parcels SET label = 'b2' WHERE id = 2");
      await my.query('DELETE FROM parcels WHERE id = 3');
      const rows = await waitFor(
        'the new table in the replica',
        async () => {
          const res = await warehouse.query(
            `SELECT id || '|' || label || '|' || weight_kg::text AS r FROM "${ep.replicaSchema}".parcels ORDER BY id`,
          );
          const got = res.rows.map((r: { r: string }) => r.r);
          return got.length === 2 && got[1] === '2|b2|0.250' ? got : undefined;
        },
        60_000,
      );
      expect(rows).toEqual(['1|a|1.500', '2|b2|0.250']);
      const tags = await waitFor(
        'the keyless table in the replica',
        async () => {
          const res = await warehouse
            .query(`SELECT label || '×' || _cdc_count AS r FROM "${ep.replicaSchema}".tags ORDER BY label`)
            .catch(() => ({ rows: [] }));
          const got = res.rows.map((r: { r: string }) => r.r);
          return got.length === 2 ? got : undefined;
        },
        30_000,
      );
      expect(tags).toEqual(['x×1', 'y×2']);
    } finally {
      await my.end();
      await warehouse.end();
    }

    // The status file is refreshed every second; give it one beat so status shows the applied rows.
    await new Promise((r) => setTimeout(r, 1500));
    const status = cli('status');
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/source binlog end: +mysql-bin\.\d+:\d+/);
    expect(status.stdout).toMatch(/producer checkpoint: mysql-bin\.\d+:\d+/);
    expect(status.stdout).toMatch(/firehose delivered: +shardId-/);
    expect(status.stdout).toMatch(/replica freshness: +newest commit applied 20\d\d-\d\d-\d\dT[\d:.]+Z, [\d.]+ s ago/);
    expect(status.stdout).toMatch(/lag: +producer \d+(\.\d+)? s behind the source/);
    expect(status.stdout).toMatch(/\nparcels +2 +2\n/);
    expect(status.stdout).not.toContain('producer DOWN');
    expect(status.stdout).toMatch(/\norders +0 +-\n/); // no change yet: no replica yet

    const down = cli('down');
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain('stopped');
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(dir, 'endpoints.json'))).toBe(false);
    // MariaDB went down with it.
    await expect(mysql.createConnection({ ...ep.mysql, connectTimeout: 2000 })).rejects.toThrow();
  }, 300_000);

  it('down stops what a SIGKILLed supervisor left running', async () => {
    const up = cli('up');
    expect(up.code, up.stderr).toBe(0);
    const ep = JSON.parse(readFileSync(join(dir, 'endpoints.json'), 'utf8'));
    const pid = Number(readFileSync(join(dir, 'supervisor.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await waitFor('the supervisor to die', async () => !alive(pid));
    // Its MariaDB outlives it...
    await (await mysql.createConnection(ep.mysql)).end();
    const down = cli('down');
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain('was gone; stopped what it had started');
    // ...until down.
    await waitFor(
      'MariaDB to stop',
      async () =>
        mysql.createConnection({ ...ep.mysql, connectTimeout: 1000 }).then(
          async (c) => {
            await c.end();
            return false;
          },
          () => true,
        ),
      60_000,
    );
    expect(existsSync(join(dir, 'supervisor.pid'))).toBe(false);
  }, 300_000);

  it('foreground: shows a live status line and, on Ctrl-C, drains the producer and stops everything', async () => {
    // Its own process group, like a terminal's foreground job: Ctrl-C sends SIGINT to the whole group.
    const fg = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'local/main.ts'), '--load', '50'], {
      cwd: ROOT,
      env: { ...process.env, LOCAL_STATE_DIR: dir },
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    fg.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => fg.once('exit', (code) => r(code)));
    await waitFor('a status line with applied rows', async () => /applied [1-9]\d* rows\/s/.test(stderr), 120_000);
    expect(stderr).toMatch(/captured \d+ rows\/s · applied \d+ rows\/s · \d+ s behind source · freshness [\d.]+ s/);
    const supervisor = Number(readFileSync(join(dir, 'supervisor.pid'), 'utf8'));
    process.kill(-fg.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    expect(alive(supervisor)).toBe(false);
    expect(existsSync(join(dir, 'supervisor.pid'))).toBe(false);
    const producerLog = readFileSync(join(dir, 'producer.log'), 'utf8');
    expect(producerLog.slice(producerLog.lastIndexOf('SIGTERM: stop reading'))).toContain('stopped cleanly');
  }, 300_000);
});
