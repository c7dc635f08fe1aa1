/**
 * The local dashboard: the CloudWatch dashboard's twin for `npm run local`, served on loopback only. The page
 * (local/dashboard/page/, plain HTML + an ES module, uPlot served from node_modules: no CDN, no build step) polls
 * `/api/state`, which holds the shared layout's sections (shared/dashboard-layout.ts) filled from the pipeline's own
 * metrics (local-metrics.ts), what runs and what is down, and what the stores say (store-readings.ts).
 * It lives in the supervisor (local/main.ts), so it keeps answering while the producer or the merges restart.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { resolveTarget } from '../../cli/src/target';
import { type DashboardShape, dashboardSections } from '../../shared/dashboard-layout';
import type { Endpoints, PartName, PartState } from '../pipeline';
import { localAwsClientConfig } from '../services/aws-config';
import { BUCKET_MS, KEEP_MS, type LocalMetrics, metricKey, type SetAsideEntry } from './local-metrics';
import { StoreReader, type StoreReading } from './store-readings';

/** The address the dashboard tries first; when taken, any free port (the URL is printed and in endpoints.json). */
export const DASHBOARD_DEFAULT_PORT = 4300;
/** Only this interface: the page shows connection details of the local servers. */
export const DASHBOARD_HOST = '127.0.0.1';

export interface DashboardProps {
  readonly metrics: LocalMetrics;
  /** The pipeline's processes now (Pipeline.parts). */
  readonly parts: () => readonly PartState[];
  readonly endpoints: Endpoints;
  /** The endpoints file `npx cdc status` reads: the dashboard reads the stores as the CLI does. */
  readonly endpointsFile: string;
  /** The local state folder (the stream readers' saved positions). */
  readonly stateDir: string;
  readonly shape: DashboardShape;
  /** 0: any free port. @default DASHBOARD_DEFAULT_PORT, or any free port when it is taken */
  readonly port?: number;
  /**
   * How often the stores are read, at least: a reading that takes long (the raw changelog grows) waits four times its
   * duration before the next, so the dashboard never takes more than a fifth of the warehouse's time. @default 3000
   */
  readonly storePollMs?: number;
}

export interface LocalDashboard {
  readonly url: string;
  /** Starts reading the stores (once the endpoints file the CLI's status reads exists). */
  startReadingStores(): void;
  close(): Promise<void>;
}

/** A part's state over time: when it changed, when it was last seen running. */
interface PartHistory {
  up: boolean;
  since: number;
  lastSeenUp: number | null;
  starts: number;
  /** The last time it was down, once it is up again (a restart seen after the fact). */
  lastOutage: { from: number; to: number } | null;
}

