/** Moving tensors between threads: which buffers to transfer, and when a copy is cheaper than the clone. */
import type { TransferListItem } from 'node:worker_threads';
import type { Tensor } from '../onnx/tensor.js';

function bufferOf(t: Tensor): ArrayBuffer | undefined {
  if (Array.isArray(t.data)) return undefined;
  const buf = (t.data as Exclude<Tensor['data'], string[]>).buffer;
  // SharedArrayBuffers are shared by the clone, never copied, and cannot be transferred
  return buf instanceof ArrayBuffer ? buf : undefined;
}

/** The distinct ArrayBuffers behind the tensors' data (what a transfer detaches). */
export function buffersOf(tensors: Iterable<Tensor>): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const t of tensors) {
    const b = bufferOf(t);
    if (b && b.byteLength > 0) seen.add(b);
  }
  return [...seen];
}

/**
 * Prepares feeds for postMessage. With `take`, every buffer behind the feeds is transferred (the caller's
 * arrays become detached, whole buffers even when the data is a view into a larger one). Without it the
 * caller keeps its arrays: data that views part of a larger buffer is sliced first, because the structured
 * clone of a view copies the view's entire underlying buffer; the slice is then ours to transfer.
 */
export function packFeeds(feeds: Record<string, Tensor>, take: boolean): { feeds: Record<string, Tensor>; transfer: TransferListItem[] } {
  if (take) return { feeds, transfer: buffersOf(Object.values(feeds)) };
  const out: Record<string, Tensor> = {};
  const transfer: TransferListItem[] = [];
  for (const [name, t] of Object.entries(feeds)) {
    const buf = bufferOf(t);
    const data = t.data as Exclude<Tensor['data'], string[]>;
    if (buf && data.byteLength < buf.byteLength) {
      const copy = data.slice();
      transfer.push(copy.buffer as ArrayBuffer);
      out[name] = { dtype: t.dtype, dims: t.dims, data: copy };
    } else {
      out[name] = t;
    }
  }
  return { feeds: out, transfer };
}
