// Weir's JavaScript SDK: write a plugin as one ES module.
//
//   import { definePlugin } from "./weir_sdk.js";
//   export const processor = definePlugin({
//     init(config) { /* config: { key: value }; throw to refuse it */ },
//     process(record) { return record.toOutput({ value: record.text().toUpperCase() }); },
//   });
//
// `process` returns the outputs for one record: an array, a single output, or
// null/undefined to drop the record (or a promise of them: an `async process`
// may `await fetch(...)`; see `fetchOk`). Throwing `new ProcessError(msg, { retryable })`
// fails that record; any other exception does too, with its message, and never
// crashes the plugin.
//
// `state` is a key-value store of bytes that Weir keeps per partition, across
// batches, crashes and rebalances:
//
//   import { definePlugin, state } from "./weir_sdk.js";
//   export const processor = definePlugin({
//     process(record) {
//       const key = record.key ?? "";
//       if (state.get(key) !== undefined) return null; // seen before
//       state.set(key, "");
//       return record.toOutput();
//     },
//   });
//
// These types are plain JavaScript: `node --test` runs plugin logic without
// WebAssembly (with an in-memory `state`). `weir build` turns the module into a
// component.

// The host's `state` import. Plain node cannot load a `weir:` module and
// StarlingMonkey (componentize-js) cannot import one dynamically, so the import
// stays commented out here and `weir build` uncomments it (drops the
// "//weir-build: " prefix) in the copy it builds into a component.
//weir-build: import * as stateHost from "weir:processor/state@0.1.1";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes from a string (UTF-8), bytes (Uint8Array, other typed arrays or
 * ArrayBuffer, as the component bindings may hand them over, or an array of
 * numbers), or null/undefined (absent). */
export function toBytes(value) {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (Array.isArray(value)) return Uint8Array.from(value);
  throw new TypeError(`expected a string, bytes or null, got ${Object.prototype.toString.call(value)}`);
}

/** A plugin's refusal to process one record. */
export class ProcessError extends Error {
  constructor(message, { retryable = false } = {}) {
    super(message);
    this.name = "ProcessError";
    this.retryable = retryable;
  }
}

/** One record consumed from Kafka. */
export class Record {
  constructor({ value, key, headers = [], topic = "", partition = 0, offset = 0, timestamp } = {}) {
    this.value = toBytes(value);
    this.key = toBytes(key);
    /** Headers as [name, Uint8Array] pairs, in wire order. */
    this.headers = headers.map(([name, v]) => [name, toBytes(v) ?? new Uint8Array()]);
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.timestamp = timestamp;
  }

  /** The value as UTF-8 text (null for a null value). */
  text() {
    return this.value === undefined ? null : decoder.decode(this.value);
  }

  /** The value parsed as JSON; throws ProcessError if it is not JSON. */
  json() {
    try {
      return JSON.parse(this.text() ?? "");
    } catch (e) {
      throw new ProcessError(`value is not JSON: ${e.message}`);
    }
  }

  /** The first header called `name`, if any. */
  header(name) {
    return this.headers.find(([n]) => n === name)?.[1];
  }

  /** An output with this record's key, value and headers, with `changes` applied. */
  toOutput(changes = {}) {
    return { value: this.value, key: this.key, headers: this.headers, ...changes };
  }
}

/** What `process` returned, as an array of outputs. */
export function normalizeOutputs(result) {
  if (result === null || result === undefined) return [];
  const outputs = Array.isArray(result) ? result : [result];
  for (const o of outputs) {
    if (typeof o !== "object" || o === null || o instanceof Uint8Array) {
      throw new TypeError("process() must return an output object ({ value, key, headers, topic, partition }), an array of them, or null");
    }
  }
  return outputs;
}

/** A state write the host refused: a key or value over the operator's
 * `[plugin.state]` caps, the partition's state full, a write in `init` (there
 * is no partition) or after an `await` in `process`. The record it was made for
 * fails whatever `process` returns for it. */
export class StateError extends Error {
  constructor(message) {
    super(message);
    this.name = "StateError";
  }
}

