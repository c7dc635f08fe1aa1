/**
 * What the local dashboard reads from the stores rather than from the processes' lines: the status `npx cdc status`
 * computes (cli/src/commands/status.ts: snapshot and backfill jobs with their ETA, per-table rows captured into the
 * raw changelog and applied by the merge, tables set aside with their reason), source and replica row counts, and how
 * far behind the stream its two readers are (the Firehose stand-in and the stream apply, from their saved shard
 * positions: the age of the oldest record each has not read yet, which is what Kinesis' iterator age measures).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { collectStatus, type StatusReport } from '../../cli/src/commands/status';
import type { Target } from '../../cli/src/target';
import {
  FIREHOSE_STATE_FILE_NAME,
  MERGE_QUEUE_STATE_FILE_NAMES,
  retryQueueFile,
  STREAM_APPLY_STATE_FILE_NAME,
} from '../firehose-dead-letters';
import type { PendingRetry } from '../merge-queue';
import type { Endpoints } from '../pipeline';
import { mergeBacklogAgeS } from './local-metrics';

export interface TableCounts {
  readonly table: string;
  readonly sourceRows: number | null;
  readonly replicaRows: number | null;
}

export interface StoreReading {
  readonly at: number;
  readonly status: StatusReport;
  readonly counts: readonly TableCounts[];
  /** Age (ms) of the oldest record each reader has not read; 0 when it has read everything. */
  readonly readerAgeMs: { readonly firehose: number | null; readonly streamApply: number | null };
  /** Seconds the oldest object waiting in a local merge queue has waited (SQS' ApproximateAgeOfOldestMessage). */
  readonly mergeBacklogAgeS: number;
}

/** Reads a reader's saved shard positions (`{shardId: sequenceNumber}`); none yet: an empty object. */
function positions(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch {
    return {}; // being written: the next reading has it
  }
}

/** The age of the oldest record after each shard's saved position, the largest over the shards. */
export async function oldestUnreadAgeMs(
  kinesis: KinesisClient,
  stream: string,
  saved: Record<string, string>,
  now: number,
): Promise<number> {
  const shards = (await kinesis.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  let age = 0;
  for (const s of shards) {
    const after = saved[s.ShardId!];
    const it = await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: s.ShardId!,
        ...(after
          ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }
          : { ShardIteratorType: 'TRIM_HORIZON' }),
      }),
    );
    const res = await kinesis.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator!, Limit: 1 }));
    const arrived = res.Records?.[0]?.ApproximateArrivalTimestamp?.getTime();
    if (arrived !== undefined) age = Math.max(age, now - arrived);
  }
  return age;
}

/** Reads the stores on demand; keeps its connections between readings. */
export class StoreReader {
  private readonly source: mysql.Pool;
  private readonly replica: pg.Pool;

  constructor(
    private readonly ep: Endpoints,
    private readonly target: Target,
    private readonly kinesis: KinesisClient,
    private readonly stateDir: string,
  ) {
    this.source = mysql.createPool({ ...ep.mysql, connectionLimit: 1 });
    this.replica = new pg.Pool({ connectionString: ep.postgres.url, max: 1 });
    this.replica.on('error', () => undefined);
  }

  async read(now = Date.now()): Promise<StoreReading> {
    const status = await collectStatus(this.target, now);
    const [tables] = await this.source.query(
      'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? ORDER BY 1',
      [this.ep.mysql.database],
    );
    const counts: TableCounts[] = [];
    for (const { t } of tables as { t: string }[]) {
      const [[src]] = (await this.source
        .query(`SELECT count(*) AS n FROM \`${this.ep.mysql.database}\`.\`${t}\``)
        .catch(() => [[{ n: null }]])) as unknown as [[{ n: number | null }]];
      const rep = await this.replica
        .query(`SELECT count(*)::int AS n FROM "${this.ep.replicaSchema}"."${t}"`)
        .catch(() => ({ rows: [{ n: null }] }));
      counts.push({
        table: `${this.ep.mysql.database}.${t}`,
        sourceRows: src.n === null ? null : Number(src.n),
        replicaRows: rep.rows[0]?.n ?? null,
      });
    }
    const age = (file: string) =>
      oldestUnreadAgeMs(this.kinesis, this.ep.aws.stream, positions(join(this.stateDir, file)), now).catch(() => null);
    const queues = MERGE_QUEUE_STATE_FILE_NAMES.map((name) => {
      const file = retryQueueFile(join(this.stateDir, name));
      try {
        return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as PendingRetry[]) : [];
      } catch {
        return []; // being replaced: the next reading has it
      }
    });
    return {
      at: now,
      status,
      counts,
      mergeBacklogAgeS: mergeBacklogAgeS(queues, now),
      readerAgeMs: {
        firehose: await age(FIREHOSE_STATE_FILE_NAME),
        streamApply: await age(STREAM_APPLY_STATE_FILE_NAME),
      },
    };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.source.end(), this.replica.end(), this.target.close()]);
  }
}
