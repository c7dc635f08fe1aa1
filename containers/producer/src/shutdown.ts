/**
 * The producer's clean stop (SIGTERM, or an operator's `npx cdc set-position` read while running): stop reading,
 * drain every event in flight, then save the checkpoint (or move it to the requested position, the quarantine list
 * saved first), release the lease. Fatal errors never come here: they exit without checkpointing past unacknowledged
 * events (main.ts `fail`).
 */
import type { CheckpointStore, PositionRequest } from './checkpoint-store';
import type { Checkpointer } from './checkpointer';
import type { log as Log } from './metrics';
import type { ProducerCore } from './producer';
import type { Snapshotter } from './snapshotter';

export interface DrainParts {
  readonly source: { pause(): void; stop(): void };
  readonly snapshotter: Pick<Snapshotter, 'stop'>;
  readonly core: Pick<ProducerCore, 'drain' | 'safe'>;
  readonly checkpointer: Pick<Checkpointer, 'save' | 'saveQuarantine'>;
  readonly store: Pick<CheckpointStore, 'applyPositionRequest' | 'releaseLease'>;
  readonly log: typeof Log;
}

/** How long a drain may take before the stop counts as failed. */
export const DRAIN_TIMEOUT_MS = 60_000;

/** Stops reading, drains, saves (or moves) the checkpoint and releases the lease; throws what failed on the way. */
export async function drainAndRelease(p: DrainParts, moveTo?: PositionRequest): Promise<void> {
  p.source.pause();
  p.source.stop();
  await p.snapshotter.stop();
  await p.core.drain();
  if (moveTo) {
    await p.checkpointer.saveQuarantine(); // a later position must not lose a table set aside before it
    await p.store.applyPositionRequest(moveTo);
    p.log('info', 'moved to the position an operator requested; restarting from there', { request: moveTo });
  } else {
    await p.checkpointer.save();
  }
  await p.store.releaseLease();
  p.log('info', 'stopped cleanly', { checkpoint: p.core.safe ?? null });
}
