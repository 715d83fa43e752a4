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
