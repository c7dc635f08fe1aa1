/**
 * The Kinesis sink's thread: a KinesisSink (kinesis-sink.ts) with its own KinesisClient, fed by the main thread
 * (threaded-kinesis-sink.ts). The AWS SDK's work per PutRecords call (base64 of every record into the JSON body,
 * signing, the socket) runs here, beside the main thread's binlog decoding and encoding, instead of after it on one
 * thread. Never imported by the main thread.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { ProducerError } from './errors';
import { KinesisSink, sinkClient } from './kinesis-sink';
import type { FromSinkThread, SinkThreadInit, ToSinkThread } from './kinesis-sink-thread-protocol';

const init = workerData as SinkThreadInit;
const port = parentPort;
if (!port) throw new Error('kinesis-sink-thread.ts runs as a worker thread (threaded-kinesis-sink.ts starts it)');

const post = (m: FromSinkThread): void => port.postMessage(m);
let received = 0;
let receivedBytes = 0;
const sink: KinesisSink = new KinesisSink({
  ...init, // the sink's settings (endpoint is the client's)
  client: sinkClient(init.endpoint),
  onAcked: (low) =>
    post({
      t: 'acked',
      low,
      received,
      pending: sink.pending,
      receivedBytes,
      pendingBytes: sink.pendingBytes,
      calls: sink.callsInFlight,
    }),
  onFailed: (err) =>
    post(
      err instanceof ProducerError
        ? { t: 'failed', code: err.code, message: err.message.slice(err.code.length + 2) }
        : { t: 'failed', code: 'KINESIS_SINK_THREAD_FAILED', message: err.message },
    ),
  stats: {
    onPut: (latencyMs, records, bytes) => post({ t: 'put', latencyMs, records, bytes }),
    onRetry: (failed, throttled) => post({ t: 'retry', failed, throttled }),
  },
});
/** Claim-check records waiting for the main thread's word that their object is written. */
const gates = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

port.on('message', (m: ToSinkThread) => {
  switch (m.t) {
    case 'put': {
      const waiting = new Set(m.waiting);
      let start = 0;
      for (let i = 0; i < m.seqs.length; i++) {
        const seq = m.seqs[i]!;
        const end = m.ends[i]!;
        const ready = waiting.has(seq)
          ? new Promise<void>((resolve, reject) => gates.set(seq, { resolve, reject }))
          : undefined;
        received++;
        receivedBytes += end - start;
        // After a failure the sink takes nothing more; the main thread has been told (onFailed).
        if (!sink.failure) sink.enqueue({ seq, partitionKey: m.keys[i]!, data: m.data.subarray(start, end), ready });
        start = end;
      }
      return;
    }
    case 'ready':
      gates.get(m.seq)?.resolve();
      gates.delete(m.seq);
      return;
    case 'not-ready':
      gates.get(m.seq)?.reject(new Error(m.message));
      gates.delete(m.seq);
      return;
    case 'drain':
      sink.drain().then(
        () => post({ t: 'drained', id: m.id }),
        () => undefined, // the failure was posted when it happened
      );
      return;
  }
});
