/* describe.c - what the registry knows, as JSON (routes, CLI) and as Prometheus text.
 *
 * Both read a snapshot: under r->meta (never r->mgmt, so a long load does not block a
 * describe or a scrape) the slots of each model are copied with a reference on every loaded
 * version; JSON and text are then built from the copy without locks.
 *
 * A model this registry has not tried to load (the CLI opens with load_all false) has nothing
 * published, or only what one management call published; its snapshot then fills in the
 * active and canary versions the store remembers (snap_remembered), which a server loads at
 * its start, while their states stay UNLOADED.
 *
 * Invariants:
 *   1. Every snapshot reference is released before the function returns.
 *   2. Metric families are written once each, with their HELP and TYPE lines first; label
 *      values are escaped (backslash, double quote, newline) as the text format requires.
 */
#include "models/models_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct snap_ver {
    char id[MDL_VERSION_MAX];
    mdl_state st;
    char reason[320];
    mdl_version *v; /* reference or NULL */
    double load_s, validate_s;
    mdl_family family;
    char runtime[16];
    bool required;
    char dir[PATH_MAX];
} snap_ver;

typedef struct snap {
    mdl_model *m;
    size_t n;
    snap_ver *vs;
    char active[MDL_VERSION_MAX], canary[MDL_VERSION_MAX];
    double percent;
    bool remembered; /* active/canary come from the store, nothing is loaded */
} snap;

static void snap_serving(snap *s)
{
    unsigned e = mdl__enter(s->m);
    mdl_serving *sv = atomic_load(&s->m->serving);
    if (sv && sv->active)
        snprintf(s->active, sizeof s->active, "%s", sv->active->mf.version);
    if (sv && sv->canary) {
        snprintf(s->canary, sizeof s->canary, "%s", sv->canary->mf.version);
        s->percent = sv->percent;
    }
    mdl__exit(s->m, e);
}

static bool snap_has(const snap *s, const char *id)
{
    for (size_t i = 0; id[0] && i < s->n; i++)
        if (strcmp(s->vs[i].id, id) == 0)
            return true;
    return false;
}

/* Never tried here (the CLI's registry): what the store remembers fills in what is not
 * published, when those versions are on disk (a server falls back to another version
 * otherwise, which only a load can tell). A remembered active version marks the snapshot. */
static void snap_remembered(mdl_registry *r, snap *s)
{
    store_model_state st;
    if (atomic_load(&s->m->tried) || !r->st ||
        store_models_get(r->st, s->m->name, &st, NULL) != MD_OK)
        return;
    if (!s->active[0] && snap_has(s, st.active_version)) {
        snprintf(s->active, sizeof s->active, "%s", st.active_version);
        s->remembered = true;
    }
    if (!s->canary[0] && st.canary_percent > 0 && snap_has(s, st.canary_version) &&
        strcmp(st.canary_version, s->active) != 0 && strcmp(st.active_version, s->active) == 0) {
        snprintf(s->canary, sizeof s->canary, "%s", st.canary_version);
        s->percent = st.canary_percent;
    }
}

static int cmp_ver(const void *a, const void *b)
{
    return mdl__version_cmp(((const snap_ver *)a)->id, ((const snap_ver *)b)->id);
}

static int snap_take(mdl_registry *r, mdl_model *m, snap *s)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    pthread_mutex_lock(&r->meta);
    s->vs = calloc(m->n_slots ? m->n_slots : 1, sizeof *s->vs);
    for (size_t i = 0; s->vs && i < m->n_slots; i++) {
        const mdl_slot *sl = &m->slots[i];
        snap_ver *d = &s->vs[s->n++];
        snprintf(d->id, sizeof d->id, "%s", sl->id);
        snprintf(d->reason, sizeof d->reason, "%s", sl->reason);
        snprintf(d->runtime, sizeof d->runtime, "%s", sl->runtime);
        snprintf(d->dir, sizeof d->dir, "%s", sl->dir);
        d->family = sl->family;
        d->required = sl->required;
        d->st = sl->v ? (mdl_state)atomic_load(&sl->v->state) : sl->st;
        /* A version still LOADING or VALIDATING is being written by the management thread;
         * its fields are ours to read only once the state store that publishes them (READY
         * and after) has been seen. */
        bool loaded = d->st == MDL_READY || d->st == MDL_ACTIVE || d->st == MDL_CANARY ||
                      d->st == MDL_STANDBY;
        d->v = loaded ? sl->v : NULL;
        d->load_s = d->v ? d->v->load_s : sl->load_s;
        d->validate_s = d->v ? d->v->validate_s : sl->validate_s;
        if (d->v)
            mdl__ref(d->v);
    }
    pthread_mutex_unlock(&r->meta);
    if (!s->vs)
        return MD_E_NOMEM;
    qsort(s->vs, s->n, sizeof *s->vs, cmp_ver);
    snap_serving(s);
    snap_remembered(r, s);
    return MD_OK;
}

static void snap_free(snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        mdl_release(s->vs[i].v);
    free(s->vs);
}

