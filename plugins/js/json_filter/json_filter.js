// Example plugin: the Rust `json-filter` in JavaScript. Keeps JSON records whose
// top-level `field` equals `equals` (strings by text; numbers, booleans and null
// by their JSON text) and tags them with a header `header` (default
// `weir-filter`) whose value is `field=equals`. A value that is not JSON is the
// record's error.
import { definePlugin } from "./weir_sdk.js";

const encoder = new TextEncoder();
let settings = null;

/** Whether a field's JSON value equals the configured text. */
export function matches(value, equals) {
  return typeof value === "string" ? value === equals : JSON.stringify(value) === equals;
}

export const processor = definePlugin({
  init(config) {
    for (const key of ["field", "equals"]) {
      if (!(key in config)) throw new Error(`missing plugin config \`${key}\` (e.g. --plugin-config ${key}=...)`);
    }
    settings = {
      field: config.field,
      equals: config.equals,
      header: [config.header ?? "weir-filter", encoder.encode(`${config.field}=${config.equals}`)],
    };
  },
  process(record) {
    const doc = record.json();
    if (doc === null || typeof doc !== "object" || Array.isArray(doc) || !(settings.field in doc)) return null;
    if (!matches(doc[settings.field], settings.equals)) return null;
    return record.toOutput({ headers: [...record.headers, settings.header] });
  },
});
