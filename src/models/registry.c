/* registry.c - the model registry: versions found on disk, loaded and validated beside the
 * serving ones, published with an atomic pointer swap, reference-counted while requests run.
 *
 * Version states (models.h has the contract; here each arrow names the function doing it):
 *
 *     UNLOADED ──prepare_version──▶ LOADING ──load_version──▶ VALIDATING
 *     VALIDATING ──validate_version──▶ READY
 *     LOADING | VALIDATING ──fail_version──▶ FAILED            (slot keeps the reason)
 *     READY | STANDBY ──activate_locked──▶ ACTIVE     (mdl_activate; mdl_rollback: STANDBY)
 *     CANARY ──activate_locked──▶ ACTIVE              (mdl_promote, mdl__auto_promote)
 *     READY | STANDBY ──canary_locked──▶ CANARY      (mdl_canary)
 *     ACTIVE ──activate_locked (another one)──▶ STANDBY
 *     CANARY ──end_canary_locked──▶ STANDBY          (mdl_canary(…, 0), mdl_rollback,
 *                                                     mdl__auto_rollback; canary_locked when
 *                                                     another version takes its place)
 *     STANDBY | READY | ACTIVE | CANARY ──retire_version──▶ RETIRED (trim_standbys, unload,
 *                                                                   close)
 *     RETIRED ──mdl_release of the last reference──▶ freed (runtime free runs here only)
 *     FAILED | RETIRED ──prepare_version──▶ LOADING (a fresh mdl_version object)
 *
 * Invariants:
 *   1. A version serves only while ACTIVE or CANARY, and a model's published mdl_serving names
 *      at most one of each (activate/canary/promote/rollback build a whole new set).
 *   2. mdl_serving sets are immutable once published (but for their atomic counters) and hold
 *      a reference on every version they name; publish() frees a replaced set only after both
 *      reader epochs drained, so a reader that loaded the old pointer has taken its version
 *      reference first (no free with a run in flight).
 *   3. Loading and validation happen before any serving state changes: a failure leaves the
 *      published set as it was (FAILED slot, old active still serving).
 *   4. Management calls hold r->mgmt for their whole duration (one change at a time); slot
 *      arrays and FAILED reasons change only with r->meta held as well, so describe and
 *      metrics (r->meta only) never wait for a load.
 *   5. Every published change is written to the store (active, canary, percent).
 *   6. The store's previous_version names the version active before the current one (persist:
 *      the one this process served, else the stored active), so mdl_rollback with no STANDBY
 *      loaded (a CLI registry, a server after a restart) returns to it: rollback_remembered.
 *   7. mdl_sync applies the store's row without writing it back (r->syncing, under mgmt): the
 *      row is another process's decision, and an event answered by an event would ping-pong.
 *      on_change fires only after a successful store write, so never during a sync.
 */
#include "models/models_int.h"

#include "base/log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const state_names[] = {"UNLOADED", "LOADING", "VALIDATING", "READY", "ACTIVE",
                                          "CANARY",   "STANDBY", "RETIRED",    "FAILED"};

const char *mdl_state_name(mdl_state s)
{
    return (unsigned)s <= MDL_FAILED ? state_names[s] : "UNKNOWN";
}

/* Debug check: a state in range, and a runtime exactly when the version can run. */
void mdl__assert_state(const mdl_version *v, mdl_state expect)
{
#ifndef NDEBUG
    mdl_state s = (mdl_state)atomic_load(&v->state);
    assert(s == expect);
    assert((s != MDL_READY && s != MDL_ACTIVE && s != MDL_CANARY && s != MDL_STANDBY) ||
           v->rt_state != NULL);
    assert(atomic_load(&v->refs) > 0);
#else
    (void)v;
    (void)expect;
#endif
}

static void set_state(mdl_version *v, mdl_state from, mdl_state to)
{
    mdl__assert_state(v, from);
    atomic_store(&v->state, (int)to);
}

/* ---- lifetimes ---- */

static void registry_free(mdl_registry *r)
{
    mdl_model *m = atomic_load(&r->models);
    while (m) {
        mdl_model *next = m->next;
        free(m->slots);
        free(m);
        m = next;
    }
    store_unref(r->st);
    pthread_mutex_destroy(&r->mgmt);
    pthread_mutex_destroy(&r->meta);
    free(r->shipped_dir);
    free(r->data_dir);
    free(r);
}

void mdl__registry_unref(mdl_registry *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        registry_free(r);
}

static void version_free(mdl_version *v)
{
    if (v->rt && v->rt_state)
        v->rt->free(v->rt_state);
    mdl_manifest_free(&v->mf);
    mdl__stats_destroy(&v->stats);
    mdl_registry *r = v->reg;
    free(v);
    mdl__registry_unref(r);
}

void mdl_release(mdl_version *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1)
        version_free(v);
}

static mdl_version *version_new(mdl_registry *r, mdl_model *m, const char *dir)
{
    mdl_version *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->reg = r;
    if (r)
        atomic_fetch_add(&r->refs, 1);
    v->model = m;
    snprintf(v->dir, sizeof v->dir, "%s", dir);
    atomic_init(&v->state, MDL_LOADING);
    atomic_init(&v->refs, 1);
    mdl__stats_init(&v->stats);
    return v;
}

/* ---- serving sets ---- */

static void serving_free(mdl_serving *s)
{
    if (!s)
        return;
    mdl_release(s->active);
    mdl_release(s->canary);
    for (size_t i = 0; i < s->n_other; i++)
        mdl_release(s->other[i]);
    free(s->other);
    free(s);
}

/* Swap in s (may be NULL) and free the replaced set once no reader can still hold it. */
static void publish(mdl_model *m, mdl_serving *s)
{
    mdl_serving *old = atomic_exchange(&m->serving, s);
    for (int k = 0; k < 2; k++) {
        unsigned e = atomic_load(&m->epoch);
        atomic_store(&m->epoch, e + 1);
        while (atomic_load(&m->readers[e & 1u]) != 0)
            sched_yield();
    }
    serving_free(old);
}

