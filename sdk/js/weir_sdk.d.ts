// Types of Weir's JavaScript SDK (weir_sdk.js).

/** Bytes accepted in outputs: text (UTF-8) or raw bytes. */
export type Bytes = string | Uint8Array;

/** One record consumed from Kafka. */
export declare class Record {
  constructor(fields?: Partial<{ value: Bytes; key: Bytes; headers: [string, Bytes][]; topic: string; partition: number; offset: number; timestamp: number }>);
  value: Uint8Array | undefined;
  key: Uint8Array | undefined;
  headers: [string, Uint8Array][];
  topic: string;
  partition: number;
  offset: number;
  timestamp: number | undefined;
  text(): string | null;
  json(): unknown;
  header(name: string): Uint8Array | undefined;
  toOutput(changes?: Partial<Output>): Output;
}

/** One record for Weir to produce. */
export interface Output {
  value?: Bytes | null;
  key?: Bytes | null;
  headers?: [string, Bytes][];
  /** Target topic; absent for the pipeline's output topic. */
  topic?: string;
  /** Target partition; absent lets the key decide. */
  partition?: number;
}

/** A plugin's refusal to process one record. */
export declare class ProcessError extends Error {
  constructor(message: string, options?: { retryable?: boolean });
  retryable: boolean;
}

/** A state write the host refused: a key or value over the operator's
 * `[plugin.state]` caps, the partition's state full, a write in `init` or after
 * an `await` in `process`. The record it was made for fails whatever `process`
 * returns for it. */
export declare class StateError extends Error {
  constructor(message: string);
}

/** Plugin state: a key-value store of byte strings that Weir keeps for the
 * partition being processed, across batches, crashes and rebalances. A string
 * key or value is UTF-8. Reads see the plugin's earlier writes in the
 * partition, including earlier records of the same batch. A write belongs to
 * the record being processed and takes effect only if that record is processed.
 * In an `async process`, write before the first `await`. Under node (tests) the
 * store is in memory; `clear()` empties it. */
export interface State {
  /** The value of `key`, if it has one. */
  get(key: Bytes): Uint8Array | undefined;
  /** Set `key` to `value`, for the record being processed; throws StateError if refused. */
  set(key: Bytes, value: Bytes): void;
  /** Remove `key`, for the record being processed; throws StateError if refused. */
  delete(key: Bytes): void;
  /** Empty the in-memory state of tests (does nothing inside Weir). */
  clear(): void;
}
export declare const state: State;

/** A plugin: `process` per record, optional `init` with the plugin configuration. */
export interface Plugin {
  init?(config: Record<string, string>): void;
  process(record: Record): Output | Output[] | null | undefined | Promise<Output | Output[] | null | undefined>;
}

/** Weir's `processor` export for a plugin. */
export declare function definePlugin(plugin: Plugin): unknown;
export declare function normalizeOutputs(result: unknown): Output[];
/** `fetch` with failures as ProcessErrors (5xx, 429 and timeouts retryable). */
export declare function fetchOk(url: string, init?: RequestInit & { timeoutMs?: number }): Promise<Response>;
export declare function toBytes(value: Bytes | null | undefined): Uint8Array | undefined;
/** @internal For the SDK's tests: route `state` to stand-in host functions (undefined: the in-memory Map). */
export declare function _useStateHost(host: { get(key: Uint8Array): Uint8Array | undefined; set(offset: bigint, key: Uint8Array, value: Uint8Array): void; delete(offset: bigint, key: Uint8Array): void } | undefined): void;
