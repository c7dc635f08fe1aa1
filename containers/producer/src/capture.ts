/**
 * How the binlog source feeds the snapshotter and the producer core: the one wiring main.ts, the snapshot benchmark
 * and the snapshot-window test all run. Every row is first shown to the snapshotter (a key changed inside an open
 * chunk window is dropped from that chunk), then emitted; signal-table rows carry watermarks and backfill requests.
 */
import type { BinlogSource } from './binlog-source';
import type { ProducerCore } from './producer';
import { parseSignal } from './signal-table';
import type { Snapshotter } from './snapshotter';

export function connectCapture(
  source: BinlogSource,
  snapshotter: Snapshotter,
  core: ProducerCore,
  fail: (err: Error) => void,
): void {
  const guarded =
    <T>(handle: (value: T) => void) =>
    (value: T) => {
      try {
        handle(value);
      } catch (err) {
        fail(err as Error);
      }
    };
  source.on(
    'row',
    guarded((c) => {
      snapshotter.observe(c);
      core.onRow(c);
    }),
  );
  source.on(
    'signal',
    guarded((s) => snapshotter.onSignal(parseSignal(s.row), s)),
  );
  source.on('ddl', (q) => snapshotter.onDdl(q));
  source.on('commit', (b) => core.onCommit(b));
  source.on('error', (err) => fail(err));
}