/* A new set naming active and canary, plus every loaded STANDBY/READY version of m. Lock held. */
static mdl_serving *serving_new(mdl_registry *r, mdl_model *m, mdl_version *active,
                                mdl_version *canary, double percent)
{
    mdl_serving *s = calloc(1, sizeof *s);
    if (!s || !(s->other = calloc(m->n_slots ? m->n_slots : 1, sizeof *s->other))) {
        free(s);
        return NULL;
    }
    s->active = active;
    s->canary = canary;
    if (active)
        mdl__ref(active);
    if (canary)
        mdl__ref(canary);
    s->percent = canary ? percent : 0;
    s->basis_points = (uint32_t)(s->percent * 100 + 0.5);
    atomic_init(&s->window_start_ns, md_clock_now_ns(r->clock));
    for (size_t i = 0; i < m->n_slots; i++) {
        mdl_version *v = m->slots[i].v;
        int st = v ? atomic_load(&v->state) : MDL_UNLOADED;
        if (v && (st == MDL_STANDBY || st == MDL_READY)) {
            mdl__ref(v);
            s->other[s->n_other++] = v;
        }
    }
    return s;
}

/* The current set's (active, canary, percent); lock held (the set cannot be freed under us). */
static mdl_serving *current(mdl_model *m)
{
    return atomic_load(&m->serving);
}

/* The version active before this change: the one this process served (was_active, "" when
 * none was loaded), else what the store says was active. It becomes previous_version when a
 * different version is now active, so that a registry with nothing loaded (the CLI, a server
 * after a restart) can still roll back (invariant 6). */
static void carry_previous(const store_model_state *stored, const char *was_active,
                           store_model_state *st)
{
    const char *before = was_active[0] ? was_active : stored->active_version;
    snprintf(st->previous_version, sizeof st->previous_version, "%s", stored->previous_version);
    if (st->active_version[0] && before[0] && strcmp(before, st->active_version) != 0)
        snprintf(st->previous_version, sizeof st->previous_version, "%s", before);
}

static void persist(mdl_registry *r, mdl_model *m, const char *was_active)
{
    if (!r->st || r->syncing) /* invariant 7 */
        return;
    mdl_serving *s = current(m);
    store_model_state st = {0}, stored = {0};
    if (store_models_get(r->st, m->name, &stored, NULL) != MD_OK)
        memset(&stored, 0, sizeof stored);
    snprintf(st.name, sizeof st.name, "%s", m->name);
    if (s && s->active)
        snprintf(st.active_version, sizeof st.active_version, "%s", s->active->mf.version);
    if (s && s->canary) {
        snprintf(st.canary_version, sizeof st.canary_version, "%s", s->canary->mf.version);
        st.canary_percent = s->percent;
    }
    carry_previous(&stored, was_active, &st);
    md_err e = {0};
    if (store_models_set(r->st, &st, &e) != MD_OK)
        md_log(MD_LOG_ERROR, "models: cannot remember the state of %s: %s", m->name,
               md_err_message(&e));
    else if (r->on_change)
        r->on_change(r->on_change_ctx, m->name);
}

/* Publish (active, canary, percent) and remember it. Lock held. */
static int republish(mdl_registry *r, mdl_model *m, mdl_version *active, mdl_version *canary,
                     double percent, md_err *err)
{
    char was_active[MDL_VERSION_MAX] = "";
    mdl_serving *old = current(m);
    if (old && old->active)
        snprintf(was_active, sizeof was_active, "%s", old->active->mf.version);
    mdl_serving *s = serving_new(r, m, active, canary, percent);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    publish(m, s);
    persist(r, m, was_active);
    return MD_OK;
}

/* ---- models and slots ---- */

