/* enhance.c - POST /api/v1/enhance and /enhance/batch (admission, then one durable job per
 * image), the preview of a result, /api/v1/config, the networks' warm-up, and the "enhance"
 * job kind's run, which calls pl_enhance on a worker thread (see enhance.h).
 *
 * Invariants:
 *   1. Nothing is stored before every check passed: a request is refused whole (a batch too, at
 *      its first bad file, naming it) or accepted whole (job_submit_batch is all or nothing).
 *   2. The checks run in the documented order, cheapest first: rate limit, envelope, options,
 *      then per file size (413), magic bytes (415), header dimensions (400), memory estimate
 *      against the budget (503); then the memory of the jobs that may run at once (503,
 *      invariant 5); the queue limit last (503), inside the submit.
 *   3. The job's parameters are plain JSON ({quality, upscale, face_enhance, output_format,
 *      input_width, input_height, peak_bytes}); the run reads nothing else from the request,
 *      so a job accepted by one process runs the same in another (a `modeld worker`).
 *   4. Uploads are spooled to a file by the HTTP layer (http_route_body_to_file), never held
 *      whole: the parts are located in the file (mp_file_parse), a file's first MiB is read
 *      for its checks (the whole file only when its dimensions lie further in), and each input
 *      blob is copied from the spool file in blocks (job_input_range). A 50-file batch costs
 *      one file's head in memory, not the batch.
 *   5. Memory is admitted for what can run together, not one job at a time: at most max_running
 *      enhancement jobs run at once, taken from those PROCESSING and QUEUED (in the store, every
 *      process) plus the new ones, so the max_running largest estimates of that set bound the
 *      memory the jobs will ever hold at once; it must stay within the budget. Jobs being
 *      submitted (their inputs copied into the store) count too: the check reserves their
 *      estimates under admit_mu and the reservation is dropped once the submit returned, so two
 *      requests cannot both take the last room, and no lock is held while inputs are copied.
 *   6. A preview is made once per result: results are content-addressed (their SHA-256) and
 *      never change, so the encoded thumbnail is kept in a small in-memory cache keyed by that
 *      hash (PREVIEW_CACHE_N entries, PREVIEW_CACHE_BYTES in all, least recently used evicted).
 *      Every request still checks the job, its owner and that the result file is there.
 */
#include "api/enhance.h"

#include "api/api_int.h"
#include "api/multipart.h"
#include "base/log.h"
#include "image/image.h"
#include "pipelines/pipelines.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FILE_DEFAULT ((size_t)20 << 20)
#define BUDGET_DEFAULT ((uint64_t)1536 << 20)
#define BATCH_MAX 50
#define PREVIEW_SIDE 400
#define LIST_PAGE 256 /* jobs per store listing while summing the estimates */
#define PREVIEW_CACHE_N 64
#define PREVIEW_CACHE_BYTES ((size_t)16 << 20)

/* One cached preview (invariant 6). */
typedef struct prev_ent {
    char sha[STORE_SHA256_HEX]; /* the result's hash; "" = free slot */
    void *bytes;                /* the encoded thumbnail (owned) */
    size_t len;
    int png;       /* PNG (alpha) or JPEG */
    uint64_t used; /* tick of the last hit, for LRU */
} prev_ent;

struct api_enhance {
    api_enhance_opts o;
    rl_limiter *rl;
    pthread_mutex_t admit_mu; /* guards resv (invariant 5) */
    uint64_t *resv;           /* estimates of the jobs being submitted now */
    size_t n_resv, cap_resv;
    pthread_mutex_t prev_mu; /* guards prev, prev_bytes, prev_tick */
    prev_ent prev[PREVIEW_CACHE_N];
    size_t prev_bytes;
    uint64_t prev_tick;
};

typedef struct enh_opts {
    pl_enh_in in;            /* quality, scale, face_enhance, out_format */
    const char *format_name; /* "jpg", "png", "webp" */
} enh_opts;

static const struct {
    const char *name;
    img_format f;
} OUT_FORMATS[] = {{"jpg", IMG_FMT_JPEG}, {"png", IMG_FMT_PNG}, {"webp", IMG_FMT_WEBP}};

/* ---- options ------------------------------------------------------------------------------ */

/* The text of form field name (NUL-terminated into buf), or NULL when absent. */
static const char *field_text(const mp_part *parts, size_t n, const char *name, char *buf,
                              size_t cap)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(parts[i].name, name) == 0 && !parts[i].filename[0]) {
            size_t len = parts[i].len < cap - 1 ? parts[i].len : cap - 1;
            memcpy(buf, parts[i].data, len);
            buf[len] = '\0';
            return buf;
        }
    return NULL;
}

static int parse_bool(const char *v, int *out, md_err *err)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "on") == 0)
        *out = 1;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "off") == 0)
        *out = 0;
    else
        return md_fail(err, MD_E_INVALID_PARAM, "face_enhance",
                       "must be true or false, got \"%.32s\"", v);
    return MD_OK;
}

static int parse_format(const char *v, enh_opts *o, md_err *err)
{
    for (size_t i = 0; i < sizeof OUT_FORMATS / sizeof OUT_FORMATS[0]; i++)
        if (strcmp(v, OUT_FORMATS[i].name) == 0) {
            o->in.out_format = OUT_FORMATS[i].f;
            o->format_name = OUT_FORMATS[i].name;
            return MD_OK;
        }
    return md_fail(err, MD_E_INVALID_PARAM, "output_format",
                   "must be jpg, png or webp, got \"%.32s\"", v);
}

static int parse_scale(const char *v, int *out, md_err *err)
{
    if (strcmp(v, "2") == 0 || strcmp(v, "3") == 0 || strcmp(v, "4") == 0 || strcmp(v, "8") == 0) {
        *out = v[0] - '0';
        return MD_OK;
    }
    return md_fail(err, MD_E_INVALID_PARAM, "upscale", "must be 2, 3, 4 or 8, got \"%.32s\"", v);
}

