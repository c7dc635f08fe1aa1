/**
 * CloudWatch metric names shared by the runtimes (which emit them as EMF) and the CDK monitoring construct (which
 * alarms on them). Every metric carries the dimension `Pipeline` (the pipeline id, e.g. `dev`).
 */
export const METRICS_NAMESPACE = 'MysqlRedshiftCdc';
export const PIPELINE_DIMENSION = 'Pipeline';

export const ProducerMetric = {
  RowsCaptured: 'RowsCaptured', // Count
  BytesWritten: 'BytesWritten', // Bytes
  PutLatency: 'PutRecordsLatency', // Milliseconds
  PutRetries: 'PutRecordsRetries', // Count
  PutThrottles: 'PutRecordsThrottles', // Count
  SecondsBehindSource: 'SecondsBehindSource', // Seconds
  CheckpointAge: 'CheckpointAgeSeconds', // Seconds
  Errors: 'ProducerErrors', // Count
  Starts: 'ProducerStarts', // Count (each process start; > 1 per hour means restarts)
  BinlogPurged: 'BinlogPurged', // Count (the needed binlog is gone: fatal)
  SnapshotRows: 'SnapshotRows', // Count (read events emitted by snapshots and backfills)
  SnapshotRowsSkipped: 'SnapshotRowsSkipped', // Count (chunk rows changed while read: the binlog has a newer version)
  SnapshotChunks: 'SnapshotChunks', // Count (chunks finished: one low/high watermark pair each)
  SnapshotRowsRemaining: 'SnapshotRowsRemaining', // Count (gauge: estimated rows left in unfinished jobs)
  SnapshotJobsPending: 'SnapshotJobsPending', // Count (gauge: tables still to snapshot or backfill)
  SnapshotEtaSeconds: 'SnapshotEtaSeconds', // Seconds (gauge: time left for the running job at its rate so far)
  TableResyncs: 'TableResyncs', // Count (a replica rebuilt from a backfill: incompatible type change, rename, npx cdc resync)
  TableEvents: 'TableEvents', // Count (table-level events emitted: truncate, drop, rename, alter, resync, range)
  UnknownTypeValues: 'UnknownTypeValues', // Count (values of a column type the type table does not know, sent as text)
  TablesQuarantined: 'TablesQuarantined', // Count (gauge: tables set aside because their rows cannot be decoded)
} as const;

export const MergeMetric = {
  RowsApplied: 'RowsApplied', // Count (also per Table and Operation)
  BatchLatency: 'MergeBatchLatency', // Milliseconds
  ReplicaFreshness: 'ReplicaFreshnessSeconds', // Seconds: now − newest commit time applied
  Retries: 'MergeRetries', // Count
  PoisonBatches: 'PoisonBatches', // Count (sent to the dead-letter queue)
  Errors: 'MergeErrors', // Count
  ValuesTruncated: 'ValuesTruncated', // Count (text values cut to fit a Redshift column, OVERSIZE_VALUES=truncate)
  ValuesNulled: 'ValuesNulled', // Count (dates no warehouse holds, staged as NULL: zero, partial zero, invalid)
  RowsSkipped: 'RowsSkipped', // Count (row images not merged: their primary key holds a value the warehouse cannot hold)
  HandedOff: 'HandedOff', // Count (a table's events of a stream batch handed to the lake path's queue: its merge failed)
} as const;