/* The version describing the model as a whole: the active one, else the newest. */
static const snap_ver *snap_main(const snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->vs[i].id, s->active) == 0)
            return &s->vs[i];
    return s->n ? &s->vs[s->n - 1] : NULL;
}

static const char *model_state(const snap *s)
{
    if (s->active[0] && !s->remembered)
        return "ACTIVE";
    const char *st = "UNLOADED";
    for (size_t i = 0; i < s->n; i++) {
        if (s->vs[i].st == MDL_LOADING || s->vs[i].st == MDL_VALIDATING)
            return mdl_state_name(s->vs[i].st);
        if (s->vs[i].st == MDL_FAILED)
            st = "FAILED";
    }
    return st;
}

static json_t *model_json(const snap *s)
{
    const snap_ver *mv = snap_main(s);
    json_t *vers = json_array();
    for (size_t i = 0; i < s->n; i++) {
        json_t *o =
            json_pack("{s:s,s:s}", "version", s->vs[i].id, "state", mdl_state_name(s->vs[i].st));
        if (s->vs[i].st == MDL_FAILED)
            json_object_set_new(o, "reason", json_string(s->vs[i].reason));
        json_array_append_new(vers, o);
    }
    return json_pack(
        "{s:s,s:s,s:s,s:o,s:o,s:f,s:s,s:b,s:o}", "name", s->m->name, "family",
        mdl_family_name(mv ? mv->family : MDL_GENERIC), "runtime", mv ? mv->runtime : "",
        "active_version", s->active[0] ? json_string(s->active) : json_null(), "canary_version",
        s->canary[0] ? json_string(s->canary) : json_null(), "canary_percent", s->percent, "state",
        model_state(s), "required", mv ? mv->required : 0, "versions", vers);
}

json_t *mdl_describe_all(mdl_registry *r)
{
    json_t *a = json_array();
    for (mdl_model *m = atomic_load(&r->models); m && a; m = m->next) {
        snap s;
        if (snap_take(r, m, &s) != MD_OK)
            continue;
        if (s.n)
            json_array_append_new(a, model_json(&s));
        snap_free(&s);
    }
    return a;
}

static json_t *version_stats(const snap_ver *d)
{
    json_t *o = d->v ? mdl__stats_json(&d->v->stats) : json_object();
    json_object_set_new(o, "memory_bytes", json_integer(d->v ? (json_int_t)d->v->memory : 0));
    json_object_set_new(o, "load_seconds", json_real(d->load_s));
    json_object_set_new(o, "validation_seconds", json_real(d->validate_s));
    json_object_set_new(o, "state", json_string(mdl_state_name(d->st)));
    return o;
}

/* The manifest of d as parsed (loaded versions) or read from disk now. New or NULL. */
static json_t *manifest_of(const snap_ver *d)
{
    if (d->v)
        return json_incref(d->v->mf.doc);
    mdl_manifest mf;
    if (mdl__manifest_read(d->dir, &mf, NULL) != MD_OK)
        return NULL;
    json_t *doc = json_incref(mf.doc);
    mdl_manifest_free(&mf);
    return doc;
}

int mdl_describe(mdl_registry *r, const char *name, const char *version, json_t **out, md_err *err)
{
    *out = NULL;
    mdl_model *m = name ? mdl__model_find(r, name) : NULL;
    snap s;
    if (!m || snap_take(r, m, &s) != MD_OK || s.n == 0) {
        if (m)
            snap_free(&s);
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "model", "no model named %.64s",
                       name ? name : "");
    }
    const snap_ver *which = version ? NULL : snap_main(&s);
    for (size_t i = 0; version && i < s.n; i++)
        if (strcmp(s.vs[i].id, version) == 0)
            which = &s.vs[i];
    if (!which) {
        snap_free(&s);
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "version", "%s has no version %.32s", name,
                       version);
    }
    json_t *o = model_json(&s), *stats = json_object(), *mf = manifest_of(which);
    for (size_t i = 0; i < s.n; i++)
        json_object_set_new(stats, s.vs[i].id, version_stats(&s.vs[i]));
    json_object_set_new(o, "manifest", mf ? mf : json_null());
    json_object_set_new(o, "stats", stats);
    snap_free(&s);
    *out = o;
    return o ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, NULL);
}

int mdl_ready(mdl_registry *r, char missing[MDL_NAME_MAX])
{
    for (mdl_model *m = atomic_load(&r->models); m; m = m->next) {
        snap s;
        if (snap_take(r, m, &s) != MD_OK)
            return 0;
        bool required = false;
        for (size_t i = 0; i < s.n; i++)
            required = required || s.vs[i].required;
        bool ok = !required || (s.active[0] && !s.remembered);
        snap_free(&s);
        if (!ok) {
            if (missing)
                snprintf(missing, MDL_NAME_MAX, "%s", m->name);
            return 0;
        }
    }
    if (missing)
        missing[0] = 0;
    return 1;
}

/* ---- Prometheus text ---- */

