/* oip_infer_fuzz.c - libFuzzer target for the Open Inference Protocol infer request decoder
 * (oip_decode_infer): JSON tensors and the binary tensor data extension, checked against a
 * manifest with every datatype family (float, half, integers, bool, BYTES) and free and fixed
 * dimensions. Input layout: two bytes of Inference-Header-Content-Length (big-endian; 0 or a
 * value past the rest = no binary part), then the body. Every decoded element is read back so
 * ASan sees any tensor whose data is shorter than its shape says, and the fast path (numeric data
 * parsed from the text) is compared with the jansson-only path: a different code, field, message
 * or tensor aborts. */
#include "api/oip_codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MANIFEST[] =
    "{\"name\":\"fuzz\",\"version\":\"1\",\"family\":\"generic\",\"runtime\":\"onnx\",\"artefact\":\"model.onnx\","
    "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
    "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,4]},"
    "{\"name\":\"ids\",\"datatype\":\"INT64\",\"shape\":[2,-1]},"
    "{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[-1]},"
    "{\"name\":\"mask\",\"datatype\":\"BOOL\",\"shape\":[-1]},"
    "{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[-1,2]},"
    "{\"name\":\"u\",\"datatype\":\"UINT8\",\"shape\":[-1,-1,-1]}],"
    "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,3]},"
    "{\"name\":\"z\",\"datatype\":\"BYTES\",\"shape\":[-1]}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mdl_manifest *manifest(void)
{
    static mdl_manifest mf;
    static int ready;
    if (!ready) {
        md_err e;
        if (mdl_manifest_parse(MANIFEST, sizeof MANIFEST - 1, &mf, &e) != MD_OK)
            abort(); /* the fixture itself is wrong */
        ready = 1;
    }
    return &mf;
}

static size_t numel(const mdl_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= (size_t)t->dims[i];
    return n;
}

/* Read every element back (sums into a volatile so nothing is optimised away). */
static void touch(const oip_infer_req *rq)
{
    volatile unsigned sink = 0;
    for (size_t i = 0; i < rq->n_inputs; i++) {
        const mdl_tensor *t = &rq->inputs[i];
        size_t n = numel(t);
        if (t->dtype == ONNX_STRING) {
            for (size_t k = 0; k < n; k++)
                sink += (unsigned)strlen(((const char *const *)t->data)[k]);
            continue;
        }
        const unsigned char *p = t->data;
        for (size_t k = 0; k < n * onnx_dtype_size(t->dtype); k++)
            sink += p[k];
    }
    for (size_t i = 0; i < rq->n_outputs; i++)
        sink += (unsigned)strlen(rq->outputs[i].name);
    (void)sink;
}

/* The two decodes agree on everything a caller sees. */
static void same(int c1, const md_err *e1, const oip_infer_req *r1, int c2, const md_err *e2, const oip_infer_req *r2)
{
    if (c1 != c2 || strcmp(e1->field, e2->field) != 0 || strcmp(e1->msg, e2->msg) != 0)
        abort();
    if (c1 != MD_OK)
        return;
    if (r1->n_inputs != r2->n_inputs || r1->n_outputs != r2->n_outputs || r1->binary_output != r2->binary_output ||
        (r1->id == NULL) != (r2->id == NULL) || (r1->id && strcmp(r1->id, r2->id) != 0))
        abort();
    for (size_t i = 0; i < r1->n_inputs; i++) {
        const mdl_tensor *x = &r1->inputs[i], *y = &r2->inputs[i];
        if (strcmp(x->name, y->name) != 0 || x->dtype != y->dtype || x->rank != y->rank ||
            memcmp(x->dims, y->dims, sizeof x->dims[0] * (size_t)x->rank) != 0)
            abort();
        size_t n = numel(x);
        if (x->dtype == ONNX_STRING) {
            for (size_t k = 0; k < n; k++)
                if (strcmp(((const char *const *)x->data)[k], ((const char *const *)y->data)[k]) != 0)
                    abort();
        } else if (n && memcmp(x->data, y->data, n * onnx_dtype_size(x->dtype)) != 0) {
            abort();
        }
    }
    for (size_t i = 0; i < r1->n_outputs; i++)
        if (strcmp(r1->outputs[i].name, r2->outputs[i].name) != 0 || r1->outputs[i].binary != r2->outputs[i].binary)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1u << 20))
        return 0;
    size_t hlen = ((size_t)data[0] << 8) | data[1], len = size - 2;
    if (hlen > len)
        hlen = 0;
    char hdr[16];
    size_t parsed = 0;
    snprintf(hdr, sizeof hdr, "%zu", hlen);
    if (hlen && oip_header_len(hdr, len, &parsed, NULL) != MD_OK)
        abort(); /* a value in 1..len must be accepted */
    md_arena *a = md_arena_new(0), *b = md_arena_new(0);
    if (!a || !b) {
        md_arena_free(a);
        md_arena_free(b);
        return 0;
    }
    oip_infer_req rq, plain;
    md_err e, pe;
    md_err_clear(&e);
    md_err_clear(&pe);
    int rc = oip_decode_infer(data + 2, len, hlen, manifest(), a, &rq, &e);
    int prc = oip__decode_infer(data + 2, len, hlen, manifest(), b, &plain, &pe, false);
    if (rc == MD_OK)
        touch(&rq);
    same(rc, &e, &rq, prc, &pe, &plain);
    md_arena_free(a);
    md_arena_free(b);
    return 0;
}
