// Example plugin: upper-cases each record's value (ASCII letters only), keeping
// its key and headers, like the Rust and Python `uppercase` examples.
import { definePlugin } from "./weir_sdk.js";

const upper = (b) => (b >= 97 && b <= 122 ? b - 32 : b);

export const processor = definePlugin({
  process(record) {
    return record.toOutput({ value: record.value?.map(upper) });
  },
});