/* The options of the form, with their defaults (balanced, 4, false, jpg). */
static int parse_options(const mp_part *parts, size_t n, enh_opts *o, md_err *err)
{
    char bq[32], bu[32], bf[32], bo[32];
    const char *q = field_text(parts, n, "quality", bq, sizeof bq);
    const char *u = field_text(parts, n, "upscale", bu, sizeof bu);
    const char *f = field_text(parts, n, "face_enhance", bf, sizeof bf);
    const char *of = field_text(parts, n, "output_format", bo, sizeof bo);
    memset(o, 0, sizeof *o);
    o->in.quality = PL_ENH_BALANCED;
    o->in.scale = 4;
    o->in.out_format = IMG_FMT_JPEG;
    o->format_name = "jpg";
    int rc = q ? pl_enh_quality_parse(q, &o->in.quality, err) : MD_OK;
    if (rc == MD_OK && u)
        rc = parse_scale(u, &o->in.scale, err);
    if (rc == MD_OK && f)
        rc = parse_bool(f, &o->in.face_enhance, err);
    if (rc == MD_OK && of)
        rc = parse_format(of, o, err);
    if (rc == MD_OK && o->in.face_enhance && !pl_enhance_face_available(NULL))
        rc = md_fail(err, MD_E_UNSUPPORTED, "face_enhance",
                     "face enhancement is not available on this server (no face detector)");
    return rc;
}

/* ---- admission ---------------------------------------------------------------------------- */

/* Per key (per client address without one) over both submit routes. */
static int rate_check(api_enhance *a, http_req *req)
{
    if (a->o.rate.per_sec <= 0)
        return MD_OK;
    const http_identity *id = http_req_identity(req);
    char key[96]; /* "enh:": apart from the role buckets when they share one store */
    snprintf(key, sizeof key, "enh:%s", id && id->key_id[0] ? id->key_id : http_req_client_ip(req));
    rl_result res;
    int rc = rl_take(a->rl, key, strlen(key), a->o.rate, &res);
    if (rc != MD_E_RATE_LIMITED)
        return MD_OK;
    char retry[16];
    snprintf(retry, sizeof retry, "%u", res.retry_after_s);
    http_reply_header(req, "Retry-After", retry);
    return md_fail(http_req_err(req), MD_E_RATE_LIMITED, NULL,
                   "too many enhancement requests: at most %.3g per second (burst %u) per key",
                   a->o.rate.per_sec, a->o.rate.burst);
}

/* The text of the option parts (not named field: those are files) read from the body file into
 * the arena, at most OPTION_MAX bytes each: enough for any option value, whose check then names
 * it. */
#define OPTION_MAX 64

static int read_options(http_req *req, int fd, mp_part *parts, size_t n, const char *field)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(parts[i].name, field) == 0)
            continue;
        size_t len = parts[i].len < OPTION_MAX ? parts[i].len : OPTION_MAX;
        uint8_t *text = md_arena_alloc(http_req_arena(req), len + 1);
        if (!text)
            return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
        if (pread(fd, text, len, (off_t)parts[i].offset) != (ssize_t)len)
            return md_fail(http_req_err(req), MD_E_IO, "body", "cannot read the upload");
        parts[i].data = text;
        parts[i].len = len;
    }
    return MD_OK;
}

/* Every part of the request's multipart body, located in its spool file (invariant 4); *parts
 * is in the arena, files' data stay in the file (data NULL), options are read (read_options). */
static int parse_form(http_req *req, const char *field, http_body_file *body, mp_part **parts,
                      size_t *n)
{
    md_err *err = http_req_err(req);
    const char *ct = http_req_header(req, "Content-Type");
    char boundary[MP_BOUNDARY_MAX + 1];
    int rc = mp_boundary(ct ? ct : "", boundary, sizeof boundary, err);
    if (rc == MD_OK)
        rc = http_req_body_file(req, body);
    if (rc != MD_OK)
        return rc;
    *parts = md_arena_alloc(http_req_arena(req), MP_PARTS_MAX * sizeof **parts);
    if (!*parts)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    rc = mp_file_parse(body->fd, body->size, boundary, *parts, MP_PARTS_MAX, n, err);
    return rc == MD_OK ? read_options(req, body->fd, *parts, *n, field) : rc;
}

/* The first bytes of a file part (all of it when whole or when it is short): what the magic
 * bytes and the header dimensions are read from. *out is new (free()). */
#define HEAD_BYTES ((size_t)1 << 20)

static int read_head(int fd, const mp_part *p, bool whole, uint8_t **out, size_t *len, md_err *err)
{
    *len = whole || p->len < HEAD_BYTES ? p->len : HEAD_BYTES;
    *out = malloc(*len ? *len : 1);
    if (!*out)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (pread(fd, *out, *len, (off_t)p->offset) != (ssize_t)*len) {
        free(*out);
        *out = NULL;
        return md_fail(err, MD_E_IO, "body", "cannot read the upload");
    }
    return MD_OK;
}

/* The header dimensions from the file's first MiB, or from the whole file (at most
 * max_file_bytes) when they lie further in (a JPEG behind big metadata segments). */
static int probe_file(int fd, const mp_part *p, img_format *fmt, int *w, int *h, md_err *err)
{
    uint8_t *head = NULL;
    size_t len = 0;
    int rc = read_head(fd, p, false, &head, &len, err);
    if (rc == MD_OK && img_sniff(head, len) == IMG_FMT_UNKNOWN)
        rc = md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image",
                     "%s is not a JPEG, PNG, TIFF, BMP or WebP image",
                     p->filename[0] ? p->filename : "the file");
    if (rc == MD_OK)
        rc = img_probe(head, len, NULL, fmt, w, h, err);
    if (rc != MD_OK && rc != MD_E_UNSUPPORTED_FORMAT && head && len < p->len) {
        free(head);
        md_err_clear(err);
        rc = read_head(fd, p, true, &head, &len, err);
        if (rc == MD_OK)
            rc = img_probe(head, len, NULL, fmt, w, h, err);
    }
    free(head);
    return rc;
}