// Where state calls go: the host's import inside a component; undefined under
// node, where an in-memory Map keyed by the bytes' content stands in (inside a
// component without the import, which a `weir build` never makes, every call
// throws rather than keep state that the host never sees).
let stateBackend = typeof stateHost === "undefined" ? undefined : stateHost;
const underNode = typeof globalThis.process === "object";
const memory = new Map();

// The offset of the record being processed (a BigInt from the bindings), which
// writes name: set by the processor before each record. When it is undefined,
// `noRecord` says why a write has no record to belong to (in `init`, after an
// `await`), or is undefined outside the processor: plugin code that a test
// calls directly, which writes to the in-memory Map.
let recordOffset;
let noRecord;
const IN_INIT = "in init: there is no partition; only process may write";
const AFTER_AWAIT =
  "after an await in process: Weir cannot tell which record of the batch the write belongs to; write before the first await";

/** `bytes` (a string as UTF-8) as a Uint8Array, for a state key or value. */
function stateBytes(bytes, what) {
  const b = toBytes(bytes);
  if (b === undefined) throw new TypeError(`a state ${what} must be a string or bytes, not ${bytes}`);
  return b;
}

/** The Map key of `bytes`: one char per byte, so equal contents are one key. */
function memoryKey(bytes) {
  let key = "";
  for (let i = 0; i < bytes.length; i += 8192) key += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return key;
}

/** The offset a write names; throws StateError when there is no record to name. */
function writeOffset(call) {
  if (recordOffset !== undefined) return recordOffset;
  if (noRecord !== undefined) throw new StateError(`state.${call} ${noRecord}`);
  if (stateBackend !== undefined) throw new StateError(`state.${call} outside process: there is no record to write for`);
  return undefined;
}

/** The state backend, or undefined for the in-memory Map. */
function backend() {
  if (stateBackend === undefined && !underNode) {
    throw new StateError("this component was built without Weir's state import: build it with `weir build` (which uncomments the `//weir-build:` line of weir_sdk.js)");
  }
  return stateBackend;
}

/** A host refusal (jco throws a `result<_, string>` error as a ComponentError
 * whose `payload` is the string) as a StateError; anything else unchanged. */
function refused(e) {
  if (typeof e === "string") return new StateError(e);
  if (typeof e?.payload === "string") return new StateError(e.payload);
  return e;
}

/** Plugin state: a key-value store of byte strings that Weir keeps for the
 * partition being processed. Keys and values are bytes (a string is UTF-8).
 * Reads see the plugin's earlier writes in the same partition, including those
 * of earlier records of the same batch. A write belongs to the record being
 * processed: it takes effect only if that record is processed (a thrown error
 * drops it; a retry writes again). In an `async process`, write before the
 * first `await`: after it, the SDK cannot tell which record is writing, and the
 * write throws StateError. Under node the store is an in-memory Map that
 * `state.clear()` empties between tests. */
export const state = Object.freeze({
  /** The value of `key`, if it has one. */
  get(key) {
    const k = stateBytes(key, "key");
    const host = backend();
    if (host !== undefined) return host.get(k);
    const value = memory.get(memoryKey(k));
    return value === undefined ? undefined : value.slice();
  },
  /** Set `key` to `value`, for the record being processed; throws StateError
   * if the host refuses. */
  set(key, value) {
    const k = stateBytes(key, "key");
    const v = stateBytes(value, "value");
    const host = backend();
    const offset = writeOffset("set");
    if (host === undefined) {
      memory.set(memoryKey(k), v.slice());
      return;
    }
    try {
      host.set(offset, k, v);
    } catch (e) {
      throw refused(e);
    }
  },
  /** Remove `key`, for the record being processed; throws StateError if the
   * host refuses. */
  delete(key) {
    const k = stateBytes(key, "key");
    const host = backend();
    const offset = writeOffset("delete");
    if (host === undefined) {
      memory.delete(memoryKey(k));
      return;
    }
    try {
      host.delete(offset, k);
    } catch (e) {
      throw refused(e);
    }
  },
  /** Empty the in-memory state of tests (does nothing inside Weir, where the
   * host owns the state). */
  clear() {
    memory.clear();
  },
});

