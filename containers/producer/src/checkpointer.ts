/**
 * Saves how far the producer got: the newest boundary whose events are all in Kinesis (`ProducerCore.safe`), the
 * snapshot progress as of it, and the capture rules; and, before that, the quarantined tables (a checkpoint must
 * never pass an undecodable event that the saved quarantine list does not account for). Saves only what changed.
 */
import type { CheckpointStore } from './checkpoint-store';
import type { ProducerCore } from './producer';
import { serializeState } from './snapshot-progress';
import type { TableQuarantine } from './table-quarantine';

export interface CheckpointerProps {
  readonly store: CheckpointStore;
  readonly core: ProducerCore;
  readonly quarantine: TableQuarantine;
  /** The capture rules in force (JSON), saved with each checkpoint: a change of them starts snapshots of added tables. */
  readonly captureRules: string;
  /** @default Date.now */
  readonly now?: () => number;
}

export class Checkpointer {
  /** When the checkpoint was last saved (or found unchanged). */
  savedAt: number;
  private lastSaved = '';
  private quarantineSaved = true;
  private readonly now: () => number;

  constructor(private readonly props: CheckpointerProps) {
    this.now = props.now ?? Date.now;
    this.savedAt = this.now();
  }

  /** The quarantine list changed: it is saved before the next checkpoint. */
  quarantineChanged(): void {
    this.quarantineSaved = false;
  }

  async saveQuarantine(): Promise<void> {
    if (this.quarantineSaved) return;
    const { quarantine, store } = this.props;
    const text = quarantine.serialize();
    await store.saveQuarantine(quarantine.list);
    // Changed while saving (another table set aside): saved again next time.
    this.quarantineSaved = text === quarantine.serialize();
  }

  async save(): Promise<void> {
    await this.saveQuarantine();
    const { core, store } = this.props;
    const safe = core.safe;
    if (!safe) return;
    const key = `${safe.file}:${safe.pos}:${safe.gtid}`;
    if (key !== this.lastSaved) {
      await store.save({
        file: safe.file,
        pos: safe.pos,
        gtid: safe.gtid,
        commitMs: safe.commitMs,
        captureRules: this.props.captureRules,
        ...(core.safeSnapshot ? { snapshot: serializeState(core.safeSnapshot) } : {}),
      });
      this.lastSaved = key;
    }
    this.savedAt = this.now();
  }

  /** Seconds since the checkpoint was last saved. */
  ageSeconds(): number {
    return (this.now() - this.savedAt) / 1000;
  }
}
