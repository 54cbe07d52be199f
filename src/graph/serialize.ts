/** ModelProto ⇄ Model, and model files on disk (with external data next to them). */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { GraftError } from '../errors.js';
import {
  decodeModelProto,
  encodeModelProto,
  externalDataFromDir,
  int64ToNumber,
  onnx,
  tensorFromProto,
  tensorToProto,
  type AttributeProto,
  type ExternalDataReader,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '../onnx/proto.js';
import { dtypeFromOnnx, dtypeToOnnx, type Tensor } from '../onnx/tensor.js';
import { atomicWriteFile, removeQuietly, tempPathFor } from '../util/fs.js';
import { Graph, Model } from './graph.js';
import { Node, type AttrValue, type Dim, type ValueInfo } from './ir.js';

const AT = onnx.AttributeProto.AttributeType;
const utf8 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

function attrFromProto(a: AttributeProto, ext?: ExternalDataReader): AttrValue {
  switch (a.type) {
    case AT.INT:
      return { kind: 'int', value: int64ToNumber(a.i) };
    case AT.FLOAT:
      return { kind: 'float', value: a.f ?? 0 };
    case AT.STRING:
      return { kind: 'string', value: utf8(a.s ?? new Uint8Array()) };
    case AT.INTS:
      return { kind: 'ints', value: (a.ints ?? []).map(int64ToNumber) };
    case AT.FLOATS:
      return { kind: 'floats', value: [...(a.floats ?? [])] };
    case AT.STRINGS:
      return { kind: 'strings', value: (a.strings ?? []).map(utf8) };
    case AT.TENSOR:
      return { kind: 'tensor', value: tensorFromProto(a.t ?? {}, ext) };
    default:
      return { kind: 'proto', value: a };
  }
}

function attrToProto(name: string, v: AttrValue): AttributeProto {
  switch (v.kind) {
    case 'int':
      return { name, type: AT.INT, i: v.value };
    case 'float':
      return { name, type: AT.FLOAT, f: v.value };
    case 'string':
      return { name, type: AT.STRING, s: Buffer.from(v.value, 'utf8') };
    case 'ints':
      return { name, type: AT.INTS, ints: [...v.value] };
    case 'floats':
      return { name, type: AT.FLOATS, floats: [...v.value] };
    case 'strings':
      return { name, type: AT.STRINGS, strings: v.value.map((s) => Buffer.from(s, 'utf8')) };
    case 'tensor':
      return { name, type: AT.TENSOR, t: tensorToProto('', v.value) };
    case 'proto':
      return { ...v.value, name };
  }
}

function valueInfoFromProto(v: ValueInfoProto): ValueInfo | undefined {
  const tt = v.type?.tensorType;
  if (!tt || !v.name) return undefined;
  const dtype = dtypeFromOnnx(tt.elemType ?? 0);
  if (!dtype) return undefined;
  const shape: Dim[] | undefined = tt.shape
    ? (tt.shape.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null && int64ToNumber(d.dimValue) > 0 ? int64ToNumber(d.dimValue) : d.dimParam ? d.dimParam : null))
    : undefined;
  return { name: v.name, dtype, shape };
}

function valueInfoToProto(v: ValueInfo): ValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: dtypeToOnnx(v.dtype),
        shape: v.shape ? { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})) } : undefined,
      },
    },
  };
}

function nodeFromProto(n: NodeProto, i: number, ext?: ExternalDataReader): Node {
  return new Node({
    name: n.name || `${n.opType}_${i}`,
    opType: n.opType ?? '',
    domain: n.domain ?? '',
    inputs: n.input ?? [],
    outputs: n.output ?? [],
    attrs: (n.attribute ?? []).map((a) => [a.name ?? '', attrFromProto(a, ext)] as [string, AttrValue]),
    docString: n.docString || undefined,
  });
}

export function graphFromProto(g: GraphProto, ext?: ExternalDataReader): Graph {
  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', tensorFromProto(t, ext));
  const vi = (list: ValueInfoProto[] | null | undefined) => (list ?? []).map(valueInfoFromProto).filter((v): v is ValueInfo => !!v);
  const graph = new Graph({
    name: g.name || 'graph',
    nodes: (g.node ?? []).map((n, i) => nodeFromProto(n, i, ext)),
    // before IR 4 initializers had to be listed as inputs too; they are not runtime inputs
    inputs: vi(g.input).filter((v) => !initializers.has(v.name)),
    outputs: vi(g.output),
    initializers,
    valueInfo: new Map(vi(g.valueInfo).map((v) => [v.name, v])),
    docString: g.docString || undefined,
  });
  const declared = new Set((g.output ?? []).map((o) => o.name));
  if (graph.outputs.length !== declared.size) {
    throw new GraftError('MODEL_UNSUPPORTED', 'a graph output is not a tensor (sequences and maps are not supported as model outputs).');
  }
  return graph;
}

