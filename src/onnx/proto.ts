/**
 * ONNX protobuf in and out. The schema and codec come from the `onnx-proto` package (generated from
 * onnx.proto by protobufjs); this module adds what ONNX layers on top: tensors ⇄ TypedArrays, int64
 * fields as numbers, and external data files next to the model.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import onnxProto from 'onnx-proto';
import { GraftError } from '../errors.js';
import { arrayFromBytes, bytesOf, dtypeFromOnnx, dtypeToOnnx, numel, type Tensor, type TensorArray } from './tensor.js';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.IModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/** protobufjs hands int64 fields back as Long objects; everything graft counts fits in a double. */
export function int64ToNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function decodeModelProto(bytes: Uint8Array, source = 'model'): ModelProto {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new GraftError(
      'MODEL_INVALID',
      `${source} is not an ONNX model (protobuf decoding failed: ${(e as Error).message}). Check that the file is a complete .onnx file.`,
      { subject: source, cause: e },
    );
  }
  if (!model.graph || !model.opsetImport?.length || int64ToNumber(model.irVersion) <= 0) {
    throw new GraftError(
      'MODEL_INVALID',
      `${source} is not an ONNX model (no graph, opset import or IR version). Check that the file is a complete .onnx file.`,
      { subject: source },
    );
  }
  return model;
}

export function encodeModelProto(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export interface ExternalDataReader {
  /** Bytes of `location` (relative to the model) from `offset`, `length` bytes (or to the end). */
  read(location: string, offset: number, length: number | undefined): Uint8Array;
}

/** Reads external data files from the model's directory, each file once. */
export function externalDataFromDir(dir: string): ExternalDataReader {
  const files = new Map<string, Uint8Array>();
  return {
    read(location, offset, length) {
      const rel = normalize(location);
      if (isAbsolute(rel) || rel.startsWith('..')) {
        throw new GraftError('MODEL_INVALID', `external data location "${location}" points outside the model's directory.`, {
          subject: location,
        });
      }
      let buf = files.get(rel);
      if (!buf) {
        try {
          buf = readFileSync(join(dir, rel));
        } catch (e) {
          throw new GraftError(
            'MODEL_INVALID',
            `The model keeps weights in "${location}" next to it, but that file cannot be read (${(e as Error).message}). Keep the .onnx file and its data file together.`,
            { subject: location, cause: e },
          );
        }
        files.set(rel, buf);
      }
      const end = length === undefined ? buf.byteLength : offset + length;
      if (end > buf.byteLength) {
        throw new GraftError('MODEL_INVALID', `external data file "${location}" is shorter than the model says (truncated download?).`, {
          subject: location,
        });
      }
      return buf.subarray(offset, end);
    },
  };
}

export function tensorFromProto(tp: TensorProto, external?: ExternalDataReader): Tensor {
  const dtype = dtypeFromOnnx(tp.dataType ?? 0);
  const name = tp.name ?? '(unnamed)';
  if (!dtype) throw new GraftError('MODEL_UNSUPPORTED', `tensor "${name}" has ONNX data type ${tp.dataType}, which graft does not handle.`);
  const dims = (tp.dims ?? []).map(int64ToNumber);
  const n = numel(dims);
  let data: TensorArray;
  if (tp.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    if (!external) throw new GraftError('MODEL_INVALID', `tensor "${name}" uses external data but the model was loaded from bytes without its directory.`);
    const kv = new Map((tp.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = kv.get('location');
    if (!location) throw new GraftError('MODEL_INVALID', `tensor "${name}" uses external data but names no location.`);
    const offset = Number(kv.get('offset') ?? 0);
    const length = kv.has('length') ? Number(kv.get('length')) : undefined;
    data = arrayFromBytes(dtype, external.read(location, offset, length));
  } else if (tp.rawData && tp.rawData.byteLength > 0) {
    data = arrayFromBytes(dtype, tp.rawData);
  } else {
    data = typedFieldData(tp, dtype);
  }
  if (data.length !== n) {
    throw new GraftError('MODEL_INVALID', `tensor "${name}" has ${data.length} values for dims [${dims.join(', ')}] (${n} expected).`);
  }
  return { dtype, dims, data };
}

function typedFieldData(tp: TensorProto, dtype: Tensor['dtype']): TensorArray {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(tp.floatData ?? []);
    case 'float64':
      return Float64Array.from(tp.doubleData ?? []);
    case 'int64':
      return BigInt64Array.from((tp.int64Data ?? []).map((v) => BigInt(typeof v === 'number' ? v : v.toString())));
    case 'uint64':
      return BigUint64Array.from((tp.uint64Data ?? []).map((v) => BigInt(typeof v === 'number' ? v : v.toString())));
    case 'uint32':
      return Uint32Array.from((tp.uint64Data ?? []).map(int64ToNumber));
    case 'string':
      return (tp.stringData ?? []).map((b) => Buffer.from(b).toString('utf8'));
    case 'int32':
      return Int32Array.from(tp.int32Data ?? []);
    case 'int8':
      return Int8Array.from(tp.int32Data ?? []);
    case 'int16':
      return Int16Array.from(tp.int32Data ?? []);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(tp.int32Data ?? []);
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      // ONNX stores 16-bit floats as their bit patterns in int32_data
      return Uint16Array.from(tp.int32Data ?? []);
  }
}

export interface TensorToProtoOptions {
  /** When given, the bytes go to this sink instead of raw_data and the proto references them. */
  external?: { location: string; append(bytes: Uint8Array): number };
}

export function tensorToProto(name: string, t: Tensor, opts: TensorToProtoOptions = {}): TensorProto {
  const base: TensorProto = { name, dims: [...t.dims], dataType: dtypeToOnnx(t.dtype) };
  if (t.dtype === 'string') return { ...base, stringData: (t.data as string[]).map((s) => Buffer.from(s, 'utf8')) };
  const bytes = bytesOf(t.data as Exclude<TensorArray, string[]>);
  if (opts.external) {
    const offset = opts.external.append(bytes);
    return {
      ...base,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: opts.external.location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(bytes.byteLength) },
      ],
    };
  }
  return { ...base, rawData: bytes };
}
