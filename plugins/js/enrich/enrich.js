// Example plugin: the Rust `enrich` in JavaScript. For a record with key K it
// sends `GET {base_url}/K` with `fetch` (the operator must allow the service's
// host: `--allowed-outbound-host` / `allowed_outbound_hosts`) and produces the
// record with its value followed by `|` and the response body. A 5xx or 429
// answer or a timeout is a retryable error, anything else fatal (`fetchOk`).
//
// Config: `base_url` (required), e.g. `http://127.0.0.1:8080/lookup`;
// `timeout_ms` (default 3000; keep it under the plugin call timeout).
import { definePlugin, fetchOk } from "./weir_sdk.js";

const decoder = new TextDecoder();
let settings = null;

/** `value` bytes, then `|`, then `lookup` bytes. */
export function enriched(value, lookup) {
  const v = value ?? new Uint8Array();
  const out = new Uint8Array(v.length + 1 + lookup.length);
  out.set(v);
  out[v.length] = 0x7c; // '|'
  out.set(lookup, v.length + 1);
  return out;
}

export const processor = definePlugin({
  init(config) {
    if (!config.base_url) throw new Error("base_url is required, e.g. base_url=http://127.0.0.1:8080/lookup");
    const timeoutMs = config.timeout_ms === undefined ? 3000 : Number(config.timeout_ms);
    if (!(timeoutMs > 0)) throw new Error(`timeout_ms must be a positive number of milliseconds, got ${config.timeout_ms}`);
    settings = { baseUrl: config.base_url.replace(/\/+$/, ""), timeoutMs };
  },
  async process(record) {
    const key = record.key === undefined ? "" : decoder.decode(record.key);
    const response = await fetchOk(`${settings.baseUrl}/${key}`, { timeoutMs: settings.timeoutMs });
    const lookup = new Uint8Array(await response.arrayBuffer());
    return record.toOutput({ value: enriched(record.value, lookup) });
  },
});
