/**
 * The local dashboard's time series, from the pipeline's own voice: the producer's EMF lines (the documents CloudWatch
 * extracts its metrics from in AWS), the JSON event lines of the Firehose stand-in and the stream apply
 * (local/firehose-main.ts, local/stream-apply-main.ts), and gauges the dashboard reads from the stores. Every series
 * is keyed by the CloudWatch metric it stands for (`<source>:<name>` of shared/dashboard-layout.ts), so the page draws
 * the CloudWatch dashboard's sections. Pure: no I/O, time passed in.
 */
import type { DashboardMetric, MetricSource } from '../../shared/dashboard-layout';
import { MergeMetric, ProducerMetric } from '../../shared/metrics';
import type { PendingRetry } from '../merge-queue';
import type { PartName } from '../pipeline';

/** The series' resolution. CloudWatch's is a minute; locally a run is watched for minutes, so seconds. */
export const BUCKET_MS = 2000;
/** How much history the page can show. */
export const KEEP_MS = 15 * 60_000;
/** Percentiles are taken over this trailing window (one merged batch per shard and second is a thin sample). */
export const PERCENTILE_WINDOW_MS = 30_000;

export const metricKey = (source: MetricSource, name: string): string => `${source}:${name}`;

/** Set aside by a part, with its reason: a poison batch, a batch out of retries, a failed delivery. */
export interface SetAsideEntry {
  readonly at: number;
  readonly part: PartName;
  /** What it was: `poison batch` (set aside at once) or `batch out of retries` (the on-failure destination). */
  readonly kind: string;
  readonly table: string | null;
  /** Where it was kept (an S3 key of the lake bucket). */
  readonly key: string | null;
  readonly reason: string;
}

interface Bucket {
  sum: number;
  min: number;
  max: number;
  values: number[];
}

export interface SeriesData {
  /** Bucket start times (ms). */
  readonly t: number[];
  /** The statistic per bucket; null where nothing was reported (a gap in the chart). */
  readonly v: (number | null)[];
}

/** The metrics each part reports through its lines, and how a line maps to them. */
export class LocalMetrics {
  private readonly buckets = new Map<string, Map<number, Bucket>>();
  readonly setAside: SetAsideEntry[] = [];
  /** When each part last said anything (its last line). */
  readonly lastLineAt = new Map<PartName, number>();
  /** The newest error line per part (message and time). */
  readonly lastError = new Map<PartName, { at: number; message: string }>();

  constructor(
    private readonly bucketMs = BUCKET_MS,
    private readonly keepMs = KEEP_MS,
  ) {}

  /** One observation of a metric (a count, a gauge reading, a duration). */
  record(key: string, value: number, at: number): void {
    if (!Number.isFinite(value)) return;
    let series = this.buckets.get(key);
    if (!series) {
      series = new Map();
      this.buckets.set(key, series);
    }
    const start = Math.floor(at / this.bucketMs) * this.bucketMs;
    const b = series.get(start);
    if (b) {
      b.sum += value;
      b.min = Math.min(b.min, value);
      b.max = Math.max(b.max, value);
      b.values.push(value);
    } else series.set(start, { sum: value, min: value, max: value, values: [value] });
  }

  /** Drops buckets older than the history kept. */
  prune(now: number): void {
    for (const series of this.buckets.values())
      for (const start of series.keys()) if (start < now - this.keepMs) series.delete(start);
  }

  /** Reads one stdout line of a part: the producer's EMF documents, the merging processes' JSON events. */
  ingest(part: PartName, line: string, at: number): void {
    this.lastLineAt.set(part, at);
    if (!line.startsWith('{')) return;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (part === 'producer') this.ingestProducer(doc, at);
    else this.ingestMergeEvent(part, doc, at);
  }

  private ingestProducer(doc: Record<string, unknown>, at: number): void {
    const emf = (doc._aws as { CloudWatchMetrics?: { Metrics?: { Name: string }[] }[] } | undefined)?.CloudWatchMetrics;
    if (!emf) {
      if (doc.level === 'ERROR')
        this.lastError.set('producer', {
          at,
          message: `${doc.message ?? 'error'}${doc.error ? `: ${doc.error}` : ''}`,
        });
      return;
    }
    for (const { Metrics = [] } of emf)
      for (const { Name } of Metrics) {
        const value = Number(doc[Name]);
        this.record(metricKey('producer', Name), value, at);
        // The producer counts the records Kinesis throttled: the stream's PutRecords.ThrottledRecords, locally.
        if (Name === ProducerMetric.PutThrottles)
          this.record(metricKey('stream', 'PutRecords.ThrottledRecords'), value, at);
      }
  }