/* The checks of one file (invariant 2); *peak gets its memory estimate, w and h its size. */
static int check_file(api_enhance *a, int fd, const mp_part *p, const char *field,
                      const enh_opts *o, uint64_t *peak, int *w, int *h, md_err *err)
{
    size_t max = a->o.max_file_bytes;
    if (p->len > max)
        return md_fail(err, MD_E_TOO_LARGE, field, "%s%s%s is %zu bytes, more than %zu",
                       p->filename[0] ? "\"" : "", p->filename[0] ? p->filename : "the file",
                       p->filename[0] ? "\"" : "", p->len, max);
    if (p->len == 0)
        return md_fail(err, MD_E_MISSING_FIELD, field, "the file is empty");
    img_format fmt;
    int rc = probe_file(fd, p, &fmt, w, h, err);
    if (rc == MD_OK) {
        pl_ctx cx = {.models = a->o.models};
        rc = pl_enhance_estimate(&cx, *w, *h, &o->in, peak, err);
    }
    if (rc != MD_OK) {
        if (!err->field[0] || strcmp(err->field, "image") == 0)
            snprintf(err->field, sizeof err->field, "%s", field);
        return rc;
    }
    if (*peak > a->o.memory_budget)
        return md_fail(
            err, MD_E_OVERLOADED, field,
            "a %dx%d image at x%d needs about %llu MB, over the memory budget of %llu MB", *w, *h,
            o->in.scale, (unsigned long long)(*peak >> 20),
            (unsigned long long)(a->o.memory_budget >> 20));
    return MD_OK;
}

/* The job parameters (invariant 3). *out is new (free). */
static char *params_json(const enh_opts *o, int w, int h, uint64_t peak)
{
    json_t *j = json_pack("{s:s, s:i, s:b, s:s, s:i, s:i, s:I}", "quality",
                          pl_enh_quality_name(o->in.quality), "upscale", o->in.scale,
                          "face_enhance", o->in.face_enhance, "output_format", o->format_name,
                          "input_width", w, "input_height", h, "peak_bytes", (json_int_t)peak);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

typedef struct submission {
    job_submit_in in[BATCH_MAX];
    job_input_range range[BATCH_MAX]; /* each file's bytes in the spool file */
    char *params[BATCH_MAX];
    uint64_t peak[BATCH_MAX];
    size_t n;
} submission;

static void submission_free(submission *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->params[i]);
}

/* Check the parts named field (at most max of them) and prepare one job each. */
static int prepare(api_enhance *a, http_req *req, int fd, const mp_part *parts, size_t n,
                   const char *field, size_t max, const enh_opts *o, submission *s)
{
    md_err *err = http_req_err(req);
    const char *owner = http_req_identity(req)->key_id;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += strcmp(parts[i].name, field) == 0;
    if (count > max)
        return md_fail(err, MD_E_INVALID_PARAM, field, "at most %zu files per request, got %zu",
                       max, count);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(parts[i].name, field) != 0)
            continue;
        char fname[64];
        snprintf(fname, sizeof fname, max > 1 ? "%s[%zu]" : "%s", field, s->n);
        uint64_t peak = 0;
        int w = 0, h = 0;
        int rc = check_file(a, fd, &parts[i], fname, o, &peak, &w, &h, err);
        if (rc != MD_OK)
            return rc;
        s->peak[s->n] = peak;
        s->params[s->n] = params_json(o, w, h, peak);
        if (!s->params[s->n])
            return md_fail(err, MD_E_NOMEM, NULL, NULL);
        s->range[s->n] = (job_input_range){.fd = fd, .offset = parts[i].offset};
        s->in[s->n] = (job_submit_in){.kind = "enhance",
                                      .owner = owner,
                                      .params_json = s->params[s->n],
                                      .input_range = &s->range[s->n],
                                      .input_len = parts[i].len,
                                      .input_name = parts[i].filename,
                                      .trace = http_req_trace(req)};
        s->n++;
    }
    if (s->n == 0)
        return md_fail(err, MD_E_MISSING_FIELD, field, "the form has no \"%s\" part", field);
    return MD_OK;
}

/* ---- memory of the jobs that may run at once (invariant 5) ---------------------------------- */

typedef struct u64s {
    uint64_t *v;
    size_t n, cap;
} u64s;

static int u64s_push(u64s *a, uint64_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        uint64_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return MD_E_NOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return MD_OK;
}

/* The admission estimate a job's params carry (invariant 3); 0 when absent. */
static uint64_t params_peak(const char *params)
{
    json_t *p = json_loads(params, 0, NULL);
    json_int_t v = json_integer_value(json_object_get(p, "peak_bytes"));
    json_decref(p);
    return v > 0 ? (uint64_t)v : 0;
}

/* Append the estimates of every enhancement job in state st (all processes) to out. */
static int estimates_in_state(api_enhance *a, int st, u64s *out, md_err *err)
{
    job_filter f = {.kind = "enhance", .state = st, .limit = LIST_PAGE};
    for (;;) {
        job_info *list = NULL;
        size_t n = 0;
        int64_t next = 0;
        int rc = job_list(a->o.jq, &f, &list, &n, &next, err);
        for (size_t i = 0; rc == MD_OK && i < n; i++)
            rc = u64s_push(out, params_peak(list[i].params));
        free(list);
        if (rc != MD_OK || next == 0)
            return rc == MD_E_NOMEM ? md_fail(err, rc, NULL, NULL) : rc;
        f.before = next;
    }
}