mdl_model *mdl__model_find(mdl_registry *r, const char *name)
{
    for (mdl_model *m = atomic_load(&r->models); m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

/* Find or add the model `name`. r->meta held. */
static mdl_model *model_get(mdl_registry *r, const char *name)
{
    mdl_model *m = mdl__model_find(r, name);
    if (m)
        return m;
    if (strlen(name) >= sizeof m->name)
        return NULL;
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    memcpy(m->name, name, strlen(name) + 1);
    m->next = atomic_load(&r->models);
    atomic_store(&r->models, m);
    return m;
}

static mdl_slot *slot_find(mdl_model *m, const char *id)
{
    for (size_t i = 0; i < m->n_slots; i++)
        if (strcmp(m->slots[i].id, id) == 0)
            return &m->slots[i];
    return NULL;
}

/* Add a version directory unless the id is known (the data root is scanned first, so it wins).
 * r->meta held. */
static int slot_add(mdl_model *m, const char *id, const char *dir, bool data_root)
{
    if (slot_find(m, id))
        return MD_OK;
    if (strlen(id) >= sizeof m->slots[0].id || strlen(dir) >= sizeof m->slots[0].dir)
        return MD_E_INVALID_PARAM;
    if (m->n_slots == m->cap_slots) {
        size_t nc = m->cap_slots ? m->cap_slots * 2 : 4;
        mdl_slot *ns = realloc(m->slots, nc * sizeof *ns);
        if (!ns)
            return MD_E_NOMEM;
        m->slots = ns;
        m->cap_slots = nc;
    }
    mdl_slot *s = &m->slots[m->n_slots++];
    memset(s, 0, sizeof *s);
    memcpy(s->id, id, strlen(id) + 1);
    memcpy(s->dir, dir, strlen(dir) + 1);
    s->data_root = data_root;
    s->st = MDL_UNLOADED;
    /* A manifest that does not parse fails the version now, with its reason. */
    mdl_manifest mf;
    md_err e = {0};
    if (mdl__manifest_read(dir, &mf, &e) != MD_OK) {
        s->st = MDL_FAILED;
        snprintf(s->reason, sizeof s->reason, "%s", md_err_message(&e));
        return MD_OK;
    }
    s->family = mf.family;
    snprintf(s->runtime, sizeof s->runtime, "%s", mf.runtime);
    s->required = mf.required;
    mdl_manifest_free(&mf);
    return MD_OK;
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Add every <root>/<name>/<version>/ holding a modeld.json. r->meta held. */
static void scan_model_dir(mdl_registry *r, const char *root, const char *name, bool data_root)
{
    char mdir[PATH_MAX];
    snprintf(mdir, sizeof mdir, "%s/%s", root, name);
    DIR *d = opendir(mdir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char vdir[PATH_MAX], mf[PATH_MAX + 16];
        if (!mdl__version_ok(de->d_name))
            continue;
        if (snprintf(vdir, sizeof vdir, "%s/%s", mdir, de->d_name) >= (int)sizeof vdir)
            continue;
        snprintf(mf, sizeof mf, "%s/modeld.json", vdir);
        mdl_model *m;
        if (is_dir(vdir) && access(mf, R_OK) == 0 && (m = model_get(r, name)) != NULL)
            slot_add(m, de->d_name, vdir, data_root);
    }
    closedir(d);
}

static void scan_root(mdl_registry *r, const char *root, bool data_root, const char *only)
{
    if (!root)
        return;
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", root, de->d_name);
        if (mdl__name_ok(de->d_name) && (!only || strcmp(only, de->d_name) == 0) && is_dir(path))
            scan_model_dir(r, root, de->d_name, data_root);
    }
    closedir(d);
}

static void scan(mdl_registry *r, const char *only)
{
    char data_models[PATH_MAX];
    pthread_mutex_lock(&r->meta);
    if (r->data_dir) {
        snprintf(data_models, sizeof data_models, "%s/models", r->data_dir);
        scan_root(r, data_models, true, only);
    }
    scan_root(r, r->shipped_dir, false, only);
    pthread_mutex_unlock(&r->meta);
}

/* ---- load and validate (management lock held) ---- */

/* LOADING -> VALIDATING: manifest, its agreement with the directory, SHA-256, runtime load. */
static int load_version(mdl_version *v, const char *name, const char *id, md_err *err)
{
    uint64_t t0 = md_now_ns();
    int rc = mdl__manifest_read(v->dir, &v->mf, err);
    if (rc == MD_OK && name && strcmp(v->mf.name, name) != 0)
        rc = md_fail(err, MD_E_MODEL_INVALID, "name",
                     "manifest: name '%s' differs from the directory '%s'", v->mf.name, name);
    if (rc == MD_OK && id && strcmp(v->mf.version, id) != 0)
        rc = md_fail(err, MD_E_MODEL_INVALID, "version",
                     "manifest: version '%s' differs from the directory '%s'", v->mf.version, id);
    char path[PATH_MAX + 80], hex[65];
    snprintf(path, sizeof path, "%s/%s", v->dir, v->mf.artefact);
    if (rc == MD_OK)
        rc = mdl__sha256_file(path, hex, err);
    if (rc == MD_OK && strcmp(hex, v->mf.sha256) != 0)
        rc = md_fail(err, MD_E_MODEL_INVALID, "sha256",
                     "sha256 mismatch: the artefact hashes to %.16s..., the manifest says "
                     "%.16s...",
                     hex, v->mf.sha256);
    if (rc == MD_OK) {
        v->rt = mdl_runtime_find(v->mf.runtime);
        rc = v->rt->load(path, &v->mf, &v->rt_state, err);
    }
    v->load_s = (double)(md_now_ns() - t0) / 1e9;
    if (rc == MD_OK) {
        v->memory = v->rt->memory(v->rt_state);
        set_state(v, MDL_LOADING, MDL_VALIDATING);
    }
    return rc;
}

/* VALIDATING -> READY: the manifest's samples give the expected outputs. */
static int validate_version(mdl_version *v, md_err *err)
{
    uint64_t t0 = md_now_ns();
    int rc = mdl__validate(v, err);
    v->validate_s = (double)(md_now_ns() - t0) / 1e9;
    if (rc == MD_OK)
        set_state(v, MDL_VALIDATING, MDL_READY);
    return rc;
}

/* LOADING | VALIDATING -> FAILED: the slot keeps the reason; the object is freed (it was
 * never published, so ours is the only reference). */
static void fail_version(mdl_registry *r, mdl_slot *sl, mdl_version *v, const md_err *e)
{
    pthread_mutex_lock(&r->meta);
    sl->st = MDL_FAILED;
    sl->v = NULL;
    sl->load_s = v->load_s;
    sl->validate_s = v->validate_s;
    snprintf(sl->reason, sizeof sl->reason, "%s", md_err_message(e));
    pthread_mutex_unlock(&r->meta);
    atomic_store(&v->state, MDL_FAILED);
    md_log(MD_LOG_WARN, "models: %s version %s FAILED: %s", v->mf.name[0] ? v->mf.name : "?",
           sl->id, sl->reason);
    mdl_release(v);
}

/* Any loaded state -> RETIRED; drops the slot's reference (the last release frees it). */
static void retire_version(mdl_registry *r, mdl_slot *sl)
{
    mdl_version *v = sl->v;
    if (!v)
        return;
    pthread_mutex_lock(&r->meta);
    sl->v = NULL;
    sl->st = MDL_RETIRED;
    pthread_mutex_unlock(&r->meta);
    atomic_store(&v->state, MDL_RETIRED);
    mdl_release(v);
}

/* The loaded (READY or serving) version id of m, loading and validating it first when needed.
 * *out is borrowed (the slot's reference) until the management lock is released. */
static int prepare_version(mdl_registry *r, mdl_model *m, const char *id, mdl_version **out,
                           md_err *err)
{
    pthread_mutex_lock(&r->meta);
    mdl_slot *sl = slot_find(m, id);
    mdl_version *have = sl ? sl->v : NULL;
    char dir[PATH_MAX];
    if (sl)
        snprintf(dir, sizeof dir, "%s", sl->dir);
    pthread_mutex_unlock(&r->meta);
    if (!sl)
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "version", "model %s has no version %s", m->name,
                       id);
    if (have) {
        *out = have;
        return MD_OK;
    }
    mdl_version *v = version_new(r, m, dir);
    if (!v)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    pthread_mutex_lock(&r->meta);
    sl->v = v;
    sl->st = MDL_LOADING;
    pthread_mutex_unlock(&r->meta);
    md_err e = {0};
    int rc = load_version(v, m->name, id, &e);
    if (rc == MD_OK)
        rc = validate_version(v, &e);
    if (rc != MD_OK) {
        sl = slot_find(m, id); /* the array may have grown (scan) meanwhile */
        fail_version(r, sl, v, &e);
        if (err)
            *err = e;
        return rc;
    }
    *out = v;
    return MD_OK;
}

/* ---- management, all with r->mgmt held ---- */

/* Keep at most keep_standby STANDBY versions: retire the ones that stood by longest. */
static void trim_standbys(mdl_registry *r, mdl_model *m)
{
    for (;;) {
        int count = 0;
        mdl_slot *oldest = NULL;
        for (size_t i = 0; i < m->n_slots; i++) {
            mdl_version *v = m->slots[i].v;
            if (!v || atomic_load(&v->state) != MDL_STANDBY)
                continue;
            count++;
            if (!oldest || v->standby_seq < oldest->v->standby_seq)
                oldest = &m->slots[i];
        }
        if (count <= r->keep_standby)
            return;
        retire_version(r, oldest);
        mdl_serving *s = current(m);
        mdl_serving *ns =
            serving_new(r, m, s ? s->active : NULL, s ? s->canary : NULL, s ? s->percent : 0);
        if (ns)
            publish(m, ns);
    }
}

static void to_standby(mdl_registry *r, mdl_version *v, mdl_state from)
{
    v->standby_seq = ++r->standby_seq;
    set_state(v, from, MDL_STANDBY);
}

/* v (READY, STANDBY or CANARY) becomes ACTIVE; the active one becomes STANDBY. */
static int activate_locked(mdl_registry *r, mdl_model *m, mdl_version *v, md_err *err)
{
    mdl_serving *s = current(m);
    mdl_version *old = s ? s->active : NULL, *canary = s ? s->canary : NULL;
    double pct = s ? s->percent : 0;
    if (old == v)
        return MD_OK;
    if (canary == v)
        canary = NULL;
    mdl_state from = (mdl_state)atomic_load(&v->state);
    assert(from == MDL_READY || from == MDL_STANDBY || from == MDL_CANARY);
    set_state(v, from, MDL_ACTIVE);
    if (old)
        to_standby(r, old, MDL_ACTIVE);
    int rc = republish(r, m, v, canary, pct, err);
    trim_standbys(r, m);
    md_log(MD_LOG_INFO, "models: %s version %s ACTIVE", m->name, v->mf.version);
    return rc;
}

/* Lock the registry for a management call on name; *m gets the model. */
static int begin(mdl_registry *r, const char *name, mdl_model **m, md_err *err)
{
    pthread_mutex_lock(&r->mgmt);
    if (atomic_load(&r->closed)) {
        pthread_mutex_unlock(&r->mgmt);
        return md_fail(err, MD_E_UNAVAILABLE, NULL, "the model registry is closed");
    }
    *m = name ? mdl__model_find(r, name) : NULL;
    if (!*m) {
        pthread_mutex_unlock(&r->mgmt);
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "model", "no model named %.64s",
                       name ? name : "");
    }
    return MD_OK;
}