export interface ToProtoOptions {
  /** Store initializers of at least `minBytes` in this external file (name relative to the model). */
  external?: { location: string; minBytes: number; append(bytes: Uint8Array): number };
}

export function graphToProto(g: Graph, opts: ToProtoOptions = {}): GraphProto {
  const initializer: TensorProto[] = [];
  for (const [name, t] of g.initializers) {
    const big = opts.external && t.dtype !== 'string' && byteLength(t) >= opts.external.minBytes;
    initializer.push(tensorToProto(name, t, big ? { external: opts.external } : {}));
  }
  return {
    name: g.name,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain || undefined,
      input: n.inputs,
      output: n.outputs,
      attribute: [...n.attrs].map(([k, v]) => attrToProto(k, v)),
      docString: n.docString,
    })),
    input: g.inputs.map(valueInfoToProto),
    output: g.outputs.map(valueInfoToProto),
    initializer,
    valueInfo: [...g.valueInfo.values()].map(valueInfoToProto),
    docString: g.docString,
  };
}

function byteLength(t: Tensor): number {
  return (t.data as { byteLength?: number }).byteLength ?? 0;
}

export function modelFromProto(m: ModelProto, ext?: ExternalDataReader): Model {
  return new Model({
    irVersion: int64ToNumber(m.irVersion),
    opsetImports: (m.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: int64ToNumber(o.version) })),
    producerName: m.producerName ?? '',
    producerVersion: m.producerVersion ?? '',
    domain: m.domain ?? '',
    modelVersion: int64ToNumber(m.modelVersion),
    docString: m.docString ?? '',
    metadata: new Map((m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
    graph: graphFromProto(m.graph!, ext),
    functions: m.functions ?? [],
  });
}

export function modelToProto(m: Model, opts: ToProtoOptions = {}): ModelProto {
  return {
    irVersion: m.irVersion,
    opsetImport: m.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    producerName: m.producerName,
    producerVersion: m.producerVersion,
    domain: m.domain || undefined,
    modelVersion: m.modelVersion || undefined,
    docString: m.docString || undefined,
    metadataProps: [...m.metadata].map(([key, value]) => ({ key, value })),
    graph: graphToProto(m.graph, opts),
    functions: m.functions as ModelProto['functions'],
  };
}

/** Decodes ONNX bytes. `baseDir` is where external data files are looked up. */
export function modelFromBytes(bytes: Uint8Array, opts: { source?: string; baseDir?: string } = {}): Model {
  const proto = decodeModelProto(bytes, opts.source);
  return modelFromProto(proto, opts.baseDir ? externalDataFromDir(opts.baseDir) : undefined);
}

/** Serialises with every initializer inline (what onnxruntime takes from memory). */
export function modelToBytes(m: Model): Uint8Array {
  return encodeModelProto(modelToProto(m));
}

export function loadModel(path: string): Model {
  if (!existsSync(path)) throw new GraftError('FILE_NOT_FOUND', `Model file ${path} does not exist.`, { subject: path });
  if (statSync(path).size === 0) throw new GraftError('MODEL_INVALID', `Model file ${path} is empty (0 bytes). Re-download or re-export it.`, { subject: path });
  return modelFromBytes(readFileSync(path), { source: path, baseDir: dirname(path) });
}

export interface SaveOptions {
  /**
   * 'auto' (default): weights go to `<file>.data` when inline serialisation would pass protobuf's 2 GiB
   * limit; true: always external (tensors ≥ 1 KiB); false: always inline.
   */
  externalData?: boolean | 'auto';
}

const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Writes the model atomically (temp file + rename), with its external data file when needed. */
export function saveModel(m: Model, path: string, opts: SaveOptions = {}): void {
  const mode = opts.externalData ?? 'auto';
  let totalBytes = 0;
  for (const t of m.graph.initializers.values()) totalBytes += byteLength(t);
  const external = mode === true || (mode === 'auto' && totalBytes > PROTOBUF_LIMIT - 64 * 2 ** 20);
  if (!external) {
    atomicWriteFile(path, encodeModelProto(modelToProto(m)));
    return;
  }
  const location = `${basename(path)}.data`;
  const dataPath = join(dirname(path), location);
  const tmpData = tempPathFor(dataPath);
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(tmpData, 'w');
  let offset = 0;
  try {
    let proto: ModelProto;
    try {
      proto = modelToProto(m, {
        external: {
          location,
          minBytes: mode === true ? 1024 : 0,
          append(bytes) {
            // ORT memory-maps external data; 4 KiB alignment keeps every tensor page-aligned
            const pad = (4096 - (offset % 4096)) % 4096;
            if (pad) writeSync(fd, new Uint8Array(pad));
            offset += pad;
            const at = offset;
            writeSync(fd, bytes);
            offset += bytes.byteLength;
            return at;
          },
        },
      });
    } finally {
      closeSync(fd);
    }
    atomicWriteFile(path, encodeModelProto(proto), { alsoRename: [[tmpData, dataPath]] });
  } catch (e) {
    removeQuietly(tmpData);
    throw e;
  }
}