const PAGE_DIR = join(import.meta.dirname, 'page');
const UPLOT_DIR = join(import.meta.dirname, '..', '..', 'node_modules', 'uplot', 'dist');
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: join(PAGE_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: join(PAGE_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: join(PAGE_DIR, 'style.css'), type: 'text/css; charset=utf-8' },
  '/vendor/uPlot.iife.min.js': { file: join(UPLOT_DIR, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/uPlot.min.css': { file: join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/** Metrics no local process reports, and why (the page says so instead of drawing an empty line). */
const NOT_LOCAL: Record<string, string> = {
  'stream:IncomingRecords': 'kinesalite keeps no metrics',
  'delivery:PartitionCount': 'the stand-in has no partition quota',
  'streamApply:DroppedEventCount': 'the stand-in never drops records (no maximum record age)',
  'merge:Duration': 'not timed locally',
};

export async function startDashboard(props: DashboardProps): Promise<LocalDashboard> {
  const { metrics } = props;
  const sections = dashboardSections(props.shape);
  const startedAt = Date.now();
  const history = new Map<PartName, PartHistory>();
  const samplePartsNow = () => {
    const now = Date.now();
    for (const p of props.parts()) {
      const h = history.get(p.name);
      if (!h || h.up !== p.up)
        history.set(p.name, {
          up: p.up,
          since: now,
          lastSeenUp: p.up ? now : (h?.lastSeenUp ?? null),
          starts: p.starts,
          // Down after having run (not the wait before its first start read the binlog).
          lastOutage:
            h && !h.up && p.up && h.lastSeenUp !== null ? { from: h.since, to: now } : (h?.lastOutage ?? null),
        });
      else {
        h.starts = p.starts;
        if (p.up) h.lastSeenUp = now;
      }
      if (p.name === 'producer') metrics.record(metricKey('producerTask', 'RunningTaskCount'), p.up ? 1 : 0, now);
      if (p.name === 'firehose' && p.up) {
        // A running stand-in that reported no failure in the bucket delivered (Firehose's Success is 1).
        metrics.record(metricKey('delivery', 'DeliveryToS3.Success'), 1, now);
        metrics.record(metricKey('delivery', 'DeliveryToRedshift.Success'), 1, now);
      }
    }
    metrics.prune(now);
  };
  samplePartsNow();
  const partsTimer = setInterval(samplePartsNow, 1000);

  let reader: StoreReader | undefined;
  let reading: StoreReading | undefined;
  let previous: StoreReading | undefined;
  let storeError: { since: number; message: string } | undefined;
  let storeTimer: NodeJS.Timeout | undefined;
  let readMs = 0;
  let closed = false;
  const kinesis = new KinesisClient(localAwsClientConfig(props.endpoints.aws.kinesis));
  const readStores = async () => {
    const started = Date.now();
    try {
      reader ??= new StoreReader(
        props.endpoints,
        resolveTarget({ endpoints: props.endpointsFile }, {}),
        kinesis,
        props.stateDir,
      );
      const next = await reader.read();
      previous = reading;
      reading = next;
      storeError = undefined;
      const at = next.at;
      const { firehose, streamApply } = next.readerAgeMs;
      if (firehose !== null) metrics.record(metricKey('delivery', 'DeliveryToS3.DataFreshness'), firehose / 1000, at);
      if (streamApply !== null) metrics.record(metricKey('streamApply', 'IteratorAge'), streamApply, at);
      const slowest = Math.max(firehose ?? 0, props.shape.streamApply ? (streamApply ?? 0) : 0);
      metrics.record(metricKey('stream', 'GetRecords.IteratorAgeMilliseconds'), slowest, at);
      const setAside = next.status.tables.reduce((n, t) => n + (t.failing?.setAside ?? 0), 0);
      metrics.record(metricKey('lake', 'ApproximateNumberOfMessagesVisible'), setAside, at);
      metrics.record(metricKey('lake', 'ApproximateAgeOfOldestMessage'), next.mergeBacklogAgeS, at);
      if (previous) {
        // Rows the stand-in loaded into the raw changelog since the last reading (what it delivered).
        const loaded = (r: StoreReading) => r.status.tables.reduce((n, t) => n + t.captured, 0);
        const delivered = Math.max(0, loaded(next) - loaded(previous));
        metrics.record(metricKey('delivery', 'DeliveryToS3.Records'), delivered, at);
        metrics.record(metricKey('delivery', 'DeliveryToRedshift.Records'), delivered, at);
      }
    } catch (err) {
      storeError ??= { since: Date.now(), message: (err as Error).message };
      storeError.message = (err as Error).message;
    } finally {
      readMs = Date.now() - started;
      if (!closed) storeTimer = setTimeout(() => void readStores(), Math.max(props.storePollMs ?? 3000, 4 * readMs));
    }
  };

  const state = (minutes: number) => {
    const now = Date.now();
    // Not before the dashboard started: a run a minute old fills its charts rather than their last fifth.
    const from = Math.max(startedAt, now - Math.min(KEEP_MS, minutes * 60_000));
    const bucketSeconds = BUCKET_MS / 1000;
    const sectionData = sections.map((s) => {
      let t: number[] = [];
      const series = s.metrics.map((m) => {
        const key = metricKey(m.source, m.name);
        // Up to the last whole bucket: the one filling now would show a rate falling towards 0.
        const data = metrics.series(m, from, now - BUCKET_MS);
        t = data.t;
        return {
          name: m.name,
          label: m.label ?? `${m.name} (${m.statistic === 'Sum' ? 'per s' : m.statistic})`,
          statistic: m.statistic,
          axis: m.axis,
          source: m.source,
          // A count nobody reported yet is 0 (no errors, no poison batches): drawn, as CloudWatch draws a FILLed sum.
          measured: metrics.has(m) || (m.statistic === 'Sum' && !NOT_LOCAL[key]),
          notLocal: NOT_LOCAL[key] ?? null,
          values: data.v,
        };
      });
      return { id: s.id, title: s.title, t, series };
    });
    const dt = reading && previous ? Math.max(1, (reading.at - previous.at) / 1000) : undefined;
    const tables = (reading?.counts ?? []).map((c) => {
      const now = reading?.status.tables.find((t) => t.table === c.table);
      const before = previous?.status.tables.find((t) => t.table === c.table);
      return {
        ...c,
        captured: now?.captured ?? 0,
        applied: now?.applied ?? 0,
        capturedPerS: dt && now ? Math.max(0, (now.captured - (before?.captured ?? 0)) / dt) : null,
        appliedPerS: dt && now ? Math.max(0, (now.applied - (before?.applied ?? 0)) / dt) : null,
        newestCommitApplied: now?.newestCommitApplied ?? null,
        failing: now?.failing ?? null,
      };
    });
    const setAside: SetAsideEntry[] = [...metrics.setAside].reverse();
    return {
      at: now,
      bucketSeconds,
      sections: sectionData,
      parts: [...history.entries()].map(([name, h]) => ({
        name,
        up: h.up,
        since: h.since,
        lastSeenUp: h.lastSeenUp,
        lastLine: metrics.lastLineAt.get(name) ?? null,
        starts: h.starts,
        lastOutage: h.lastOutage,
        lastError: metrics.lastError.get(name) ?? null,
      })),
      stores: {
        up: !storeError && !!reading,
        readAt: reading?.at ?? null,
        readMs,
        error: storeError ?? null,
      },
      producer: reading
        ? {
            state: reading.status.producer.state,
            secondsBehind: reading.status.producer.secondsBehind,
            quarantined: reading.status.producer.quarantined,
          }
        : null,
      snapshots: reading?.status.snapshots ?? [],
      tables,
      failingTables: tables.filter((t) => t.failing),
      setAside,
    };
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // A page of another origin must not read this one through DNS rebinding: answer only to loopback host names.
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end(`host ${JSON.stringify(host)} not served\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    try {
      if (url.pathname === '/api/state') {
        const minutes = Number(url.searchParams.get('minutes') ?? 5);
        const body = JSON.stringify(state(Number.isFinite(minutes) && minutes > 0 ? minutes : 5));
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
        return;
      }
      if (url.pathname === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      const f = FILES[url.pathname];
      if (!f) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      res
        .writeHead(200, {
          'content-type': f.type,
          'cache-control': 'no-cache',
          // Everything the page loads comes from this server.
          'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'",
        })
        .end(readFileSync(f.file));
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
    }
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, DASHBOARD_HOST, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  const wanted = props.port ?? DASHBOARD_DEFAULT_PORT;
  let port: number;
  try {
    port = await listen(wanted);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || props.port !== undefined) {
      clearInterval(partsTimer);
      throw new Error(`the dashboard cannot listen on ${DASHBOARD_HOST}:${wanted}: ${(err as Error).message}`);
    }
    port = await listen(0);
  }
  return {
    url: `http://${DASHBOARD_HOST}:${port}/`,
    startReadingStores: () => void readStores(),
    async close() {
      closed = true;
      clearInterval(partsTimer);
      clearTimeout(storeTimer);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await reader?.close();
      kinesis.destroy();
    },
  };
}