/* A model this registry never loaded (the CLI's) has no canary in memory, so persist wrote
 * none: put back the canary the store remembered, as a server's activation keeps its canary
 * (unless it is the version just activated). Lock held. */
static void keep_remembered_canary(mdl_registry *r, mdl_model *m, const store_model_state *before)
{
    store_model_state now;
    if (!before->canary_version[0] || before->canary_percent <= 0 ||
        store_models_get(r->st, m->name, &now, NULL) != MD_OK ||
        strcmp(before->canary_version, now.active_version) == 0)
        return;
    snprintf(now.canary_version, sizeof now.canary_version, "%s", before->canary_version);
    now.canary_percent = before->canary_percent;
    md_err e = {0};
    if (store_models_set(r->st, &now, &e) != MD_OK)
        md_log(MD_LOG_ERROR, "models: cannot remember the canary of %s: %s", m->name,
               md_err_message(&e));
}

int mdl_activate(mdl_registry *r, const char *name, const char *version, md_err *err)
{
    mdl_model *m;
    int rc = begin(r, name, &m, err);
    if (rc != MD_OK)
        return rc;
    store_model_state before = {0};
    bool lazy = r->st && !atomic_load(&m->tried) && !current(m);
    if (lazy && store_models_get(r->st, m->name, &before, NULL) != MD_OK)
        lazy = false;
    mdl_version *v = NULL;
    rc = prepare_version(r, m, version, &v, err);
    if (rc == MD_OK)
        rc = activate_locked(r, m, v, err);
    if (rc == MD_OK && lazy)
        keep_remembered_canary(r, m, &before);
    pthread_mutex_unlock(&r->mgmt);
    return rc;
}

/* The canary (if any) goes to STANDBY and the set is republished without it. */
static int end_canary_locked(mdl_registry *r, mdl_model *m, bool trim, md_err *err)
{
    mdl_serving *s = current(m);
    if (!s || !s->canary)
        return MD_OK;
    to_standby(r, s->canary, MDL_CANARY);
    int rc = republish(r, m, s->active, NULL, 0, err);
    if (trim)
        trim_standbys(r, m);
    return rc;
}

static int canary_locked(mdl_registry *r, mdl_model *m, const char *version, double percent,
                         md_err *err)
{
    mdl_serving *s = current(m);
    if (!s || !s->active)
        return md_fail(err, MD_E_CONFLICT, "version",
                       "%s has no active version to compare "
                       "a canary with",
                       m->name);
    if (strcmp(s->active->mf.version, version) == 0)
        return md_fail(err, MD_E_CONFLICT, "version", "%s is the active version", version);
    if (percent == 0) {
        if (!s->canary || strcmp(s->canary->mf.version, version) != 0)
            return md_fail(err, MD_E_CONFLICT, "version", "%s is not the canary", version);
        return end_canary_locked(r, m, true, err);
    }
    mdl_version *v = NULL;
    int rc = prepare_version(r, m, version, &v, err);
    if (rc != MD_OK)
        return rc;
    s = current(m);
    if (s->canary && s->canary != v)
        to_standby(r, s->canary, MDL_CANARY);
    if (s->canary != v) {
        mdl_state from = (mdl_state)atomic_load(&v->state);
        assert(from == MDL_READY || from == MDL_STANDBY);
        set_state(v, from, MDL_CANARY);
    }
    rc = republish(r, m, s->active, v, percent, err);
    trim_standbys(r, m);
    md_log(MD_LOG_INFO, "models: %s version %s CANARY at %.2f%%", m->name, version, percent);
    return rc;
}