  private ingestMergeEvent(part: PartName, doc: Record<string, unknown>, at: number): void {
    // The lake path's merges locally: the Firehose stand-in merging its objects, and the stream apply's queue of
    // handed-off objects (the merge Lambda's SQS queue in AWS).
    const path: MetricSource = part === 'stream-apply' && doc.event === 'applied' ? 'streamApply' : 'merge';
    const commitMs = Number(doc.maxCommitMs);
    switch (doc.event) {
      case 'applied':
      case 'merged':
        this.record(metricKey(path, MergeMetric.RowsApplied), Number(doc.rows ?? 0), at);
        // As the merge reports it (lambdas/merge/runtime.ts): now − the newest commit time applied.
        if (Number.isFinite(commitMs))
          this.record(metricKey(path, MergeMetric.ReplicaFreshness), Math.max(0, (at - commitMs) / 1000), at);
        if (Number.isFinite(Number(doc.durationMs)))
          this.record(metricKey(path, 'Duration'), Number(doc.durationMs), at);
        break;
      case 'handed-off':
        this.record(metricKey('streamApply', MergeMetric.HandedOff), 1, at);
        break;
      case 'set-aside': {
        const outOfRetries = doc.condition === 'RetryAttemptsExhausted';
        if (outOfRetries)
          this.record(
            metricKey('streamApply', 'OnFailureDestinationDeliveredEventCount'),
            Number(doc.records ?? 1),
            at,
          );
        else
          this.record(metricKey(part === 'stream-apply' ? 'streamApply' : 'merge', MergeMetric.PoisonBatches), 1, at);
        this.setAside.push({
          at,
          part,
          kind: outOfRetries ? 'batch out of retries' : 'poison batch',
          table: typeof doc.table === 'string' ? doc.table : null,
          key: typeof doc.key === 'string' ? doc.key : null,
          reason: String(doc.reason ?? 'no reason given'),
        });
        if (this.setAside.length > 100) this.setAside.shift();
        break;
      }
      case 'error':
      case 'fatal': {
        const message = String(doc.error ?? 'error');
        this.lastError.set(part, { at, message });
        if (part === 'stream-apply')
          this.record(metricKey('streamApply', doc.event === 'fatal' ? 'Errors' : MergeMetric.Errors), 1, at);
        // The stand-in delivers and loads the raw changelog in one step: a failure is a failed delivery.
        else {
          this.record(metricKey('delivery', 'DeliveryToS3.Success'), 0, at);
          this.record(metricKey('delivery', 'DeliveryToRedshift.Success'), 0, at);
        }
        break;
      }
    }
  }

  /** Whether anything was ever recorded for this metric (the page says "not measured locally" otherwise). */
  has(metric: DashboardMetric): boolean {
    return this.buckets.has(metricKey(metric.source, metric.name));
  }

  /**
   * The metric's statistic per bucket from `from` to `to`: Sum as a rate per second (rows/s), Maximum and Minimum
   * per bucket, pNN over the trailing PERCENTILE_WINDOW_MS. Buckets without a report are null, except for sums
   * (nothing counted is 0).
   */
  series(metric: DashboardMetric, from: number, to: number): SeriesData {
    const buckets = this.buckets.get(metricKey(metric.source, metric.name)) ?? new Map<number, Bucket>();
    const t: number[] = [];
    const v: (number | null)[] = [];
    const first = Math.floor(from / this.bucketMs) * this.bucketMs;
    const pct = /^p(\d+(?:\.\d+)?)$/.exec(metric.statistic);
    for (let start = first; start <= to; start += this.bucketMs) {
      t.push(start);
      const b = buckets.get(start);
      if (metric.statistic === 'Sum') v.push((b?.sum ?? 0) / (this.bucketMs / 1000));
      else if (metric.statistic === 'Maximum') v.push(b ? b.max : null);
      else if (metric.statistic === 'Minimum') v.push(b ? b.min : null);
      else if (pct) {
        const values: number[] = [];
        for (let s = start - PERCENTILE_WINDOW_MS + this.bucketMs; s <= start; s += this.bucketMs)
          values.push(...(buckets.get(s)?.values ?? []));
        v.push(b ? percentile(values, Number(pct[1])) : null);
      } else v.push(b ? b.sum / b.values.length : null);
    }
    return { t, v };
  }
}

/** The nearest-rank percentile (CloudWatch's pNN over the datapoints of a period). */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * The age of the oldest object waiting in the local merge queues (saved as `<state file>.retrying`): since it was
 * queued (`nextAt` of one not attempted yet) or first failed. 0 when none waits.
 */
export function mergeBacklogAgeS(queues: readonly (readonly PendingRetry[])[], now: number): number {
  const since = queues.flat().map((r) => (r.attempts > 0 ? (r.firstFailedAt ?? r.nextAt) : r.nextAt));
  return since.length ? Math.max(0, (now - Math.min(...since)) / 1000) : 0;
}
