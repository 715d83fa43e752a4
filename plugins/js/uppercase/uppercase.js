// Example plugin: upper-cases each record's value (ASCII letters only), keeping
// its key and headers, like the Rust and Python `uppercase` examples.
import { definePlugin } from "./weir_sdk.js";

// A plain loop: the guest runs JavaScript in an interpreter, where
// `Uint8Array.map` with a callback per byte costs several times as much.
function upper(bytes) {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    out[i] = b >= 97 && b <= 122 ? b - 32 : b;
  }
  return out;
}

export const processor = definePlugin({
  process(record) {
    return record.toOutput({ value: record.value && upper(record.value) });
  },
});
