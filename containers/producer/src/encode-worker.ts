/**
 * The encode worker's thread: turns batches of captured rows into Kinesis record bytes (encode-worker-protocol.ts)
 * while the main thread goes on reading the binlog. Started by encode-worker-client.ts, never imported by the main
 * thread. Batches are answered in the order they arrive; a row that cannot be encoded is answered as a failure naming
 * it (the main thread stops the producer), never skipped.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  type EncodeBatch,
  EncodeError,
  encodeBatch,
  type WorkerAnswer,
  type WorkerInit,
  type WorkerShape,
} from './encode-worker-protocol';

const init = workerData as WorkerInit;
const shapes = new Map<number, WorkerShape>();
/** Each shape's compiled event text, kept across batches. */
const compiled = new Map();
const port = parentPort;
if (!port) throw new Error('encode-worker.ts runs as a worker thread (encode-worker-client.ts starts it)');

port.on('message', (b: EncodeBatch) => {
  for (const s of b.shapes) shapes.set(s.id, s);
  let answer: WorkerAnswer;
  try {
    answer = encodeBatch(init, shapes, b, compiled);
  } catch (err) {
    const index = err instanceof EncodeError ? err.index : -1;
    port.postMessage({ id: b.id, index, message: (err as Error).message } satisfies WorkerAnswer);
    return;
  }
  if ('data' in answer) port.postMessage(answer, [answer.data, answer.ends.buffer as ArrayBuffer]);
});
// Loaded: until this arrives the main thread encodes rows itself (a worker's start costs up to a second under tsx).
port.postMessage({ ready: true } satisfies WorkerAnswer);
