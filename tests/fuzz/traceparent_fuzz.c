/* traceparent_fuzz.c - the W3C traceparent parser on arbitrary bytes. A value it accepts must
 * format back to the same 55 bytes (version 00) or to version 00 of its prefix (later versions). */
#include "base/trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_ctx c;
    if (!tr_parse((const char *)data, size, &c))
        return 0;
    char out[TR_TRACEPARENT_LEN + 1];
    tr_format(&c, out);
    if (memcmp(out + 2, data + 2, TR_TRACEPARENT_LEN - 2) != 0)
        abort(); /* an accepted value round-trips (ids and flags) */
    tr_ctx back;
    if (!tr_parse(out, TR_TRACEPARENT_LEN, &back) || memcmp(&back, &c, sizeof c) != 0)
        abort();
    return 0;
}
