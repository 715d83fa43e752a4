// Hostile test plugin in C: NOT an example to copy. It proves that the host
// checks its output limits while lifting the plugin's result, not after.
//
// The canonical ABI lets a guest point many lists at the same region of its
// memory. At init this plugin allocates one 32 MiB buffer (half its 64 MiB
// memory cap); for every input record it returns 64 outputs whose values all
// alias that buffer, so each record claims 2 GiB of output bytes while the
// guest only ever holds 32 MiB. A host that copies the whole result out before
// checking sizes tries to allocate gigabytes per record.
//
// `plugin.h` is generated from Weir's WIT contract by `weir build`. The
// generated `process` post-return (a weak symbol in plugin.c) frees every list
// in the result, which would free the aliased buffer 64 times per record; the
// strong definition below overrides it and frees only the outcome array and
// each outcome's output array. The input batch is freed in `process`.
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define ALIAS_LEN ((size_t)32 * 1024 * 1024)
#define OUTPUTS_PER_RECORD 64

static uint8_t *alias_buf;

bool exports_weir_processor_processor_init(plugin_list_tuple2_string_string_t *config,
                                           plugin_string_t *err) {
    plugin_list_tuple2_string_string_free(config);
    alias_buf = malloc(ALIAS_LEN);
    if (!alias_buf) {
        plugin_string_dup(err, "alias_outputs: could not allocate 32 MiB");
        return false;
    }
    memset(alias_buf, 'x', ALIAS_LEN);
    return true;
}

void exports_weir_processor_processor_process(
    exports_weir_processor_processor_list_input_record_t *batch,
    exports_weir_processor_processor_list_outcome_t *ret) {
    ret->len = batch->len;
    ret->ptr = calloc(batch->len ? batch->len : 1, sizeof(*ret->ptr));
    for (size_t i = 0; i < batch->len; i++) {
        weir_processor_types_outcome_t *outcome = &ret->ptr[i];
        weir_processor_types_output_record_t *outs =
            calloc(OUTPUTS_PER_RECORD, sizeof(*outs));
        outcome->is_err = false;
        outcome->val.ok.ptr = outs;
        outcome->val.ok.len = OUTPUTS_PER_RECORD;
        // calloc leaves topic, partition and key none and headers empty.
        for (size_t j = 0; j < OUTPUTS_PER_RECORD; j++) {
            outs[j].value.is_some = true;
            outs[j].value.val.ptr = alias_buf;
            outs[j].value.val.len = ALIAS_LEN;
        }
    }
    exports_weir_processor_processor_list_input_record_free(batch);
}

// Overrides the generated (weak) post-return of `process`: free the arrays
// allocated above, never the aliased buffer, which lives until the instance dies.
__attribute__((__export_name__("cabi_post_weir:processor/processor@0.1.1#process")))
void __wasm_export_exports_weir_processor_processor_process_post_return(uint8_t *arg0) {
    exports_weir_processor_processor_list_outcome_t *ret =
        (exports_weir_processor_processor_list_outcome_t *)arg0;
    for (size_t i = 0; i < ret->len; i++) {
        if (!ret->ptr[i].is_err) free(ret->ptr[i].val.ok.ptr);
    }
    free(ret->ptr);
}