int mdl_canary(mdl_registry *r, const char *name, const char *version, double percent, md_err *err)
{
    if (!(percent >= 0 && percent <= 100))
        return md_fail(err, MD_E_INVALID_PARAM, "percent", "must be in 0..100");
    if (!version || !mdl__version_ok(version))
        return md_fail(err, MD_E_INVALID_PARAM, "version", "not a valid version");
    mdl_model *m;
    int rc = begin(r, name, &m, err);
    if (rc != MD_OK)
        return rc;
    rc = canary_locked(r, m, version, percent, err);
    pthread_mutex_unlock(&r->mgmt);
    return rc;
}

int mdl_promote(mdl_registry *r, const char *name, md_err *err)
{
    mdl_model *m;
    int rc = begin(r, name, &m, err);
    if (rc != MD_OK)
        return rc;
    mdl_serving *s = current(m);
    if (!s || !s->canary)
        rc = md_fail(err, MD_E_CONFLICT, "model", "%s has no canary to promote", m->name);
    else
        rc = activate_locked(r, m, s->canary, err);
    pthread_mutex_unlock(&r->mgmt);
    return rc;
}

/* No standby loaded (a fresh CLI registry, a server after a restart): load, validate and
 * activate the version the store remembers as active before the current one. A version that
 * fails leaves the serving ones as they were (invariant 3). */
static int rollback_remembered(mdl_registry *r, mdl_model *m, const mdl_version *ex_canary,
                               md_err *err)
{
    store_model_state st = {0};
    if (r->st && store_models_get(r->st, m->name, &st, NULL) != MD_OK)
        memset(&st, 0, sizeof st);
    /* What is active now: the loaded one, else (never loaded here: the CLI) the remembered
     * one. A model this process unloaded or could not load has nothing to roll back from. */
    mdl_serving *s = current(m);
    const char *active = atomic_load(&m->tried) ? "" : st.active_version;
    if (s && s->active)
        active = s->active->mf.version;
    bool was_canary = ex_canary && strcmp(ex_canary->mf.version, st.previous_version) == 0;
    if (!active[0] || !st.previous_version[0] || strcmp(st.previous_version, active) == 0 ||
        was_canary)
        return md_fail(err, MD_E_CONFLICT, "model",
                       "%s has no standby or previous version to roll back to", m->name);
    mdl_version *v = NULL;
    int rc = prepare_version(r, m, st.previous_version, &v, err);
    if (rc == MD_OK)
        rc = activate_locked(r, m, v, err);
    if (rc == MD_OK)
        md_log(MD_LOG_INFO, "models: %s rolled back to the remembered version %s", m->name,
               st.previous_version);
    return rc;
}

/* Roll the active version back to the newest standby, else to the remembered previous active
 * version. A running canary is ended first and is not a candidate: rolling back means
 * returning to what served before, not to the canary. */
static int rollback_locked(mdl_registry *r, mdl_model *m, md_err *err)
{
    mdl_serving *s0 = current(m);
    mdl_version *ex_canary = s0 ? s0->canary : NULL;
    if (ex_canary)
        mdl__ref(ex_canary); /* ending it may retire it; keep the address ours to compare */
    /* no trimming yet: the standby we roll back to must not be retired to make room */
    int rc = end_canary_locked(r, m, false, err);
    mdl_version *best = NULL;
    for (size_t i = 0; rc == MD_OK && i < m->n_slots; i++) {
        mdl_version *v = m->slots[i].v;
        mdl_serving *s = current(m);
        if (v && v != ex_canary && atomic_load(&v->state) == MDL_STANDBY && v->standby_seq > 0 &&
            (!s || v != s->active) && (!best || v->standby_seq > best->standby_seq))
            best = v;
    }
    if (rc == MD_OK)
        rc = best ? activate_locked(r, m, best, err) : rollback_remembered(r, m, ex_canary, err);
    mdl_release(ex_canary);
    return rc;
}

int mdl_rollback(mdl_registry *r, const char *name, md_err *err)
{
    mdl_model *m;
    int rc = begin(r, name, &m, err);
    if (rc != MD_OK)
        return rc;
    rc = rollback_locked(r, m, err);
    pthread_mutex_unlock(&r->mgmt);
    return rc;
}

void mdl__auto_promote(mdl_registry *r, mdl_model *m, mdl_version *canary)
{
    pthread_mutex_lock(&r->mgmt);
    mdl_serving *s = current(m);
    md_err e = {0};
    if (!atomic_load(&r->closed) && s && s->canary == canary) {
        md_log(MD_LOG_INFO, "models: %s canary %s promoted automatically", m->name,
               canary->mf.version);
        activate_locked(r, m, canary, &e);
    }
    pthread_mutex_unlock(&r->mgmt);
}

void mdl__auto_rollback(mdl_registry *r, mdl_model *m, mdl_version *canary, const char *why)
{
    pthread_mutex_lock(&r->mgmt);
    mdl_serving *s = current(m);
    md_err e = {0};
    if (!atomic_load(&r->closed) && s && s->canary == canary) {
        md_log(MD_LOG_WARN, "models: %s canary %s rolled back: %s", m->name, canary->mf.version,
               why);
        end_canary_locked(r, m, true, &e);
    }
    pthread_mutex_unlock(&r->mgmt);
}

static int cmp_desc(const void *a, const void *b)
{
    return mdl__version_cmp((const char *)b, (const char *)a);
}

/* Candidate versions of m, best first: the remembered one, then the others newest first.
 * ids is filled (cap entries); returns the count. */
