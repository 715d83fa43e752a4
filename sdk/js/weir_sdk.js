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
// crashes the plugin. These types are plain JavaScript: `node --test` runs plugin
// logic without WebAssembly. `weir build` turns the module into a component.

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
 * When `process` returns promises, the batch's outcomes are awaited together
 * (componentize-js runs the event loop until the export's promise settles); a
 * rejection is that record's error, never the batch's. */
export function definePlugin({ init, process }) {
  if (typeof process !== "function") throw new TypeError("definePlugin needs a process(record) function");
  const ok = (result) => ({ tag: "ok", val: normalizeOutputs(result).map(toWit) });
  const outcome = (raw) => {
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
      try {
        init(Object.fromEntries(config));
      } catch (e) {
        throw String(e?.message ?? e);
      }
    },
    process(batch) {
      const outcomes = batch.map(outcome);
      return outcomes.some(isThenable) ? Promise.all(outcomes) : outcomes;
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
