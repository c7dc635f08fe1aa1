/**
 * A process whose every row is encoded on the main thread before the encode worker has loaded (ten rows, then drain):
 * run by encode-worker-exit.test.ts, which expects it to exit on its own.
 */
import type { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { KinesisSink } from '../../../containers/producer/src/kinesis-sink';
import { EmfMetrics } from '../../../containers/producer/src/metrics';
import { ProducerCore } from '../../../containers/producer/src/producer';
import { TableFilter } from '../../../containers/producer/src/table-filter';

const client = {
  send: async (cmd: PutRecordsCommand) => ({
    FailedRecordCount: 0,
    Records: (cmd.input.Records ?? []).map(() => ({ SequenceNumber: '1' })),
  }),
} as unknown as KinesisClient;
let core: ProducerCore;
const sink = new KinesisSink({ client, streamName: 's', onAcked: (l) => core.acked(l) });
core = new ProducerCore({
  serverId: 1,
  filter: new TableFilter({ include: [], exclude: [], excludeColumns: [], hashColumns: [], maskColumns: [] }),
  sink,
  partitionKeyMode: 'table',
  metrics: new EmfMetrics('b', 'b', () => undefined),
  maxInFlight: 1000,
  pause: () => {},
  resume: () => {},
  encodeWorker: true,
});
const shape = { db: 'a', table: 'b', columns: [{ name: 'id', type: 'int' }], pk: ['id'] };
const row = (id: number) =>
  core.onRow({
    shape,
    op: 'insert',
    before: null,
    after: { id },
    file: 'f.000001',
    pos: id,
    row: 0,
    gtid: null,
    commitMs: 1,
  });
for (let i = 0; i < 10; i++) row(i);
await core.drain();
process.stdout.write('drained\n');
