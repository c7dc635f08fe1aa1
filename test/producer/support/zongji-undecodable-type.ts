/**
 * Fault injection (preloaded into the producer's process with `--import`): makes @vlasky/zongji unable to decode the
 * columns whose SQL type matches `ZONGJI_FAULT_UNDECODABLE_TYPE` (a regular expression over information_schema's
 * COLUMN_TYPE, e.g. `^year`). A real MariaDB 10.11 writes no column type zongji cannot decode, so the test gives such
 * a column the binlog type code NEWDATE (14, "not used" by servers), which zongji's own decoder rejects: it emits its
 * real `Unsupported type … on column … of the table … in the database …` error and goes on with a garbage row, exactly
 * as it would for a type a future server invents.
 */
import { EventEmitter } from 'node:events';
import ZongJi from '@vlasky/zongji';

const NEWDATE = 14;
const pattern = process.env.ZONGJI_FAULT_UNDECODABLE_TYPE;

if (pattern) {
  const re = new RegExp(pattern, 'i');
  const proto = (ZongJi as unknown as { prototype: EventEmitter }).prototype;
  proto.emit = function emit(this: EventEmitter, name: string | symbol, ...args: unknown[]): boolean {
    const evt = args[0] as
      | {
          getEventName?: () => string;
          tableId?: number;
          tableMap?: Record<
            number,
            { columnSchemas?: { COLUMN_TYPE: string }[]; columns?: { type: number }[] } | undefined
          >;
        }
      | undefined;
    if (name === 'binlog' && evt?.getEventName?.() === 'tablemap' && evt.tableId !== undefined) {
      const tm = evt.tableMap?.[evt.tableId];
      tm?.columns?.forEach((c, i) => {
        if (re.test(tm.columnSchemas?.[i]?.COLUMN_TYPE ?? '')) c.type = NEWDATE;
      });
    }
    return EventEmitter.prototype.emit.call(this, name, ...args);
  };
}
