// Example plugin in C: upper-cases each record's value (ASCII letters only),
// keeping its key and headers, like the Rust, Python and JavaScript examples.
//
// `plugin.h` is generated from Weir's WIT contract by `weir build`. The input
// batch belongs to this function: its key, value and header buffers are moved
// into the outputs (no copies), the rest is freed here; the outputs are freed
// after the host has read them.
#include <stdlib.h>

#include "plugin.h"

bool exports_weir_processor_processor_init(plugin_list_tuple2_string_string_t *config,
                                           plugin_string_t *err) {
    (void)err;
    plugin_list_tuple2_string_string_free(config);
    return true;
}

static void uppercase(plugin_list_u8_t *bytes) {
    for (size_t i = 0; i < bytes->len; i++) {
        uint8_t c = bytes->ptr[i];
        if (c >= 'a' && c <= 'z') bytes->ptr[i] = c - ('a' - 'A');
    }
}

void exports_weir_processor_processor_process(
    exports_weir_processor_processor_list_input_record_t *batch,
    exports_weir_processor_processor_list_outcome_t *ret) {
    ret->len = batch->len;
    ret->ptr = calloc(batch->len ? batch->len : 1, sizeof(*ret->ptr));
    for (size_t i = 0; i < batch->len; i++) {
        weir_processor_types_input_record_t *in = &batch->ptr[i];
        weir_processor_types_outcome_t *outcome = &ret->ptr[i];
        weir_processor_types_output_record_t *out = calloc(1, sizeof(*out));
        outcome->is_err = false;
        outcome->val.ok.ptr = out;
        outcome->val.ok.len = 1;
        out->key = in->key;
        out->value = in->value;
        out->headers = in->headers;
        if (out->value.is_some) uppercase(&out->value.val);
        plugin_string_free(&in->topic);
    }
    free(batch->ptr);
}