static int cmp_desc(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

/* Refuse s (MD_E_OVERLOADED, naming field) when the max_running largest estimates among the
 * running, queued, being submitted and new jobs pass the budget. Called with admit_mu held. */
static int check_together(api_enhance *a, const submission *s, const char *field, md_err *err)
{
    u64s all = {0};
    int rc = estimates_in_state(a, JOB_PROCESSING, &all, err);
    if (rc == MD_OK)
        rc = estimates_in_state(a, JOB_QUEUED, &all, err);
    for (size_t i = 0; rc == MD_OK && i < a->n_resv; i++)
        if (u64s_push(&all, a->resv[i]) != MD_OK)
            rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    size_t before = all.n;
    for (size_t i = 0; rc == MD_OK && i < s->n; i++)
        if (u64s_push(&all, s->peak[i]) != MD_OK)
            rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK) {
        size_t k = a->o.max_running > 0 ? (size_t)a->o.max_running : 1;
        uint64_t sum = 0;
        qsort(all.v, all.n, sizeof *all.v, cmp_desc);
        for (size_t i = 0; i < k && i < all.n; i++)
            sum += all.v[i];
        if (sum > a->o.memory_budget)
            rc = md_fail(err, MD_E_OVERLOADED, field,
                         "with %zu enhancement job(s) running or queued and %zu new, the %zu that "
                         "can run at once would need about %llu MB, over the memory budget of "
                         "%llu MB",
                         before, s->n, k < all.n ? k : all.n, (unsigned long long)(sum >> 20),
                         (unsigned long long)(a->o.memory_budget >> 20));
    }
    free(all.v);
    return rc;
}

/* Check s and reserve its estimates (invariant 5). Called with admit_mu held. */
static int reserve(api_enhance *a, const submission *s, const char *field, md_err *err)
{
    int rc = check_together(a, s, field, err);
    if (rc == MD_OK && a->n_resv + s->n > a->cap_resv) {
        size_t cap = a->cap_resv ? 2 * a->cap_resv : 64;
        while (cap < a->n_resv + s->n)
            cap *= 2;
        uint64_t *v = realloc(a->resv, cap * sizeof *v);
        if (v == NULL)
            return md_fail(err, MD_E_NOMEM, NULL, NULL);
        a->resv = v;
        a->cap_resv = cap;
    }
    for (size_t i = 0; rc == MD_OK && i < s->n; i++)
        a->resv[a->n_resv++] = s->peak[i];
    return rc;
}

/* Drop one reservation of each of s's estimates. Called with admit_mu held. */
static void unreserve(api_enhance *a, const submission *s)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t r = 0; r < a->n_resv; r++)
            if (a->resv[r] == s->peak[i]) {
                a->resv[r] = a->resv[--a->n_resv];
                break;
            }
}

/* The memory check, then the submission of s (invariant 5). One job: *j gets it; else a
 * batch: *b and ids get it. */
static int submit_admitted(api_enhance *a, const submission *s, const char *field, job_info *j,
                           job_batch *b, char (*ids)[JOB_ID_MAX], md_err *err)
{
    pthread_mutex_lock(&a->admit_mu);
    int rc = reserve(a, s, field, err);
    pthread_mutex_unlock(&a->admit_mu);
    if (rc != MD_OK)
        return rc;
    rc = j ? job_submit(a->o.jq, &s->in[0], j, err)
           : job_submit_batch(a->o.jq, s->in, s->n, b, ids, err);
    pthread_mutex_lock(&a->admit_mu);
    unreserve(a, s);
    pthread_mutex_unlock(&a->admit_mu);
    return rc;
}

static int reply_job(http_req *req, const job_info *j)
{
    return api_job_reply(req, 202, j);
}

/* The admission of both submit routes (invariant 2): up to max parts named field become
 * prepared jobs in *s (in the arena; submission_free after use). */
static int admit(api_enhance *a, http_req *req, const char *field, size_t max, submission **s)
{
    mp_part *parts = NULL;
    size_t n = 0;
    enh_opts o;
    http_body_file body;
    *s = md_arena_alloc(http_req_arena(req), sizeof **s);
    if (!*s)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    (*s)->n = 0;
    int rc = rate_check(a, req);
    if (rc == MD_OK)
        rc = parse_form(req, field, &body, &parts, &n);
    if (rc == MD_OK)
        rc = parse_options(parts, n, &o, http_req_err(req));
    if (rc == MD_OK)
        rc = prepare(a, req, body.fd, parts, n, field, max, &o, *s);
    return rc;
}

static int enhance_one(http_req *req, void *ctx)
{
    api_enhance *a = ctx;
    submission *s = NULL;
    job_info *j = md_arena_alloc(http_req_arena(req), sizeof *j);
    int rc = j ? admit(a, req, "file", 1, &s) : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = submit_admitted(a, s, "file", j, NULL, NULL, http_req_err(req));
    if (s)
        submission_free(s);
    if (rc != MD_OK)
        return rc;
    http_req_log(req, MD_LOG_INFO, "enhance job %s queued", j->id);
    return reply_job(req, j);
}

