/**
 * Maxwell's in-flight list, on its own (pure): each transaction boundary is queued with the sequence number of its
 * last event; once the sink has acknowledged every event below a sequence number, the boundaries before it are safe,
 * and the newest of them is where the checkpoint may move (never into a partly acknowledged transaction).
 */
import type { Boundary } from './binlog-source';
import type { SnapshotState } from './snapshot-progress';

export class InFlightCheckpoints {
  private readonly boundaries: { seq: number; b: Boundary; snapshot: SnapshotState | undefined }[] = [];
  /** The newest boundary whose events are all acknowledged: what the checkpoint may move to. */
  safe: Boundary | undefined;
  /** The snapshot progress as of `safe`. */
  safeSnapshot: SnapshotState | undefined;

  /** A boundary after the event numbered `lastSeq` (-1: before any event), with the snapshot progress as of it. */
  push(lastSeq: number, b: Boundary, snapshot: SnapshotState | undefined): void {
    this.boundaries.push({ seq: lastSeq, b, snapshot });
  }

  /** Every event numbered below `lowestUnacked` is acknowledged. */
  acknowledgedBelow(lowestUnacked: number): void {
    while (this.boundaries.length > 0 && this.boundaries[0]!.seq < lowestUnacked) {
      const done = this.boundaries.shift()!;
      this.safe = done.b;
      this.safeSnapshot = done.snapshot;
    }
  }

  /** Boundaries still waiting for acknowledgements. */
  get waiting(): number {
    return this.boundaries.length;
  }
}
