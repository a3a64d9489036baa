/**
 * A restricted unpickler for the `data.pkl` of PyTorch checkpoints. It interprets the pickle
 * opcodes of protocols 2–4 that build plain data (None, booleans, numbers, strings, bytes,
 * tuples, lists, dicts) and the few calls that rebuild tensors, and nothing else: it never
 * imports or executes anything a file names. The only globals it accepts are
 * `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`,
 * `collections.OrderedDict` and the `torch.*Storage` types of persistent storage ids; any other
 * global, and any opcode that instantiates objects (INST, OBJ, NEWOBJ, extension registry), is
 * a {@linkcode FormatError} naming it.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { FormatError } from "../errors.ts";
import type { Dtype } from "./dtype.ts";

/** Storage classes by name, and the element type each holds. */
const STORAGE_TYPES: Readonly<Record<string, Dtype>> = {
  DoubleStorage: "F64",
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
};

/** A storage named by a persistent id: `data/<key>` of the archive. */
export interface TorchStorageRef {
  readonly kind: "storage";
  /** The element type. */
  readonly dtype: Dtype;
  /** The record name under `data/`. */
  readonly key: string;
  /** Elements in the storage. */
  readonly numel: number;
}

/** A tensor rebuilt by `_rebuild_tensor_v2`: a strided view of a storage. */
export interface TorchTensorRef {
  readonly kind: "tensor";
  /** The storage it views. */
  readonly storage: TorchStorageRef;
  /** The first element, in storage elements. */
  readonly offset: number;
  /** The dimensions. */
  readonly shape: readonly number[];
  /** The strides, in storage elements. */
  readonly stride: readonly number[];
}

/** A pickled tuple (kept apart from lists so shapes and ids can be checked). */
export class PickleTuple {
  /** The items. */
  readonly items: readonly unknown[];

  /**
   * Wraps items.
   *
   * @param items The tuple's items.
   */
  constructor(items: readonly unknown[]) {
    this.items = items;
  }
}

/** A pickled dict or `OrderedDict`, keys in insertion order. */
export class PickleDict {
  /** The entries. */
  readonly entries: Map<unknown, unknown> = new Map();
}

interface GlobalRef {
  readonly kind: "global";
  readonly name: string;
}

const ALLOWED_CALLS = new Set([
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "collections.OrderedDict",
]);

const MARK = Symbol("mark");
const UTF8 = new TextDecoder("utf-8", { fatal: true });
const LATIN1 = new TextDecoder("latin1");

/**
 * Unpickles a PyTorch `data.pkl` under the restrictions above.
 *
 * @param bytes The pickle.
 * @param file The file's name in error messages.
 * @returns The object: usually a {@linkcode PickleDict} of {@linkcode TorchTensorRef}.
 * @throws {FormatError} A forbidden global or opcode, or a malformed pickle.
 *
 * @example
 * ```ts ignore
 * const stateDict = unpickleTorch(dataPkl, "pytorch_model.bin");
 * ```
 */
