import { createHash } from 'node:crypto';
import type { RowImage } from '../../../shared/change-event';

/** `shop.*`, `*.orders`, `shop.order_?` → RegExp over `db.table` (or `db.table.column`). */
function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[^.]*')
    .replace(/\?/g, '[^.]');
  return new RegExp(`^${escaped}$`, 'i');
}

export interface CaptureRules {
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly excludeColumns: readonly string[];
  readonly hashColumns: readonly string[];
  readonly maskColumns: readonly string[];
}

/**
 * Which tables are captured and what happens to their columns before anything leaves the producer: excluded
 * columns are removed, hashed columns become the SHA-256 hex of their text, masked columns become '****'.
 */
export class TableFilter {
  private readonly include: RegExp[];
  private readonly exclude: RegExp[];
  private readonly dropCols: RegExp[];
  private readonly hashCols: RegExp[];
  private readonly maskCols: RegExp[];

  constructor(rules: CaptureRules) {
    this.include = (rules.include.length > 0 ? rules.include : ['*.*']).map(globToRegExp);
    this.exclude = rules.exclude.map(globToRegExp);
    this.dropCols = rules.excludeColumns.map(globToRegExp);
    this.hashCols = rules.hashColumns.map(globToRegExp);
    this.maskCols = rules.maskColumns.map(globToRegExp);
  }

  captures(db: string, table: string): boolean {
    const name = `${db}.${table}`;
    if (['mysql', 'sys', 'information_schema', 'performance_schema'].includes(db.toLowerCase())) return false;
    return this.include.some((r) => r.test(name)) && !this.exclude.some((r) => r.test(name));
  }

  /** Columns of this table that are dropped (never leave the producer). */
  dropped(db: string, table: string, column: string): boolean {
    return this.dropCols.some((r) => r.test(`${db}.${table}.${column}`));
  }

  columnRule(db: string, table: string, column: string): 'drop' | 'hash' | 'mask' | 'keep' {
    const full = `${db}.${table}.${column}`;
    if (this.dropCols.some((r) => r.test(full))) return 'drop';
    if (this.hashCols.some((r) => r.test(full))) return 'hash';
    if (this.maskCols.some((r) => r.test(full))) return 'mask';
    return 'keep';
  }

  transform(db: string, table: string, image: RowImage): RowImage {
    if (this.dropCols.length + this.hashCols.length + this.maskCols.length === 0) return image;
    const out: RowImage = {};
    for (const [col, value] of Object.entries(image)) {
      const full = `${db}.${table}.${col}`;
      if (this.dropCols.some((r) => r.test(full))) continue;
      if (value !== null && this.hashCols.some((r) => r.test(full))) {
        out[col] = createHash('sha256')
          .update(typeof value === 'string' ? value : JSON.stringify(value))
          .digest('hex');
      } else if (value !== null && this.maskCols.some((r) => r.test(full))) {
        out[col] = '****';
      } else {
        out[col] = value;
      }
    }
    return out;
  }
}