static size_t candidates(mdl_registry *r, mdl_model *m, const char *remembered,
                         char (*ids)[MDL_VERSION_MAX], size_t cap)
{
    size_t n = 0, first = 0;
    pthread_mutex_lock(&r->meta);
    if (remembered[0] && slot_find(m, remembered))
        snprintf(ids[n++], MDL_VERSION_MAX, "%s", remembered);
    first = n;
    for (size_t i = 0; i < m->n_slots && n < cap; i++)
        if (strcmp(m->slots[i].id, remembered) != 0)
            snprintf(ids[n++], MDL_VERSION_MAX, "%s", m->slots[i].id);
    pthread_mutex_unlock(&r->meta);
    qsort(ids + first, n - first, MDL_VERSION_MAX, cmp_desc);
    return n;
}

/* Activate the remembered version of m, else the newest that loads and validates (a model
 * keeps serving something after a bad upload and a restart); then restore its canary. */
static int load_locked(mdl_registry *r, mdl_model *m, md_err *err)
{
    store_model_state st = {0};
    if (r->st && store_models_get(r->st, m->name, &st, NULL) != MD_OK)
        memset(&st, 0, sizeof st);
    char ids[64][MDL_VERSION_MAX];
    size_t n = candidates(r, m, st.active_version, ids, 64);
    if (n == 0)
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "model", "%s has no version on disk", m->name);
    int rc = MD_E_MODEL_UNAVAILABLE;
    md_err first = {0};
    for (size_t i = 0; i < n && rc != MD_OK; i++) {
        mdl_version *v = NULL;
        md_err e = {0};
        rc = prepare_version(r, m, ids[i], &v, &e);
        if (rc == MD_OK)
            rc = activate_locked(r, m, v, &e);
        if (rc != MD_OK && first.code == MD_OK)
            first = e;
    }
    if (rc != MD_OK) {
        if (err)
            *err = first;
        return first.code ? first.code : rc;
    }
    if (st.canary_version[0] && st.canary_percent > 0) {
        md_err e = {0};
        if (canary_locked(r, m, st.canary_version, st.canary_percent, &e) != MD_OK)
            md_log(MD_LOG_WARN, "models: %s: canary %s not restored: %s", m->name,
                   st.canary_version, md_err_message(&e));
    }
    return MD_OK;
}

/* Make m serve st (mdl_sync). Lock held, r->syncing set. */
static int sync_locked(mdl_registry *r, mdl_model *m, const store_model_state *st, md_err *err)
{
    mdl_serving *s = current(m);
    if (!s && !r->load_all)
        return MD_OK; /* never used here: it loads the stored state when first acquired */
    const char *active = s && s->active ? s->active->mf.version : "";
    int rc = MD_OK;
    if (st->active_version[0] && strcmp(active, st->active_version) != 0) {
        mdl_version *v = NULL;
        rc = prepare_version(r, m, st->active_version, &v, err);
        if (rc == MD_OK)
            rc = activate_locked(r, m, v, err);
        if (rc != MD_OK)
            return rc;
    }
    s = current(m);
    const char *canary = s && s->canary ? s->canary->mf.version : "";
    double pct = s && s->canary ? s->percent : 0;
    bool want = st->canary_version[0] && st->canary_percent > 0;
    if (want && (strcmp(canary, st->canary_version) != 0 || pct != st->canary_percent))
        return canary_locked(r, m, st->canary_version, st->canary_percent, err);
    if (!want && canary[0])
        return end_canary_locked(r, m, true, err);
    return MD_OK;
}

int mdl_sync(mdl_registry *r, const char *name, md_err *err)
{
    if (!name || !mdl__name_ok(name))
        return md_fail(err, MD_E_INVALID_PARAM, "model", "not a valid model name");
    if (!r->st)
        return MD_OK;
    scan(r, name);
    mdl_model *m;
    int rc = begin(r, name, &m, err);
    if (rc != MD_OK)
        return rc;
    store_model_state st;
    if (store_models_get(r->st, name, &st, NULL) == MD_OK) {
        r->syncing = true;
        rc = sync_locked(r, m, &st, err);
        r->syncing = false;
        if (rc == MD_OK)
            md_log(MD_LOG_DEBUG, "models: %s follows the shared state (active %s)", name,
                   st.active_version[0] ? st.active_version : "none");
    }
    pthread_mutex_unlock(&r->mgmt);
    return rc;
}

int mdl_load(mdl_registry *r, const char *name, md_err *err)
{
    if (!name || !mdl__name_ok(name))
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "model", "not a valid model name");
    pthread_mutex_lock(&r->mgmt);
    scan(r, name);
    pthread_mutex_unlock(&r->mgmt);
    mdl_model *m;
    int rc = begin(r, name, &m, err);
    if (rc != MD_OK)
        return rc;
    atomic_store(&m->tried, true);
    mdl_serving *s = current(m);
    rc = s && s->active ? MD_OK : load_locked(r, m, err);
    pthread_mutex_unlock(&r->mgmt);
    return rc;
}

static void unload_locked(mdl_registry *r, mdl_model *m)
{
    publish(m, NULL);
    for (size_t i = 0; i < m->n_slots; i++)
        retire_version(r, &m->slots[i]);
}

int mdl_unload(mdl_registry *r, const char *name, md_err *err)
{
    mdl_model *m;
    int rc = begin(r, name, &m, err);
    if (rc != MD_OK)
        return rc;
    unload_locked(r, m);
    md_log(MD_LOG_INFO, "models: %s unloaded", m->name);
    pthread_mutex_unlock(&r->mgmt);
    return MD_OK;
}

int mdl__begin(mdl_registry *r, md_err *err)
{
    pthread_mutex_lock(&r->mgmt);
    if (atomic_load(&r->closed)) {
        pthread_mutex_unlock(&r->mgmt);
        return md_fail(err, MD_E_UNAVAILABLE, NULL, "the model registry is closed");
    }
    return MD_OK;
}

void mdl__end(mdl_registry *r)
{
    pthread_mutex_unlock(&r->mgmt);
}

