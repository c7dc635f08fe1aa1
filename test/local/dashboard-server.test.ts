/**
 * The dashboard server without a pipeline behind it: it answers on loopback with the layout's sections, says which
 * parts are down and since when, says the stores are unreachable (and since when) instead of failing, and takes any
 * free port when its default one is taken, but refuses a port asked for explicitly that is taken, naming it.
 */
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DASHBOARD_DEFAULT_PORT, type LocalDashboard, startDashboard } from '../../local/dashboard/dashboard-server';
import { LocalMetrics } from '../../local/dashboard/local-metrics';
import type { Endpoints, PartState } from '../../local/pipeline';
import { waitFor } from '../../local/services/process';
import { dashboardSections } from '../../shared/dashboard-layout';

/** Endpoints of a pipeline that is not there (nothing listens on port 9). */
const nowhere: Endpoints = {
  mysql: { host: '127.0.0.1', port: 9, user: 'x', password: 'x', database: 'shop' },
  postgres: { url: 'postgres://x@127.0.0.1:9/x' },
  replicaSchema: 'shop',
  aws: {
    kinesis: 'http://127.0.0.1:9',
    dynamodb: 'http://127.0.0.1:9',
    s3: 'http://127.0.0.1:9',
    stream: 's',
    bucket: 'b',
    checkpointTable: 't',
  },
};

const open: LocalDashboard[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

async function start(parts: () => PartState[], port?: number): Promise<LocalDashboard> {
  const d = await startDashboard({
    metrics: new LocalMetrics(),
    parts,
    endpoints: nowhere,
    endpointsFile: join(tmpdir(), `no-such-endpoints-${process.pid}.json`),
    stateDir: tmpdir(),
    shape: { streamApply: true, redshiftDelivery: true },
    storePollMs: 100,
    ...(port !== undefined ? { port } : {}),
  });
  open.push(d);
  return d;
}

interface State {
  sections: { title: string }[];
  parts: { name: string; up: boolean; since: number; lastSeenUp: number | null; lastOutage: unknown }[];
  stores: { up: boolean; error: { since: number; message: string } | null };
}
const state = async (d: LocalDashboard) => (await (await fetch(`${d.url}api/state`)).json()) as State;

describe('the local dashboard server', () => {
  it('serves the layout, the page and uPlot from node_modules on 127.0.0.1', async () => {
    const d = await start(() => [], 0);
    expect(new URL(d.url).hostname).toBe('127.0.0.1');
    expect((await state(d)).sections.map((s) => s.title)).toEqual(
      dashboardSections({ streamApply: true, redshiftDelivery: true }).map((s) => s.title),
    );
    const page = await fetch(d.url);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('<title>');
    expect((await fetch(`${d.url}vendor/uPlot.iife.min.js`)).status).toBe(200);
    expect((await fetch(`${d.url}../package.json`)).status).toBe(404);
    expect((await fetch(`${d.url}api/state`, { method: 'POST' })).status).toBe(405);
  });

  it('says a part is down since when and when it was last seen, and keeps its outage once it is back', async () => {
    let up = true;
    const d = await start(() => [{ name: 'producer', up, starts: 1 }], 0);
    const seen = (await state(d)).parts[0]!;
    expect(seen).toMatchObject({ name: 'producer', up: true, lastOutage: null });
    up = false;
    const down = await waitFor('the outage', async () => {
      const p = (await state(d)).parts[0]!;
      return p.up ? undefined : p;
    });
    expect(down.since).toBeGreaterThanOrEqual(seen.since);
    expect(down.lastSeenUp).not.toBeNull();
    up = true;
    const back = await waitFor('the recovery', async () => {
      const p = (await state(d)).parts[0]!;
      return p.up ? p : undefined;
    });
    expect(back.lastOutage).toEqual({ from: down.since, to: back.since });
  });

  it('says the stores are unreachable, and since when, instead of failing', async () => {
    const d = await start(() => [], 0);
    const stores = await waitFor('a failed reading', async () => {
      d.startReadingStores();
      const s = (await state(d)).stores;
      return s.error ? s : undefined;
    });
    expect(stores.up).toBe(false);
    expect(stores.error!.message).toMatch(/no local pipeline is running/);
    expect(stores.error!.since).toBeLessThanOrEqual(Date.now());
  });

  it('takes any free port when its default one is taken, and refuses an explicit port that is taken, naming it', async () => {
    const listen = (server: ReturnType<typeof createServer>, port: number) =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
      });
    const blocker = createServer();
    const blocked = await listen(blocker, 0);
    // The default port held too (by this test, or already by another local pipeline's dashboard).
    const holder = createServer();
    await listen(holder, DASHBOARD_DEFAULT_PORT).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') throw err;
    });
    try {
      await expect(start(() => [], blocked)).rejects.toThrow(`the dashboard cannot listen on 127.0.0.1:${blocked}`);
      const d = await start(() => []);
      const port = Number(new URL(d.url).port);
      expect(port).toBeGreaterThan(0);
      expect(port).not.toBe(DASHBOARD_DEFAULT_PORT);
      expect((await fetch(`${d.url}api/state`)).status).toBe(200);
    } finally {
      blocker.close();
      holder.close();
    }
  });
});
