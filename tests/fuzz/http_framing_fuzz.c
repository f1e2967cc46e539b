/* http_framing_fuzz.c - libFuzzer target for the RFC 9112 framing verdict (src/http/framing.c)
 * that every request of the real server goes through before anything else reads it.
 * Input: byte 0 picks the version (even: HTTP/1.1, odd: HTTP/1.0); then '\n'-separated header
 * values, "c..." a Content-Length line and anything else a Transfer-Encoding line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

#define LINES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *version = (data[0] & 1) ? "HTTP/1.0" : "HTTP/1.1";
    char *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    const char *cl[LINES], *te[LINES];
    size_t ncl = 0, nte = 0;
    for (char *line = copy, *next; line && ncl < LINES && nte < LINES; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] == 'c')
            cl[ncl++] = line + 1;
        else
            te[nte++] = line;
    }
    md_err e;
    int rc = http__framing_verdict(version, cl, ncl, te, nte, &e);
    /* what a passing request must look like (framing.c invariants 1-3) */
    if (rc == MD_OK) {
        if (ncl && nte)
            __builtin_trap();
        if (nte && strcmp(version, "HTTP/1.0") == 0)
            __builtin_trap();
        for (size_t i = 1; i < ncl; i++)
            if (strcmp(cl[i], cl[0]) != 0)
                __builtin_trap();
    } else if (rc != MD_E_BAD_REQUEST && rc != MD_E_NOT_IMPLEMENTED) {
        __builtin_trap();
    }
    free(copy);
    return 0;
}
