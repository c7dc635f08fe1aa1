/**
 * Records written end to end into one buffer that is then transferred to another thread, not cloned: the encode
 * worker's answer to a batch (encode-worker-protocol.ts) and the main thread's hand-over to the sink thread
 * (threaded-kinesis-sink.ts).
 */

/** Room beyond the expected bytes, for a long record at the end. */
const EXTRA = 64 * 1024;
/** The most a buffer is sized ahead; a batch of larger records grows it as it goes. */
const MAX_AHEAD = 8 * 1024 * 1024;
/** Slack transferred with the records without a copy (it lives as long as the batch's last record). */
const MAX_SLACK = 1024 * 1024;

export class RecordBuffer {
  private buf: Buffer;
  /** Bytes written so far: where the next record starts. */
  used = 0;

  /**
   * @param expectedBytes what the records are expected to take (the previous batch's): the buffer is sized a quarter
   * above, at most 8 MiB ahead, so that it is rarely grown and can be sent whole
   */
  constructor(expectedBytes: number) {
    this.buf = Buffer.allocUnsafeSlow(Math.min(Math.ceil(expectedBytes * 1.25), MAX_AHEAD) + EXTRA);
  }

  /** Appends `head`'s bytes, then `text` as UTF-8; returns the bytes written. */
  write(head: Uint8Array | undefined, text?: string): number {
    const start = this.used;
    // At most 3 bytes per UTF-16 unit: room for the worst case rather than measuring the text first.
    const most = (head?.length ?? 0) + (text?.length ?? 0) * 3;
    if (this.used + most > this.buf.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.used + most));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    if (head) {
      this.buf.set(head, this.used);
      this.used += head.length;
    }
    if (text) this.used += this.buf.write(text, this.used);
    return this.used - start;
  }

  /**
   * The records' bytes (`[0, used)`) in an ArrayBuffer to transfer: the buffer itself (`allocUnsafeSlow` gives each
   * buffer an ArrayBuffer of its own, at offset 0), slack included, since copying the records out cost a sixth of the
   * encoding (200k rows of the benchmark alone: 0.28 against 0.23 s of CPU); copied tight when the slack passes 1 MiB
   * and half the records' bytes (after a batch of larger rows, or a buffer doubled for one).
   */
  transferable(): ArrayBuffer {
    const whole = this.buf.buffer as ArrayBuffer;
    return this.buf.length - this.used <= Math.max(this.used / 2, MAX_SLACK) ? whole : whole.slice(0, this.used);
  }
}
