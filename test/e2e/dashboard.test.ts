/**
 * Issue 15 end to end: `npm run local -- up --load 200` serves the dashboard page on loopback (its address in
 * endpoints.json), and headless Chromium (Debian's package, driven by playwright-core) sees it fill from the
 * pipeline's own metrics in the CloudWatch dashboard's order, sees a SIGKILLed producer shown as down and then back,
 * and a poison batch shown with its reason. Takes a screenshot of the page: into the test's folder, or where
 * DASHBOARD_SCREENSHOT says (`DASHBOARD_SCREENSHOT=docs/dashboard.png` re-takes the README's picture; a plain test
 * run leaves the working tree alone).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoints } from '../../local/pipeline';
import { ROOT } from '../../local/pipeline';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { waitFor } from '../../local/services/process';
import { CHROMIUM, CHROMIUM_PATH, ensureSystemPackages } from '../../local/services/system-packages';
import { dashboardSections } from '../../shared/dashboard-layout';

const dir = mkdtempSync(join(tmpdir(), 'cdc-dashboard-'));
const SDK_WARNING = /NodeVersionSupportWarning/;

function run(command: string, args: string[]): { code: number | null; out: string } {
  const res = spawnSync(command, args, {
    cwd: ROOT,
    encoding: 'utf8',
    // Whatever the caller's shell says, the commands must quiet the SDK's Node notice themselves.
    env: { ...process.env, LOCAL_STATE_DIR: dir, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined },
    timeout: 300_000,
  });
  return { code: res.status, out: `${res.stdout}${res.stderr}` };
}
const local = (...args: string[]) => run('npm', ['run', '--silent', 'local', '--', ...args]);

/** `run`, without blocking: two commands side by side. */
function runAsync(command: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, LOCAL_STATE_DIR: dir, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
}

/** The pids of the supervisor's children running a script (the producer, the stream apply). */
function childrenRunning(script: string): number[] {
  const supervisor = Number(readFileSync(join(dir, 'supervisor.pid'), 'utf8'));
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === supervisor && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(script);
      } catch {
        return false;
      }
    })
    .map(Number);
}

let ep: Endpoints;
let upOutput: string;
let browser: Browser;
let page: Page;

/** The text of a section's latest-value cell for a metric (the chart's text alternative). */
const latest = (section: string, metric: string) =>
  page.locator(`#section-${section} table.values td[data-metric="${metric}"]`).first().textContent();

beforeAll(async () => {
  ensureSystemPackages(undefined, [CHROMIUM]);
  const up = local('up', '--load', '200', '--dashboard-port', '0');
  upOutput = up.out;
  expect(up.code, up.out).toBe(0);
  ep = JSON.parse(readFileSync(join(dir, 'endpoints.json'), 'utf8')) as Endpoints;
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    // playwright gives each launch a fresh profile; without the background-networking flags Chromium's own
    // connections are refused here, many at a time.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(ep.dashboard!.url);
});

afterAll(async () => {
  await browser?.close();
  if (existsSync(join(dir, 'supervisor.pid'))) local('down');
  rmSync(dir, { recursive: true, force: true });
});