static void put_label(md_buf *b, const char *s)
{
    md_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            md_buf_putc(b, '\\');
        if (*s == '\n')
            md_buf_puts(b, "\\n");
        else
            md_buf_putc(b, *s);
    }
    md_buf_putc(b, '"');
}

static void put_mv(md_buf *b, const char *metric, const mdl_model *m, const char *id)
{
    md_buf_printf(b, "%s{model=", metric);
    put_label(b, m->name);
    md_buf_puts(b, ",version=");
    put_label(b, id);
}

static void put_hist(md_buf *b, const char *metric, const snap *s, const snap_ver *d,
                     const mdl_hist *h)
{
    uint64_t cum = 0;
    char name[96];
    snprintf(name, sizeof name, "%s_bucket", metric);
    for (int i = 0; i <= MDL_NBUCKETS; i++) {
        cum += atomic_load_explicit(&h->count[i], memory_order_relaxed);
        put_mv(b, name, s->m, d->id);
        if (i < MDL_NBUCKETS)
            md_buf_printf(b, ",le=\"%g\"} %llu\n", mdl__bucket_le[i], (unsigned long long)cum);
        else
            md_buf_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    snprintf(name, sizeof name, "%s_sum", metric);
    put_mv(b, name, s->m, d->id);
    md_buf_printf(b, "} %.9f\n", (double)atomic_load(&h->sum_ns) / 1e9);
    snprintf(name, sizeof name, "%s_count", metric);
    put_mv(b, name, s->m, d->id);
    md_buf_printf(b, "} %llu\n", (unsigned long long)cum);
}

enum { F_REQ, F_DUR, F_QUEUE, F_STATE, F_MEM, F_COUNT };

static const char *const fam_head[F_COUNT] = {
    "# HELP modeld_inference_requests_total Inference requests by model, version and outcome.\n"
    "# TYPE modeld_inference_requests_total counter\n",
    "# HELP modeld_inference_duration_seconds Time a model version took to run a request.\n"
    "# TYPE modeld_inference_duration_seconds histogram\n",
    "# HELP modeld_inference_queue_seconds Time a request waited before its model ran.\n"
    "# TYPE modeld_inference_queue_seconds histogram\n",
    "# HELP modeld_model_state State of each model version (1 for the current state).\n"
    "# TYPE modeld_model_state gauge\n",
    "# HELP modeld_model_memory_bytes Memory held by a loaded model version.\n"
    "# TYPE modeld_model_memory_bytes gauge\n",
};

static void put_requests(md_buf *b, const snap *s, const snap_ver *d)
{
    mdl_stats *st = &d->v->stats;
    put_mv(b, "modeld_inference_requests_total", s->m, d->id);
    md_buf_printf(b, ",outcome=\"success\"} %llu\n",
                  (unsigned long long)atomic_load(&st->successes));
    for (int c = 1; c < MD_E__COUNT; c++) {
        uint64_t k = atomic_load(&st->failures[c]);
        if (!k)
            continue;
        put_mv(b, "modeld_inference_requests_total", s->m, d->id);
        md_buf_printf(b, ",outcome=\"%s\"} %llu\n", md_err_name(c), (unsigned long long)k);
    }
}

static void put_family(md_buf *b, int fam, const snap *s, const snap_ver *d)
{
    switch (fam) {
    case F_REQ:
        if (d->v)
            put_requests(b, s, d);
        break;
    case F_DUR:
        if (d->v)
            put_hist(b, "modeld_inference_duration_seconds", s, d, &d->v->stats.latency);
        break;
    case F_QUEUE:
        if (d->v)
            put_hist(b, "modeld_inference_queue_seconds", s, d, &d->v->stats.queue);
        break;
    case F_STATE:
        for (int k = MDL_UNLOADED; k <= MDL_FAILED; k++) {
            put_mv(b, "modeld_model_state", s->m, d->id);
            md_buf_printf(b, ",state=\"%s\"} %d\n", mdl_state_name((mdl_state)k), (int)d->st == k);
        }
        break;
    case F_MEM:
        put_mv(b, "modeld_model_memory_bytes", s->m, d->id);
        md_buf_printf(b, "} %zu\n", d->v ? d->v->memory : 0);
        break;
    }
}

void mdl_metrics(md_buf *out, void *registry)
{
    mdl_registry *r = registry;
    size_t n = 0;
    for (mdl_model *m = atomic_load(&r->models); m; m = m->next)
        n++;
    snap *ss = calloc(n ? n : 1, sizeof *ss);
    if (!ss)
        return;
    size_t k = 0;
    for (mdl_model *m = atomic_load(&r->models); m && k < n; m = m->next)
        if (snap_take(r, m, &ss[k]) == MD_OK)
            k++;
    for (int fam = 0; fam < F_COUNT; fam++) {
        md_buf_puts(out, fam_head[fam]);
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < ss[i].n; j++)
                put_family(out, fam, &ss[i], &ss[i].vs[j]);
    }
    for (size_t i = 0; i < k; i++)
        snap_free(&ss[i]);
    free(ss);
}