export function unpickleTorch(bytes: Uint8Array, file: string): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  let op = 0;
  let opAt = 0;

  const fail = (what: string): never => {
    throw new FormatError(`Cannot unpickle "${file}": ${what}`, { file, offset: opAt });
  };
  const need = (n: number): number => {
    if (pos + n > bytes.length) fail(`opcode 0x${hex(op)} runs past the end of the data`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = () => bytes[need(1)];
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const u64 = () => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} is too large`);
    return Number(v);
  };
  const take = (n: number) => bytes.subarray(need(n), pos);
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail("unterminated GLOBAL name");
    const s = LATIN1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) fail("stack underflow");
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail("no MARK on the stack");
    const items = stack.splice(at);
    items.shift();
    return items;
  };
  const top = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo entry ${i} was never stored`);
    return memo.get(i);
  };
  const utf8 = (b: Uint8Array): string => {
    try {
      return UTF8.decode(b);
    } catch {
      return fail("a string is not valid UTF-8");
    }
  };
  const global = (module: string, name: string): GlobalRef => {
    const full = `${module}.${name}`;
    if (ALLOWED_CALLS.has(full) || (module === "torch" && name in STORAGE_TYPES)) {
      return { kind: "global", name: full };
    }
    return fail(`it names the global "${full}", expected only tensor-rebuild globals`);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof PickleDict)) fail("SETITEM(S) on something that is not a dict");
    const dict = target as PickleDict;
    for (let i = 0; i + 1 < items.length; i += 2) dict.entries.set(key(items[i]), items[i + 1]);
  };
  const key = (k: unknown): unknown => {
    if (typeof k === "string" || typeof k === "number" || typeof k === "boolean" || k === null) {
      return k;
    }
    return fail("a dict key is not a string or number");
  };

  while (true) {
    opAt = pos;
    op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("pickle protocol above 5");
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} items on the stack`);
        return stack[0];
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x8a: { // LONG1
        const n = u8();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
          fail(`integer ${v} is too large`);
        }
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(take(u64())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(LATIN1.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(LATIN1.decode(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PickleTuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(new PickleTuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        stack.push(new PickleTuple([pop(), b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new PickleTuple([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(new PickleTuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: { // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail("APPEND to something that is not a list");
        (list as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail("APPENDS to something that is not a list");
        (list as unknown[]).push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PickleDict());
        break;
      case 0x64: { // DICT
        const dict = new PickleDict();
        setItems(dict, popMark());
        stack.push(dict);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          fail("STACK_GLOBAL with a module or name that is not a string");
        }
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistentStorage(pop(), fail));
        break;
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args, fail));
        break;
      }
      case 0x62: { // BUILD: only the attribute dict of a state dict (its `_metadata`), ignored.
        const state = pop();
        if (!(top() instanceof PickleDict) || !(state instanceof PickleDict || state === null)) {
          fail("BUILD on something other than a dict");
        }
        break;
      }
      default:
        fail(`opcode 0x${hex(op)} is not allowed (only plain data and tensor rebuilds are)`);
    }
  }
}

function hex(v: number): string {
  return v.toString(16).padStart(2, "0");
}

/** A persistent id `("storage", torch.<T>Storage, key, location, numel)`. */
function persistentStorage(pid: unknown, fail: (what: string) => never): TorchStorageRef {
  const items = pid instanceof PickleTuple ? pid.items : [];
  const [tag, type, key, location, numel] = items;
  const typeName = isGlobal(type) ? type.name.replace(/^torch\./, "") : "";
  if (
    items.length !== 5 || tag !== "storage" || !(typeName in STORAGE_TYPES) ||
    typeof key !== "string" || typeof location !== "string" || !isCount(numel)
  ) {
    return fail(
      'a persistent id is not ("storage", torch.<Type>Storage, key, location, numel)',
    );
  }
  return {
    kind: "storage",
    dtype: STORAGE_TYPES[typeName],
    key: key as string,
    numel: numel as number,
  };
}

function call(fn: unknown, args: unknown, fail: (what: string) => never): unknown {
  const a = args instanceof PickleTuple ? args.items : fail("REDUCE arguments are not a tuple");
  const name = isGlobal(fn) ? fn.name : fail("REDUCE calls something that is not a global");
  switch (name) {
    case "collections.OrderedDict":
      if (a.length !== 0) fail("OrderedDict is called with arguments");
      return new PickleDict();
    case "torch._utils._rebuild_parameter":
      if (!isTensor(a[0])) fail("_rebuild_parameter is not given a tensor");
      return a[0];
    case "torch._utils._rebuild_tensor_v2": {
      const [storage, offset, size, stride] = a;
      const shape = size instanceof PickleTuple ? size.items : undefined;
      const strides = stride instanceof PickleTuple ? stride.items : undefined;
      if (
        a.length < 6 || a.length > 7 || !isStorage(storage) || !isCount(offset) || !shape ||
        !strides || shape.length !== strides.length || !shape.every(isCount) ||
        !strides.every(isCount)
      ) {
        return fail("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, …)");
      }
      const dims = shape as number[];
      const steps = strides as number[];
      let last = offset as number;
      for (let i = 0; i < dims.length; i++) last += dims[i] > 0 ? (dims[i] - 1) * steps[i] : 0;
      if (dims.some((d) => d === 0) ? false : last >= storage.numel) {
        fail(`a tensor reads element ${last} of a storage of ${storage.numel}`);
      }
      return { kind: "tensor", storage, offset, shape: dims, stride: steps } as TorchTensorRef;
    }
    default:
      return fail(`REDUCE calls "${name}", which only names a storage type`);
  }
}

function isGlobal(v: unknown): v is GlobalRef {
  return typeof v === "object" && v !== null && (v as GlobalRef).kind === "global";
}

function isStorage(v: unknown): v is TorchStorageRef {
  return typeof v === "object" && v !== null && (v as TorchStorageRef).kind === "storage";
}

/** True for a {@linkcode TorchTensorRef} made by this unpickler. */
export function isTensor(v: unknown): v is TorchTensorRef {
  return typeof v === "object" && v !== null && (v as TorchTensorRef).kind === "tensor";
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}
