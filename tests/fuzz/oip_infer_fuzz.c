/* oip_infer_fuzz.c - libFuzzer target for the Open Inference Protocol infer request decoder
 * (oip_decode_infer): JSON tensors and the binary tensor data extension, checked against a
 * manifest with every datatype family (float, half, integers, bool, BYTES) and free and fixed
 * dimensions. Input layout: two bytes of Inference-Header-Content-Length (big-endian; 0 or a
 * value past the rest = no binary part), then the body. Every decoded element is read back so
 * ASan sees any tensor whose data is shorter than its shape says. */
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
    md_arena *a = md_arena_new(0);
    if (!a)
        return 0;
    oip_infer_req rq;
    md_err e;
    if (oip_decode_infer(data + 2, len, hlen, manifest(), a, &rq, &e) == MD_OK)
        touch(&rq);
    md_arena_free(a);
    return 0;
}