/** For the SDK's own tests: route state calls to `host` (an object with the
 * `get`, `set` and `delete` of the WIT `state` interface), or back to the
 * in-memory Map with undefined. */
export function _useStateHost(host) {
  stateBackend = host;
}

function fromWit(r) {
  return new Record({
    value: r.value,
    key: r.key,
    headers: r.headers.map((h) => [h.key, h.value]),
    topic: r.topic,
    partition: r.partition,
    offset: Number(r.offset),
    timestamp: r.timestamp === undefined ? undefined : Number(r.timestamp),
  });
}

function toWit(o) {
  return {
    topic: o.topic ?? undefined,
    partition: o.partition ?? undefined,
    key: toBytes(o.key),
    value: toBytes(o.value),
    headers: (o.headers ?? []).map(([key, value]) => ({ key, value: toBytes(value) ?? new Uint8Array() })),
  };
}

/** A thrown value as a record's error outcome. */
function failed(e) {
  const retryable = e instanceof ProcessError && e.retryable;
  const message = e instanceof ProcessError ? e.message : `${e?.name ?? "Error"}: ${e?.message ?? e}`;
  return { tag: "err", val: { message, retryable } };
}

const isThenable = (value) => typeof value?.then === "function";

/** Weir's `processor` export for a plugin's `process` (and optional `init`).
 * Before each record it notes the record's offset, which the `state` writes
 * `process` makes name. When `process` returns promises, the batch's outcomes
 * are awaited together (componentize-js runs the event loop until the export's
 * promise settles); a rejection is that record's error, never the batch's. */
export function definePlugin({ init, process }) {
  if (typeof process !== "function") throw new TypeError("definePlugin needs a process(record) function");
  const ok = (result) => ({ tag: "ok", val: normalizeOutputs(result).map(toWit) });
  const outcome = (raw) => {
    recordOffset = raw.offset; // what this record's state writes name
    try {
      const result = process(fromWit(raw));
      return isThenable(result) ? result.then(ok).catch(failed) : ok(result);
    } catch (e) {
      return failed(e);
    }
  };
  return {
    init(config) {
      if (!init) return;
      noRecord = IN_INIT;
      try {
        init(Object.fromEntries(config));
      } catch (e) {
        throw String(e?.message ?? e);
      } finally {
        noRecord = undefined;
      }
    },
    process(batch) {
      let outcomes;
      try {
        outcomes = batch.map(outcome);
      } finally {
        recordOffset = undefined;
      }
      if (!outcomes.some(isThenable)) return outcomes;
      // The records' code after their first await runs from here on, when
      // no record is current: its writes are refused until the batch settles.
      noRecord = AFTER_AWAIT;
      return Promise.all(outcomes).finally(() => {
        noRecord = undefined;
      });
    },
  };
}

/** `fetch(url, init)` with its failures as `ProcessError`s, for an async
 * `process`: a 5xx or 429 answer and a timeout (`timeoutMs`) are retryable;
 * any other answer that is not 2xx, and a network failure (a host the
 * operator did not allow included), are not. Returns the `Response`. */
export async function fetchOk(url, { timeoutMs, ...init } = {}) {
  let response;
  try {
    const signal = timeoutMs ? AbortSignal.timeout(timeoutMs) : init.signal;
    response = await fetch(url, { ...init, signal });
  } catch (e) {
    if (e?.name === "TimeoutError" || e?.name === "AbortError") {
      throw new ProcessError(`HTTP request to ${url} timed out`, { retryable: true });
    }
    throw new ProcessError(`HTTP request to ${url} failed (denied by the host, or unreachable): ${e?.message ?? e}`);
  }
  if (!response.ok) {
    const retryable = response.status >= 500 || response.status === 429;
    throw new ProcessError(`HTTP request to ${url} answered ${response.status}`, { retryable });
  }
  return response;
}