static int enhance_batch(http_req *req, void *ctx)
{
    api_enhance *a = ctx;
    submission *s = NULL;
    char(*ids)[JOB_ID_MAX] = md_arena_alloc(http_req_arena(req), BATCH_MAX * JOB_ID_MAX);
    job_batch b;
    int rc = ids ? admit(a, req, "files", BATCH_MAX, &s)
                 : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = submit_admitted(a, s, "files", NULL, &b, ids, http_req_err(req));
    size_t count = s ? s->n : 0;
    if (s)
        submission_free(s);
    if (rc != MD_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(arr, json_string(ids[i]));
    char self[80];
    snprintf(self, sizeof self, "/api/v1/batch/%s", b.id);
    http_req_log(req, MD_LOG_INFO, "enhance batch %s queued (%zu jobs)", b.id, count);
    return http_reply_json(req, 202,
                           json_pack("{s:b, s:s, s:o, s:s, s:i, s:{s:s, s:s+}}", "success", 1,
                                     "batch_id", b.id, "job_ids", arr, "status", "QUEUED", "total",
                                     (int)count, "links", "self", self, "results", self,
                                     "/results"));
}

/* ---- preview ------------------------------------------------------------------------------ */

/* Limits for reading a result back: results may be as large as pl_enhance makes them. */
static img_limits result_limits(void)
{
    return (img_limits){
        .max_width = 65535, .max_height = 65535, .max_pixels = PL_ENH_MAX_OUT_PIXELS};
}

/* A copy of the cached preview of result sha (*bytes new: free()), or 0 when not cached. */
static int prev_get(api_enhance *a, const char *sha, void **bytes, size_t *len, int *png)
{
    int hit = 0;
    pthread_mutex_lock(&a->prev_mu);
    for (int i = 0; i < PREVIEW_CACHE_N && !hit; i++) {
        prev_ent *e = &a->prev[i];
        if (!e->sha[0] || strcmp(e->sha, sha) != 0)
            continue;
        *bytes = malloc(e->len ? e->len : 1);
        if (*bytes) {
            memcpy(*bytes, e->bytes, e->len);
            *len = e->len;
            *png = e->png;
            e->used = ++a->prev_tick;
            hit = 1;
        }
    }
    pthread_mutex_unlock(&a->prev_mu);
    return hit;
}

static void prev_drop(api_enhance *a, prev_ent *e)
{
    a->prev_bytes -= e->len;
    free(e->bytes);
    memset(e, 0, sizeof *e);
}

/* Keep a copy of a freshly made preview, evicting the least recently used entries to stay
 * within the cache's count and bytes. Best effort: out of memory only skips caching. */
static void prev_put(api_enhance *a, const char *sha, const void *bytes, size_t len, int png)
{
    void *copy = len <= PREVIEW_CACHE_BYTES / 8 ? malloc(len ? len : 1) : NULL;
    if (!copy)
        return;
    memcpy(copy, bytes, len);
    pthread_mutex_lock(&a->prev_mu);
    for (;;) {
        prev_ent *lru = NULL, *free_slot = NULL;
        for (int i = 0; i < PREVIEW_CACHE_N; i++) {
            prev_ent *e = &a->prev[i];
            if (e->sha[0] && strcmp(e->sha, sha) == 0) { /* a racing request cached it */
                pthread_mutex_unlock(&a->prev_mu);
                free(copy);
                return;
            }
            if (!e->sha[0])
                free_slot = free_slot ? free_slot : e;
            else if (!lru || e->used < lru->used)
                lru = e;
        }
        if (free_slot && a->prev_bytes + len <= PREVIEW_CACHE_BYTES) {
            *free_slot = (prev_ent){.bytes = copy, .len = len, .png = png, .used = ++a->prev_tick};
            snprintf(free_slot->sha, sizeof free_slot->sha, "%s", sha);
            a->prev_bytes += len;
            break;
        }
        prev_drop(a, lru); /* never NULL here: no room means some entry is in use */
    }
    pthread_mutex_unlock(&a->prev_mu);
}

/* The thumbnail of the result at path: decoded, fitted into 400 x 400, encoded (PNG with alpha,
 * else JPEG). *bytes new (free()). */
static int make_preview(const char *path, void **bytes, size_t *len, int *png, md_err *err)
{
    md_image *img = NULL, *small = NULL;
    img_limits lim = result_limits();
    int rc = img_load_file(path, &lim, &img, err);
    if (rc == MD_E_FILE_NOT_FOUND)
        rc = md_fail(err, MD_E_NOT_FOUND, "job_id", "the result has expired");
    if (rc == MD_OK)
        rc = img_fit(img, PREVIEW_SIDE, PREVIEW_SIDE, &small, err);
    img_free(img);
    md_buf out;
    md_buf_init(&out, (size_t)64 << 20);
    *png = small && small->has_alpha;
    if (rc == MD_OK)
        rc = img_encode(small, *png ? IMG_FMT_PNG : IMG_FMT_JPEG, 85, &out, err);
    img_free(small);
    if (rc != MD_OK) {
        md_buf_free(&out);
        return rc;
    }
    *bytes = md_buf_steal(&out, len);
    return MD_OK;
}

static int preview(http_req *req, void *ctx)
{
    api_enhance *a = ctx;
    md_err *err = http_req_err(req);
    job_info *j = md_arena_alloc(http_req_arena(req), sizeof *j);
    if (!j)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = job_get(a->o.jq, http_req_param(req, "id"), j, err);
    if (rc == MD_OK && !api_jobs_visible(req, j->owner))
        rc = md_fail(err, MD_E_NOT_FOUND, "job_id", "no such job");
    char path[4096];
    if (rc == MD_OK)
        rc = job_result_path(a->o.jq, j, path, sizeof path, err);
    if (rc == MD_OK && access(path, R_OK) != 0) /* swept: a cached preview must not outlive it */
        rc = md_fail(err, MD_E_NOT_FOUND, "job_id", "the result has expired");
    if (rc != MD_OK)
        return rc;
    void *bytes = NULL;
    size_t len = 0;
    const char *sha = j->result_sha256;
    int png = 0, hit = sha[0] && prev_get(a, sha, &bytes, &len, &png);
    if (!hit) {
        rc = make_preview(path, &bytes, &len, &png, err);
        if (rc != MD_OK)
            return rc;
        if (sha[0])
            prev_put(a, sha, bytes, len, png);
    }
    rc = http_reply_take(req, 200, png ? "image/png" : "image/jpeg", bytes, len);
    if (rc == MD_OK) {
        http_reply_header(req, "Cache-Control", "private, max-age=3600");
        http_reply_header(req, "X-Cache", hit ? "HIT" : "MISS");
    }
    return rc;
}

/* ---- config and warm-up ------------------------------------------------------------------- */

static int config(http_req *req, void *ctx)
{
    api_enhance *a = ctx;
    img_limits in = img_limits_default();
    int face = pl_enhance_face_available(NULL);
    json_t *o = json_pack(
        "{s:b, s:[s,s,s], s:[i,i,i,i], s:[s,s,s], s:{s:s, s:i, s:b, s:s},"
        " s:{s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:s},"
        " s:{s:b, s:s?}, s:{s:s, s:s, s:s}}",
        "success", 1, "qualities", "fast", "balanced", "best", "scales", 2, 3, 4, 8, "formats",
        "jpg", "png", "webp", "defaults", "quality", "balanced", "upscale", 4, "face_enhance", 0,
        "output_format", "jpg", "limits", "max_file_bytes", (json_int_t)a->o.max_file_bytes,
        "max_batch_files", BATCH_MAX, "max_input_width", (json_int_t)in.max_width,
        "max_input_height", (json_int_t)in.max_height, "max_input_pixels",
        (json_int_t)in.max_pixels, "max_output_pixels", (json_int_t)PL_ENH_MAX_OUT_PIXELS,
        "memory_budget_bytes", (json_int_t)a->o.memory_budget, "max_running_jobs", a->o.max_running,
        "queue_max", (json_int_t)a->o.queue_max, "input_formats", "jpeg png tiff bmp webp",
        "face_enhance", "available", face, "reason",
        face ? NULL
             : "no face detector is available on this server: face_enhance=true is "
               "refused with 422",
        "quality_networks", "fast", "esrgan-slim", "balanced", "esrgan-medium", "best",
        "esrgan-thick");
    return http_reply_json(req, 200, o);
}

/* A small encoded test card for the warm-up runs. *out new (md_buf_free). */
static int test_card(md_buf *out, md_err *err)
{
    md_image *img = img_new(24, 24);
    if (!img)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    for (int i = 0; i < 24 * 24; i++) {
        img->rgba[i * 4 + 0] = (uint8_t)(i * 7);
        img->rgba[i * 4 + 1] = (uint8_t)(i / 24 * 10);
        img->rgba[i * 4 + 2] = (uint8_t)(i % 24 * 10);
        img->rgba[i * 4 + 3] = 255;
    }
    md_buf_init(out, (size_t)1 << 20);
    int rc = img_encode(img, IMG_FMT_PNG, 0, out, err);
    img_free(img);
    return rc;
}

/* One warm-up run of (quality, scale): {quality, upscale, model, status, ms[, error]}. */
static json_t *warm_one(api_enhance *a, const md_buf *card, pl_enh_quality q, int scale,
                        const md_cancel *cancel)
{
    char model[32];
    pl_enh_model_name(q, scale, model, sizeof model, NULL);
    pl_enh_in in = {.image = card->data,
                    .image_len = card->len,
                    .quality = q,
                    .scale = scale,
                    .out_format = IMG_FMT_PNG};
    pl_ctx cx = {.models = a->o.models, .cancel = cancel};
    pl_enh_out out;
    md_err e;
    md_err_clear(&e);
    uint64_t t0 = md_now_ns();
    int rc = pl_enhance(&cx, &in, &out, &e);
    double ms = (double)(md_now_ns() - t0) / 1e6;
    pl_enh_out_free(&out);
    return json_pack("{s:s, s:i, s:s, s:s, s:f, s:s?}", "quality", pl_enh_quality_name(q),
                     "upscale", scale, "model", model, "status",
                     rc == MD_OK ? "ok" : md_err_name(rc), "ms", ms, "error",
                     rc == MD_OK ? NULL : md_err_message(&e));
}

/* POST /api/v1/models/warmup[?quality=&upscale=]: every network (or the ones named) loaded and
 * run once on a small image, with its time. */
static int warmup(http_req *req, void *ctx)
{
    api_enhance *a = ctx;
    md_err *err = http_req_err(req);
    const char *qs = http_req_query(req, "quality"), *us = http_req_query(req, "upscale");
    pl_enh_quality only_q = PL_ENH_FAST;
    int only_s = 0;
    int rc = qs ? pl_enh_quality_parse(qs, &only_q, err) : MD_OK;
    if (rc == MD_OK && us)
        rc = parse_scale(us, &only_s, err);
    md_buf card;
    if (rc == MD_OK)
        rc = test_card(&card, err);
    if (rc != MD_OK)
        return rc;
    static const int scales[] = {2, 3, 4, 8};
    json_t *arr = json_array();
    size_t ok = 0, total = 0;
    for (int q = PL_ENH_FAST; q <= PL_ENH_BEST; q++)
        for (size_t i = 0; i < 4; i++) {
            if ((qs && q != (int)only_q) || (us && scales[i] != only_s))
                continue;
            json_t *r = warm_one(a, &card, (pl_enh_quality)q, scales[i], http_req_cancel(req));
            ok += strcmp(json_string_value(json_object_get(r, "status")), "ok") == 0;
            total++;
            json_array_append_new(arr, r);
        }
    md_buf_free(&card);
    return http_reply_json(req, 200,
                           json_pack("{s:b, s:i, s:i, s:o}", "success", 1, "warmed", (int)ok,
                                     "total", (int)total, "models", arr));
}

/* ---- the job kind ------------------------------------------------------------------------- */

/* pl_enh_in from a job's parameters (invariant 3). */
static int params_in(const job_info *j, pl_enh_in *in, md_err *err)
{
    json_t *p = json_loads(j->params, 0, NULL);
    const char *q = json_string_value(json_object_get(p, "quality"));
    const char *f = json_string_value(json_object_get(p, "output_format"));
    enh_opts o = {0};
    int rc = pl_enh_quality_parse(q, &o.in.quality, err);
    if (rc == MD_OK)
        rc = parse_format(f ? f : "", &o, err);
    o.in.scale = (int)json_integer_value(json_object_get(p, "upscale"));
    o.in.face_enhance = json_is_true(json_object_get(p, "face_enhance"));
    json_decref(p);
    *in = o.in;
    return rc;
}

static const char *format_name(img_format f)
{
    for (size_t i = 0; i < sizeof OUT_FORMATS / sizeof OUT_FORMATS[0]; i++)
        if (OUT_FORMATS[i].f == f)
            return OUT_FORMATS[i].name;
    return "bin";
}

static int run_pipeline(api_enhance_kind *k, job_run *r, pl_enh_in *in, md_err *err)
{
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = job_run_read_input(r, (size_t)64 << 20, &data, &n, err);
    if (rc != MD_OK)
        return rc;
    in->image = data;
    in->image_len = n;
    pl_ctx cx = {.models = k->models, .cancel = job_run_cancel(r), .trace = job_run_trace(r)};
    pl_enh_out out;
    rc = pl_enhance(&cx, in, &out, err);
    free(data);
    char model[32] = "", meta[512];
    pl_enh_model_name(in->quality, in->scale, model, sizeof model, NULL);
    snprintf(meta, sizeof meta,
             "{\"width\":%d,\"height\":%d,\"format\":\"%s\",\"faces_found\":%d,\"tiles\":%d,"
             "\"total_ms\":%.1f,\"model\":\"%s\"}",
             out.width, out.height, format_name(out.format), out.faces_found, out.tiles,
             out.total_ms, model);
    if (rc == MD_OK)
        rc = job_run_set_result(r, out.image.data, out.image.len, meta, err);
    pl_enh_out_free(&out);
    return rc;
}

int api_enhance_run(job_run *r, void *user)
{
    api_enhance_kind *k = user;
    md_err *err = job_run_err(r);
    pl_enh_in in;
    int rc = params_in(job_run_info(r), &in, err);
    if (rc != MD_OK)
        return rc;
    json_t *p = json_loads(job_run_info(r)->params, 0, NULL);
    int64_t peak = json_integer_value(json_object_get(p, "peak_bytes"));
    json_decref(p);
    if (k->japi)
        api_jobs_hold(k->japi, peak);
    rc = run_pipeline(k, r, &in, err);
    if (k->japi)
        api_jobs_hold(k->japi, -peak);
    return rc;
}

/* ---- the route table ---------------------------------------------------------------------- */

#define S_OPTION_PROPS                                                                             \
    "\"quality\":{\"type\":\"string\",\"enum\":[\"fast\",\"balanced\",\"best\"],"                  \
    "\"default\":\"balanced\"},"                                                                   \
    "\"upscale\":{\"type\":\"integer\",\"enum\":[2,3,4,8],\"default\":4},"                         \
    "\"face_enhance\":{\"type\":\"boolean\",\"default\":false},"                                   \
    "\"output_format\":{\"type\":\"string\",\"enum\":[\"jpg\",\"png\",\"webp\"],"                  \
    "\"default\":\"jpg\"}"

static const char S_ONE_REQ[] =
    "{\"multipart/form-data\":{\"type\":\"object\",\"required\":[\"file\"],\"properties\":{"
    "\"file\":{\"type\":\"string\",\"format\":\"binary\",\"description\":\"JPEG, PNG, TIFF, BMP "
    "or WebP, at most 20 MB\"}," S_OPTION_PROPS "}}}";
static const char S_BATCH_REQ[] =
    "{\"multipart/form-data\":{\"type\":\"object\",\"required\":[\"files\"],\"properties\":{"
    "\"files\":{\"type\":\"array\",\"maxItems\":50,\"items\":{\"type\":\"string\",\"format\":"
    "\"binary\"}}," S_OPTION_PROPS "}}}";
static const char S_ONE_RESP[] =
    "{\"type\":\"object\",\"required\":[\"job_id\",\"status\",\"links\"],\"properties\":{"
    "\"job_id\":{\"type\":\"string\"},\"status\":{\"const\":\"QUEUED\"},"
    "\"progress\":{\"type\":\"integer\"},\"links\":{\"type\":\"object\",\"properties\":{"
    "\"self\":{\"type\":\"string\"},\"result\":{\"type\":\"string\"},\"preview\":{\"type\":"
    "\"string\"},\"status\":{\"type\":\"string\",\"description\":\"WebSocket of progress\"}}}}}";
static const char S_BATCH_RESP[] =
    "{\"type\":\"object\",\"required\":[\"batch_id\",\"job_ids\"],\"properties\":{"
    "\"batch_id\":{\"type\":\"string\"},\"job_ids\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"string\"}},\"status\":{\"const\":\"QUEUED\"},\"total\":{\"type\":\"integer\"},"
    "\"links\":{\"type\":\"object\"}}}";
static const char S_CONFIG[] =
    "{\"type\":\"object\",\"properties\":{\"qualities\":{\"type\":\"array\"},"
    "\"scales\":{\"type\":\"array\"},\"formats\":{\"type\":\"array\"},"
    "\"defaults\":{\"type\":\"object\"},\"limits\":{\"type\":\"object\"},"
    "\"face_enhance\":{\"type\":\"object\",\"properties\":{\"available\":{\"type\":\"boolean\"},"
    "\"reason\":{\"type\":\"string\"}}},\"quality_networks\":{\"type\":\"object\"}}}";
static const char S_WARMUP[] =
    "{\"type\":\"object\",\"properties\":{\"warmed\":{\"type\":\"integer\"},"
    "\"total\":{\"type\":\"integer\"},\"models\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"object\",\"properties\":{\"quality\":{\"type\":\"string\"},\"upscale\":{\"type\":"
    "\"integer\"},\"model\":{\"type\":\"string\"},\"status\":{\"type\":\"string\"},"
    "\"ms\":{\"type\":\"number\"},\"error\":{\"type\":\"string\"}}}}}}";
static const char S_IMAGE[] = "{\"type\":\"string\",\"format\":\"binary\"}";

static const http_doc_param P_JOB[] = {{"id", "string", "the job id (j_...)", 1}, {0}};
static const http_doc_param Q_WARMUP[] = {
    {"quality", "{\"type\":\"string\",\"enum\":[\"fast\",\"balanced\",\"best\"]}",
     "only this quality's networks", 0},
    {"upscale", "{\"type\":\"integer\",\"enum\":[2,3,4,8]}", "only this scale's networks", 0},
    {0}};
static const int E_SUBMIT[] = {
    MD_E_BAD_REQUEST,     MD_E_MISSING_FIELD,     MD_E_INVALID_PARAM,
    MD_E_IMAGE_CORRUPT,   MD_E_IMAGE_TRUNCATED,   MD_E_IMAGE_TOO_LARGE,
    MD_E_TOO_LARGE,       MD_E_UNSUPPORTED_MEDIA, MD_E_UNSUPPORTED_FORMAT,
    MD_E_UNSUPPORTED,     MD_E_RATE_LIMITED,      MD_E_OVERLOADED,
    MD_E_MODEL_NOT_FOUND, MD_E_MODEL_UNAVAILABLE, 0};
static const int E_PREVIEW[] = {MD_E_NOT_FOUND, MD_E_CONFLICT, 0};
static const int E_WARMUP[] = {MD_E_INVALID_PARAM, 0};

#define SUBMIT_DESC                                                                                \
    "Admission before anything is stored: 413 past 20 MB, 415 unless JPEG, PNG, TIFF, BMP or "     \
    "WebP (by magic bytes), 400 for bad dimensions or options (naming the field), 422 for "        \
    "face_enhance while no face detector is available, 503 + Retry-After when the network's "      \
    "peak memory estimate passes the memory budget, when the enhance_max_running largest "         \
    "estimates among the running, queued and new jobs (those that can run at once) would pass "    \
    "it, or when the job queue is full, 429 past the "                                             \
    "per-key rate (enhance_rate, default 1/s with a burst of 20)."

static const api__route ROUTES[] = {
    {"POST",
     "/api/v1/enhance",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY,
     enhance_one,
     {.summary = "Upscale and restore one photo as a durable job",
      .tag = "enhance",
      .description = SUBMIT_DESC,
      .request = S_ONE_REQ,
      .response = S_ONE_RESP,
      .status = 202,
      .errors = E_SUBMIT}},
    {"POST",
     "/api/v1/enhance/batch",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY,
     enhance_batch,
     {.summary = "Upscale up to 50 photos with the same options, as one batch of jobs",
      .tag = "enhance",
      .description = SUBMIT_DESC " A batch is accepted or refused whole.",
      .request = S_BATCH_REQ,
      .response = S_BATCH_RESP,
      .status = 202,
      .errors = E_SUBMIT}},
    {"GET",
     "/api/v1/jobs/{id}/preview",
     HTTP_ROLE_READ,
     HTTP_HEAVY | HTTP_NO_GZIP,
     preview,
     {.summary = "A thumbnail of the finished result, fitting 400 x 400",
      .tag = "enhance",
      .response = S_IMAGE,
      .response_type = "image/jpeg",
      .path = P_JOB,
      .errors = E_PREVIEW,
      .description = "JPEG, or PNG when the result has transparency. 409 while the job is not "
                     "SUCCESS. Made once per result and kept in memory (results never change): "
                     "X-Cache says HIT or MISS."}},
    {"GET",
     "/api/v1/config",
     HTTP_ROLE_READ,
     0,
     config,
     {.summary = "Enhancement options, limits, and whether face enhancement is available",
      .tag = "enhance",
      .response = S_CONFIG}},
    {"POST",
     "/api/v1/models/warmup",
     HTTP_ROLE_ADMIN,
     HTTP_HEAVY,
     warmup,
     {.summary = "Load and warm the super-resolution networks, reporting each one's time",
      .tag = "enhance",
      .response = S_WARMUP,
      .query = Q_WARMUP,
      .errors = E_WARMUP,
      .description = "Runs each network (or those of ?quality= / ?upscale=) once on a 24 x 24 "
                     "image; a network that is not installed reports its error."}},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

int api_enhance_register(http_server *srv, const api_enhance_opts *o, api_enhance **out,
                         md_err *err)
{
    *out = NULL;
    api_enhance *a = calloc(1, sizeof *a);
    if (!a)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    a->o = *o;
    pthread_mutex_init(&a->admit_mu, NULL);
    pthread_mutex_init(&a->prev_mu, NULL);
    if (!a->o.max_file_bytes)
        a->o.max_file_bytes = MAX_FILE_DEFAULT;
    if (!a->o.memory_budget)
        a->o.memory_budget = BUDGET_DEFAULT;
    if (rl_new(&(rl_opts){.shared = a->o.rate_shared}, &a->rl) != MD_OK) {
        free(a);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    http_route *added[N_ROUTES];
    int rc = api__add_routes(srv, ROUTES, N_ROUTES, 0, a, added, err);
    if (rc != MD_OK) {
        api_enhance_free(a);
        return rc;
    }
    /* The envelope of up to 50 files of max_file_bytes is refused past this: a single file
     * over the limit gets its own 413 naming it (check_file). */
    http_route_body_to_file(added[0], a->o.max_file_bytes + ((size_t)1 << 20));
    http_route_body_to_file(added[1],
                            (size_t)BATCH_MAX * a->o.max_file_bytes / 4 + ((size_t)1 << 20));
    *out = a;
    return MD_OK;
}

void api_enhance_free(api_enhance *a)
{
    if (!a)
        return;
    rl_free(a->rl);
    for (int i = 0; i < PREVIEW_CACHE_N; i++)
        free(a->prev[i].bytes);
    pthread_mutex_destroy(&a->prev_mu);
    pthread_mutex_destroy(&a->admit_mu);
    free(a->resv);
    free(a);
}
