/** Human output (tables, progress bars, durations) and `--json`; pure formatting, no I/O. */

export function bar(fraction: number, width = 30): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(f * 100).toFixed(0).padStart(3)}%`;
}

export function duration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A plain text table: columns padded to their widest cell, numbers right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? count(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  return cells
    .map((r) =>
      r
        .map((c, i) => (numeric[i] ? String(c).padStart(widths[i]!) : String(c).padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export interface Output {
  readonly json: boolean;
  /** Human text to stdout (nothing in --json mode). */
  say(text: string): void;
  /** The machine-readable result (only in --json mode). */
  result(doc: unknown): void;
  /** Progress on stderr, redrawn in place on a terminal. */
  progress(line: string): void;
  /** Ends an in-place progress line. */
  done(): void;
}

export function createOutput(json: boolean, out = process.stdout, err = process.stderr): Output {
  let live = false;
  return {
    json,
    say: (text) => {
      if (!json) out.write(`${text}\n`);
    },
    result: (doc) => {
      if (json) out.write(`${JSON.stringify(doc)}\n`);
    },
    progress: (line) => {
      if (err.isTTY) {
        err.write(`\r${line.padEnd(100)}`);
        live = true;
      } else {
        err.write(`${line}\n`);
      }
    },
    done: () => {
      if (live) err.write('\n');
      live = false;
    },
  };
}