describe('the local dashboard page in a real browser', () => {
  it('is served on loopback only, its address printed and in endpoints.json, without the SDK Node notice', () => {
    const url = new URL(ep.dashboard!.url);
    expect(url.hostname).toBe('127.0.0.1');
    expect(upOutput).toContain(`dashboard: ${ep.dashboard!.url}`);
    // The listening socket's local address is 127.0.0.1 (0100007F in /proc/net/tcp), not 0.0.0.0.
    const port = Number(url.port).toString(16).toUpperCase().padStart(4, '0');
    const listening = readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .filter((l) => l.split(/\s+/)[2]?.endsWith(`:${port}`) && l.split(/\s+/)[4] === '0A');
    expect(listening.map((l) => l.split(/\s+/)[2])).toEqual([`0100007F:${port}`]);
    expect(readFileSync('/proc/net/tcp6', 'utf8')).not.toMatch(new RegExp(`:${port} [0-9A-F:]+ 0A `));
    // The commands and the processes they started kept the AWS SDK's Node-version notice out of their output.
    expect(upOutput).not.toMatch(SDK_WARNING);
    for (const log of ['supervisor.log', 'producer.log', 'firehose.log', 'stream-apply.log'])
      expect(readFileSync(join(dir, log), 'utf8'), log).not.toMatch(SDK_WARNING);
  });

  it('answers only to loopback host names (no DNS rebinding)', async () => {
    // fetch() may not set Host: a plain request, as a browser sends it to a rebound name.
    const url = new URL(ep.dashboard!.url);
    const status = await new Promise<number | undefined>((resolve, reject) =>
      request(
        { host: url.hostname, port: url.port, path: '/api/state', headers: { host: 'attacker.example' } },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      )
        .on('error', reject)
        .end(),
    );
    expect(status).toBe(403);
    expect((await fetch(`${ep.dashboard!.url}api/state`)).status).toBe(200);
  });

  it("shows the CloudWatch dashboard's sections in its order and fills them from the pipeline's own metrics", async () => {
    const titles = await page.locator('#sections figure').evaluateAll((fs) => fs.map((f) => f.dataset.title));
    expect(titles).toEqual(dashboardSections({ streamApply: true, redshiftDelivery: true }).map((s) => s.title));
    await expect(page.title()).resolves.toMatch(/dashboard/);
    // Each chart is a figure labelled by its caption, with a table of its latest values.
    expect(await page.locator('figure[aria-labelledby] figcaption').count()).toBe(titles.length);
    expect(await page.locator('figure div.chart[role="img"][aria-label]').count()).toBe(titles.length);
    const positive = async (section: string, metric: string) => {
      const t = await latest(section, metric);
      return t !== null && Number(t) > 0 ? Number(t) : undefined;
    };
    const filled = await waitFor(
      'the charts to fill',
      async () => {
        const v = {
          captured: await positive('producer-rows', 'RowsCaptured'),
          applied: await positive('stream-apply-rows', 'RowsApplied'),
          freshness: await positive('replica-freshness', 'ReplicaFreshnessSeconds'),
          duration: await positive('stream-apply-duration', 'Duration'),
          delivered: await positive('firehose-s3', 'DeliveryToS3.Records'),
        };
        return Object.values(v).every((x) => x !== undefined) ? v : undefined;
      },
      60_000,
    );
    // 200 rows/s of load: rows/s captured and applied in that range (orders with lines and status changes).
    expect(filled.captured).toBeGreaterThan(50);
    expect(filled.applied).toBeGreaterThan(50);
    expect(filled.freshness).toBeLessThan(30);
    // Each chart drew its series (uPlot's canvas) and the producer's running-task count is 1.
    expect(await page.locator('#section-producer-rows canvas').count()).toBeGreaterThan(0);
    expect(await latest('producer-lag', 'RunningTaskCount')).toBe('1');
    // Per-table source and replica counts, from the stores.
    await waitFor(
      'per-table counts',
      async () => Number(await page.locator('#tables-body tr[data-table="shop.orders"] td').nth(1).textContent()) > 0,
      30_000,
    );
  });

  it('shows a SIGKILLed producer as down while the rest keeps updating, then as recovered', async () => {
    const [pid] = childrenRunning('containers/producer/src/main.ts');
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    const producer = page.locator('#parts-list li[data-part="producer"]');
    await producer.and(page.locator('[data-up="false"]')).waitFor({ timeout: 30_000 });
    expect(await producer.textContent()).toMatch(/DOWN since .+, last seen /);
    expect(await page.locator('#section-producer-rows .badge').textContent()).toMatch(/Producer down/);
    // The page keeps updating while the producer is down: the stream apply still reports.
    const before = await page.locator('#connection').textContent();
    await waitFor('the page to update again', async () => (await page.locator('#connection').textContent()) !== before);
    await producer.and(page.locator('[data-up="true"]')).waitFor({ timeout: 60_000 });
    expect(await producer.textContent()).toMatch(/restarted [1-9]\d*×; last down /);
    expect(await page.locator('#section-producer-rows .badge').count()).toBe(0);
  });

  it('shows the merge (the stream apply) SIGKILLed as down, and back once its successor is ready', async () => {
    const [pid] = childrenRunning('local/stream-apply-main.ts');
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    const apply = page.locator('#parts-list li[data-part="stream-apply"]');
    await apply.and(page.locator('[data-up="false"]')).waitFor({ timeout: 30_000 });
    expect(await page.locator('#section-stream-apply-rows .badge').textContent()).toMatch(
      /Stream apply \(merge\) down/,
    );
    await apply.and(page.locator('[data-up="true"]')).waitFor({ timeout: 60_000 });
    expect(await apply.textContent()).toMatch(/restarted 1×; last down /);
    // Applying again: rows applied reach the page after the restart.
    const since = Date.now();
    await waitFor(
      'rows applied after the restart',
      async () => {
        const st = (await (await fetch(`${ep.dashboard!.url}api/state?minutes=1`)).json()) as {
          sections: { id: string; t: number[]; series: { name: string; values: (number | null)[] }[] }[];
        };
        const s = st.sections.find((x) => x.id === 'stream-apply-rows')!;
        const rows = s.series.find((x) => x.name === 'RowsApplied')!.values;
        return s.t.some((t, i) => t > since && (rows[i] ?? 0) > 0);
      },
      60_000,
    );
  });

  it('shows a poison batch with its reason', async () => {
    const kinesis = new KinesisClient(localAwsClientConfig(ep.aws.kinesis));
    // An event of a contract version no merge understands: the stream apply sets its batch aside at once.
    const poison = { v: 99, op: 'insert', db: 'shop', table: 'orders', position: 'x', commitMs: Date.now() };
    await kinesis.send(
      new PutRecordsCommand({
        StreamName: ep.aws.stream,
        Records: [{ Data: Buffer.from(JSON.stringify(poison)), PartitionKey: 'shop.orders' }],
      }),
    );
    kinesis.destroy();
    const entry = page.locator('#set-aside-body tr.set-aside-entry').first();
    await entry.waitFor({ timeout: 30_000 });
    expect(await entry.textContent()).toMatch(/poison batch/);
    expect(await entry.locator('td.reason').textContent()).toMatch(/event version 99/);
    // And counted in the stream apply's PoisonBatches series (the largest value the chart shows).
    const counted = page.locator('#section-stream-apply-rows table.values td[data-max-metric="PoisonBatches"]');
    await waitFor('the poison batch counted', async () => Number(await counted.textContent()) > 0, 30_000);
    // The README's picture: a minute of load, the producer's outage and the poison batch on it.
    const shot = process.env.DASHBOARD_SCREENSHOT
      ? join(ROOT, process.env.DASHBOARD_SCREENSHOT)
      : join(dir, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(50_000);
  });

  it('npm run local -- status and npx cdc status print their own output, without the SDK Node notice', async () => {
    const [status, cdc] = await Promise.all([
      runAsync('npm', ['run', '--silent', 'local', '--', 'status']),
      runAsync('npx', ['cdc', 'status']),
    ]);
    expect(status.code, status.out).toBe(0);
    expect(status.out).toContain(`dashboard:           ${ep.dashboard!.url}`);
    expect(status.out).not.toMatch(SDK_WARNING);
    expect(cdc.code, cdc.out).toBe(0);
    expect(cdc.out).not.toMatch(SDK_WARNING);
  });

  it('keeps what it drew and says since when it is stale once the pipeline (and its server) stopped', async () => {
    const figures = await page.locator('#sections figure canvas').count();
    const down = local('down');
    expect(down.code, down.out).toBe(0);
    await waitFor('the page to notice', async () =>
      /unreachable/.test((await page.locator('#connection').textContent()) ?? ''),
    );
    expect(await page.locator('#connection').getAttribute('data-state')).toBe('down');
    expect(await page.locator('#connection').textContent()).toMatch(/showing data as of \d/);
    expect(await page.locator('#sections figure canvas').count()).toBe(figures);
  });
});
