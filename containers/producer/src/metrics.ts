/** CloudWatch Embedded Metric Format on stdout (the awslogs driver ships it; CloudWatch extracts the metrics). */
import { METRICS_NAMESPACE, PIPELINE_DIMENSION } from '../../../shared/metrics';

export type Unit = 'Count' | 'Bytes' | 'Milliseconds' | 'Seconds';

export class EmfMetrics {
  private readonly sums = new Map<string, { unit: Unit; value: number; max?: boolean }>();

  constructor(
    private readonly pipelineId: string,
    private readonly namespace = METRICS_NAMESPACE,
    private readonly write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  ) {}

  add(name: string, unit: Unit, value: number): void {
    const cur = this.sums.get(name);
    // In place: this runs once or twice per event on the hot path.
    if (cur && !cur.max) cur.value += value;
    else this.sums.set(name, { unit, value: (cur?.value ?? 0) + value });
  }

  /** Gauges keep the last value (seconds behind, checkpoint age). */
  gauge(name: string, unit: Unit, value: number): void {
    this.sums.set(name, { unit, value, max: true });
  }

  flush(now = Date.now()): void {
    if (this.sums.size === 0) return;
    const doc: Record<string, unknown> = {
      _aws: {
        Timestamp: now,
        CloudWatchMetrics: [
          {
            Namespace: this.namespace,
            Dimensions: [[PIPELINE_DIMENSION]],
            Metrics: [...this.sums.entries()].map(([Name, m]) => ({ Name, Unit: m.unit })),
          },
        ],
      },
      [PIPELINE_DIMENSION]: this.pipelineId,
    };
    for (const [name, m] of this.sums) doc[name] = m.value;
    this.write(JSON.stringify(doc));
    this.sums.clear();
  }
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
let lowestWritten = LOG_LEVELS.indexOf('info');

/** Drops log lines below `level` from now on: main.ts sets it once from LOG_LEVEL (config.ts, default info). */
export function setLogLevel(level: LogLevel): void {
  lowestWritten = LOG_LEVELS.indexOf(level);
}

/** One JSON line on stdout (the awslogs driver ships it), unless `level` is below the configured LOG_LEVEL. */
export function log(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
  if (LOG_LEVELS.indexOf(level) < lowestWritten) return;
  process.stdout.write(
    `${JSON.stringify({ level: level.toUpperCase(), timestamp: new Date().toISOString(), service: 'producer', message, ...fields })}\n`,
  );
}