/* READY -> STANDBY for a version that never served: standby_seq stays 0, so rollback (which
 * looks for the newest standby with a seq) never returns to it, and trimming retires it first.
 * The set is republished (acquire by version may pick a standby) and so persisted: a model the
 * store remembered nothing of would otherwise restart on its highest version, this one. */
static int place_standby(mdl_registry *r, mdl_model *m, mdl_version *v, md_err *err)
{
    v->standby_seq = 0;
    set_state(v, MDL_READY, MDL_STANDBY);
    mdl_serving *s = current(m);
    int rc = republish(r, m, s ? s->active : NULL, s ? s->canary : NULL, s ? s->percent : 0, err);
    trim_standbys(r, m);
    md_log(MD_LOG_INFO, "models: %s version %s installed as STANDBY", m->name, v->mf.version);
    return rc;
}

int mdl__install_place(mdl_registry *r, const char *name, const char *id, int mode,
                       double canary_percent, md_err *err)
{
    scan(r, name);
    mdl_model *m = mdl__model_find(r, name);
    if (!m)
        return md_fail(err, MD_E_MODEL_INVALID, "files", "the uploaded version has no manifest");
    atomic_store(&m->tried, true);
    mdl_version *v = NULL;
    int rc = prepare_version(r, m, id, &v, err);
    if (rc == MD_OK && mode == MDL_INSTALL_CANARY)
        rc = canary_locked(r, m, id, canary_percent, err);
    else if (rc == MD_OK && mode == MDL_INSTALL_STANDBY)
        rc = place_standby(r, m, v, err);
    else if (rc == MD_OK)
        rc = activate_locked(r, m, v, err);
    return rc;
}

bool mdl__slot_exists(mdl_registry *r, const char *name, const char *id)
{
    mdl_model *m = mdl__model_find(r, name);
    if (!m)
        return false;
    pthread_mutex_lock(&r->meta);
    bool found = slot_find(m, id) != NULL;
    pthread_mutex_unlock(&r->meta);
    return found;
}

void mdl__slot_remove(mdl_registry *r, const char *name, const char *id)
{
    mdl_model *m = mdl__model_find(r, name);
    if (!m)
        return;
    pthread_mutex_lock(&r->meta);
    mdl_slot *sl = slot_find(m, id);
    if (sl && !sl->v) {
        size_t i = (size_t)(sl - m->slots);
        memmove(sl, sl + 1, (m->n_slots - i - 1) * sizeof *sl);
        m->n_slots--;
    }
    pthread_mutex_unlock(&r->meta);
}

/* ---- open / close ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int mdl_registry_open(const mdl_registry_opts *o, mdl_registry **out, md_err *err)
{
    *out = NULL;
    mdl_registry *r = calloc(1, sizeof *r);
    if (!r)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    atomic_init(&r->refs, 1);
    pthread_mutex_init(&r->mgmt, NULL);
    pthread_mutex_init(&r->meta, NULL);
    r->shipped_dir = dup_or_null(o->shipped_dir);
    r->data_dir = dup_or_null(o->data_dir);
    r->st = o->store ? store_ref(o->store) : NULL;
    r->clock = o->clock ? o->clock : md_clock_system();
    r->canary = o->canary;
    r->canary_window_ns = (uint64_t)((o->canary.window_s > 0 ? o->canary.window_s : 60) * 1e9);
    r->keep_standby = o->keep_standby > 0 ? o->keep_standby : 1;
    r->load_all = o->load_all;
    r->on_change = o->on_change;
    r->on_change_ctx = o->on_change_ctx;
    atomic_store(&mdl__onnx_threads, o->onnx_threads > 0 ? o->onnx_threads : 1);
    if ((o->shipped_dir && !r->shipped_dir) || (o->data_dir && !r->data_dir)) {
        registry_free(r);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    scan(r, NULL);
    for (mdl_model *m = atomic_load(&r->models); m && r->load_all; m = m->next) {
        md_err e = {0};
        pthread_mutex_lock(&r->mgmt);
        atomic_store(&m->tried, true);
        if (load_locked(r, m, &e) != MD_OK)
            md_log(MD_LOG_WARN, "models: %s does not serve: %s", m->name, md_err_message(&e));
        pthread_mutex_unlock(&r->mgmt);
    }
    *out = r;
    return MD_OK;
}

void mdl_registry_close(mdl_registry *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mgmt);
    atomic_store(&r->closed, true);
    for (mdl_model *m = atomic_load(&r->models); m; m = m->next)
        unload_locked(r, m);
    pthread_mutex_unlock(&r->mgmt);
    mdl__registry_unref(r);
}

/* ---- hot path ---- */

static mdl_version *pick(mdl_serving *s, const char *version)
{
    if (!s)
        return NULL;
    if (!version)
        return s->canary && mdl__route_canary(s) ? s->canary : s->active;
    mdl_version *found = NULL;
    if (s->active && strcmp(s->active->mf.version, version) == 0)
        found = s->active;
    else if (s->canary && strcmp(s->canary->mf.version, version) == 0)
        found = s->canary;
    for (size_t i = 0; !found && i < s->n_other; i++)
        if (strcmp(s->other[i]->mf.version, version) == 0)
            found = s->other[i];
    int st = found ? atomic_load(&found->state) : MDL_UNLOADED;
    return st == MDL_ACTIVE || st == MDL_CANARY || st == MDL_STANDBY || st == MDL_READY ? found
                                                                                        : NULL;
}

static int acquire_once(mdl_model *m, const char *version, mdl_version **out)
{
    unsigned e = mdl__enter(m);
    mdl_version *v = pick(atomic_load(&m->serving), version);
    if (v)
        mdl__ref(v);
    mdl__exit(m, e);
    *out = v;
    return v != NULL;
}

uint64_t mdl_typical_run_ns(mdl_registry *r, const char *name, const char *version)
{
    mdl_model *m = name ? mdl__model_find(r, name) : NULL;
    mdl_version *v = NULL;
    if (!m || !acquire_once(m, version, &v))
        return 0;
    const mdl_hist *h = &v->stats.latency;
    uint64_t ns = atomic_load_explicit(&h->n, memory_order_relaxed) < 32
                      ? 0
                      : (uint64_t)(mdl__hist_quantile(h, 0.9) * 1e9);
    mdl_release(v);
    return ns;
}

static int not_serving(mdl_registry *r, mdl_model *m, const char *version, md_err *err)
{
    if (!version)
        return md_fail(err, MD_E_MODEL_UNAVAILABLE, "model", "%s has no version serving", m->name);
    pthread_mutex_lock(&r->meta);
    bool known = slot_find(m, version) != NULL;
    pthread_mutex_unlock(&r->meta);
    if (!known)
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "version", "%s has no version %.32s", m->name,
                       version);
    return md_fail(err, MD_E_MODEL_UNAVAILABLE, "version", "%s version %.32s is not loaded",
                   m->name, version);
}

int mdl_acquire(mdl_registry *r, const char *name, const char *version, mdl_version **out,
                md_err *err)
{
    *out = NULL;
    mdl_model *m = name ? mdl__model_find(r, name) : NULL;
    if (!m && !r->load_all && name && mdl__name_ok(name) && mdl_load(r, name, NULL) == MD_OK)
        m = mdl__model_find(r, name);
    if (!m)
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "model", "no model named %.64s",
                       name ? name : "");
    if (acquire_once(m, version, out))
        return MD_OK;
    /* On demand (CLI): the first request of a model loads it. */
    if (!r->load_all && !atomic_load(&m->tried)) {
        md_err e = {0};
        if (mdl_load(r, name, &e) == MD_OK && acquire_once(m, version, out))
            return MD_OK;
    }
    return not_serving(r, m, version, err);
}

/* Inputs (any order) into manifest order, every one checked against its declaration. */
static int order_inputs(const mdl_manifest *mf, const mdl_tensor *in, size_t n, mdl_tensor *ord,
                        md_err *err)
{
    if (n != mf->n_inputs)
        return md_fail(err, MD_E_INVALID_PARAM, "inputs", "expected %zu inputs, got %zu",
                       mf->n_inputs, n);
    for (size_t i = 0; i < mf->n_inputs; i++) {
        const mdl_io *io = &mf->inputs[i];
        const mdl_tensor *t = NULL;
        for (size_t j = 0; j < n; j++)
            if (in[j].name && strcmp(in[j].name, io->name) == 0) {
                if (t)
                    return md_fail(err, MD_E_INVALID_PARAM, io->name, "input %s given twice",
                                   io->name);
                t = &in[j];
            }
        if (!t)
            return md_fail(err, MD_E_INVALID_PARAM, io->name, "input %s is missing", io->name);
        if (t->dtype != io->dtype)
            return md_fail(err, MD_E_INVALID_PARAM, io->name, "input %s must be %s, got %s",
                           io->name, mdl_dtype_name(io->dtype),
                           mdl_dtype_name(t->dtype) ? mdl_dtype_name(t->dtype) : "?");
        bool ok = t->rank == io->rank;
        for (int k = 0; ok && k < io->rank; k++)
            ok = t->dims[k] >= 0 && (io->dims[k] < 0 || io->dims[k] == t->dims[k]);
        int64_t numel = ok ? mdl__numel(t->rank, t->dims) : -1;
        if (!ok || numel < 0 || (numel > 0 && !t->data))
            return md_fail(err, MD_E_INVALID_PARAM, io->name,
                           "input %s does not have the declared shape (rank %d)", io->name,
                           io->rank);
        ord[i] = *t;
    }
    return MD_OK;
}

int mdl_run(mdl_version *v, const mdl_tensor *inputs, size_t n, const md_cancel *cancel,
            mdl_result **out, md_err *err)
{
    *out = NULL;
    mdl_tensor ord[64];
    const md_clock *clk = v->reg ? v->reg->clock : md_clock_system();
    uint64_t t0 = md_clock_now_ns(clk);
    md_err local = {0};
    md_err *e = err ? err : &local;
    int rc = v->mf.n_inputs > 64 ? md_fail(e, MD_E_UNSUPPORTED, "inputs", "too many inputs")
                                 : order_inputs(&v->mf, inputs, n, ord, e);
    if (rc == MD_OK)
        rc = v->rt->run(v->rt_state, &v->mf, ord, v->mf.n_inputs, cancel, out, e);
    uint64_t ns = md_clock_now_ns(clk) - t0;
    mdl__stats_record(&v->stats, rc, e, ns, md_clock_wall_ms(clk));
    if (v->reg)
        mdl__canary_observe(v->reg, v->model, v, rc, ns);
    return rc;
}

int mdl_contribs(mdl_version *v, const float *rows, size_t nrows, size_t ncols, float **out,
                 size_t *n, size_t *groups, md_err *err)
{
    *out = NULL;
    *n = 0;
    if (!v->rt->contribs)
        return md_fail(err, MD_E_UNSUPPORTED, "explanation",
                       "the %s runtime gives no feature contributions", v->rt->name);
    return v->rt->contribs(v->rt_state, rows, nrows, ncols, out, n, groups, err);
}

const mdl_manifest *mdl_version_manifest(const mdl_version *v)
{
    return &v->mf;
}
const char *mdl_version_name(const mdl_version *v)
{
    return v->mf.name;
}
const char *mdl_version_dir(const mdl_version *v)
{
    return v->dir;
}
const char *mdl_version_id(const mdl_version *v)
{
    return v->mf.version;
}
mdl_state mdl_version_state(const mdl_version *v)
{
    return (mdl_state)atomic_load(&v->state);
}

void mdl_version_note_queue(mdl_version *v, uint64_t queue_ns)
{
    mdl__hist_add(&v->stats.queue, queue_ns);
}

/* ---- validate a directory without a registry ---- */

int mdl_validate_dir(const char *dir, const mdl_registry_opts *o, md_err *err)
{
    if (o && o->onnx_threads > 0)
        atomic_store(&mdl__onnx_threads, o->onnx_threads);
    mdl_version *v = version_new(NULL, NULL, dir);
    if (!v)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = load_version(v, NULL, NULL, err);
    if (rc == MD_OK)
        rc = validate_version(v, err);
    mdl_release(v);
    return rc;
}
