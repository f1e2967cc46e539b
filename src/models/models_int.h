/* models_int.h - internals shared by the files of src/models (nothing outside includes it).
 *
 * Objects and who owns them:
 *   mdl_registry  refcounted: the opener holds one reference, every live mdl_version one more,
 *                 so a version released after mdl_registry_close still finds its registry.
 *   mdl_model     one per name, owned by the registry (a list that only grows until close).
 *   mdl_slot      one per version found on disk, in the model's slot array (under r->meta).
 *                 slot->v is the registry's reference on the loaded version (NULL when the
 *                 version is UNLOADED, FAILED or RETIRED: slot->st then says which).
 *   mdl_serving   the immutable (active, canary, percent, acquirable standbys) set of a model,
 *                 published through model->serving; it holds one reference on each version it
 *                 names. Readers enter a two-counter epoch (model->readers[]) around the load of
 *                 the pointer and the reference increment; the writer flips the epoch twice and
 *                 waits for each counter to drain before it drops the old set's references.
 */
#ifndef MD_MODELS_MODELS_INT_H
#define MD_MODELS_MODELS_INT_H

#include "models/models.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

/* Prometheus-style latency buckets (seconds, upper bounds); one more slot counts +Inf. */
#define MDL_NBUCKETS 16
extern const double mdl__bucket_le[MDL_NBUCKETS];

typedef struct mdl_hist {
    atomic_uint_least64_t count[MDL_NBUCKETS + 1];
    atomic_uint_least64_t sum_ns;
    atomic_uint_least64_t n;
} mdl_hist;

/* Statistics of one version (stats.c). Counters are relaxed atomics: exact totals, no order. */
typedef struct mdl_stats {
    atomic_uint_least64_t requests, successes;
    atomic_uint_least64_t failures[MD_E__COUNT];
    mdl_hist latency, queue;
    atomic_uint_least64_t success_ns, failure_ns; /* run time split by outcome */
    atomic_int_least64_t last_ms;                 /* wall clock of the last run; 0 = never */
    pthread_mutex_t err_mu;                       /* guards last_error (failures only) */
    char last_error[256];
} mdl_stats;

void mdl__stats_init(mdl_stats *s);
void mdl__stats_destroy(mdl_stats *s);
void mdl__hist_add(mdl_hist *h, uint64_t ns);
/* Quantile q (0..1) in seconds from the histogram: linear inside the bucket. 0 when empty. */
double mdl__hist_quantile(const mdl_hist *h, double q);
void mdl__stats_record(mdl_stats *s, int rc, const md_err *err, uint64_t ns, int64_t wall_ms);
/* The stats object of describe ("requests", "failures", "latency_seconds", ...). New. */
json_t *mdl__stats_json(mdl_stats *s);

/* Canary judging counters of the current window (canary.c). */
typedef struct mdl_judge {
    atomic_uint_least64_t req, fail;
    mdl_hist lat;
} mdl_judge;

struct mdl_version {
    mdl_registry *reg; /* holds a registry reference */
    struct mdl_model *model;
    char dir[PATH_MAX];
    mdl_manifest mf;
    const mdl_runtime *rt;
    void *rt_state;   /* NULL until load_version succeeds */
    atomic_int state; /* mdl_state */
    atomic_long refs;
    uint64_t standby_seq; /* when it last became STANDBY (rollback picks the newest); 0 for a
                           * version installed as STANDBY that never served (not a target) */
    double load_s, validate_s;
    size_t memory;
    mdl_stats stats;
};

/* The published serving set of a model (immutable but for the routing counter). */
typedef struct mdl_serving {
    mdl_version *active, *canary; /* references; either may be NULL */
    double percent;
    uint32_t basis_points;       /* percent * 100, rounded: the deterministic split */
    atomic_uint_least64_t route; /* requests routed so far (the split's counter) */
    size_t n_other;
    mdl_version **other; /* STANDBY and READY versions (references), acquirable by id */
    /* canary window counters: [0] active, [1] canary */
    mdl_judge judge[2];
    atomic_uint_least64_t window_start_ns;
    atomic_int decided;              /* an auto decision was taken (no second one) */
    atomic_uint_least64_t canary_ok; /* canary successes since it started (auto-promote) */
} mdl_serving;

typedef struct mdl_slot {
    char id[MDL_VERSION_MAX];
    char dir[PATH_MAX];
    bool data_root;   /* from <data_dir>/models (may be removed by a failed install) */
    mdl_version *v;   /* registry reference, or NULL */
    mdl_state st;     /* when v == NULL: UNLOADED, FAILED or RETIRED */
    char reason[320]; /* FAILED: why */
    double load_s, validate_s;
    /* read from the manifest at scan (describe and readiness need them before any load) */
    mdl_family family;
    char runtime[16];
    bool required;
} mdl_slot;

typedef struct mdl_model {
    struct mdl_model *next; /* registry list, published with release stores */
    char name[MDL_NAME_MAX];
    _Atomic(mdl_serving *) serving;
    atomic_uint_least64_t readers[2];
    atomic_uint epoch;
    atomic_bool tried; /* on-demand load attempted (load_all == false) */
    /* under r->meta */
    mdl_slot *slots;
    size_t n_slots, cap_slots;
} mdl_model;

struct mdl_registry {
    atomic_long refs;
    atomic_bool closed;
    pthread_mutex_t mgmt; /* serialises management (held across loads) */
    pthread_mutex_t meta; /* guards slots and states for describe (held briefly) */
    char *shipped_dir, *data_dir;
    store *st;
    const md_clock *clock;
    mdl_canary_opts canary;
    uint64_t canary_window_ns;
    int keep_standby;
    int onnx_threads;
    bool load_all;
    _Atomic(mdl_model *) models;
    uint64_t standby_seq; /* under mgmt */
    void (*on_change)(void *ctx, const char *name); /* mdl_registry_opts.on_change */
    void *on_change_ctx;
    bool syncing; /* under mgmt: mdl_sync is applying the store's state (no persist, no event) */
};

/* Reader side of a model's serving pointer: enter before loading it, exit once the references
 * wanted are taken. The writer (publish in registry.c) flips the epoch twice and waits for each
 * counter to drain before it frees the set it replaced. */
static inline unsigned mdl__enter(mdl_model *m)
{
    unsigned e = atomic_load(&m->epoch) & 1u;
    atomic_fetch_add(&m->readers[e], 1);
    return e;
}
static inline void mdl__exit(mdl_model *m, unsigned e)
{
    atomic_fetch_sub(&m->readers[e], 1);
}
static inline void mdl__ref(mdl_version *v)
{
    atomic_fetch_add(&v->refs, 1);
}

/* registry.c */
void mdl__registry_unref(mdl_registry *r);
mdl_model *mdl__model_find(mdl_registry *r, const char *name);
void mdl__assert_state(const mdl_version *v, mdl_state expect);
/* Automatic canary decisions (canary.c decides, registry.c acts): promote or roll back canary
 * if it is still the canary of m. Take the management lock. */
void mdl__auto_promote(mdl_registry *r, mdl_model *m, mdl_version *canary);
void mdl__auto_rollback(mdl_registry *r, mdl_model *m, mdl_version *canary, const char *why);

/* canary.c */
/* 1 when the next request of s goes to the canary (deterministic counter split). */
int mdl__route_canary(mdl_serving *s);
/* Record one finished request of v in the serving set's window and decide (auto-promote or
 * auto-rollback) when the canary has seen enough. */
void mdl__canary_observe(mdl_registry *r, mdl_model *m, mdl_version *v, int rc, uint64_t ns);

/* validate.c */
/* A tensor read from nested JSON arrays (validation samples, tests). data is new. */
typedef struct mdl__jt {
    int rank;
    int64_t dims[MDL_MAX_RANK];
    size_t numel;
    void *data; /* numel elements of the io's dtype; BYTES: const char * borrowed from v */
} mdl__jt;
/* Convert v (nested arrays, rank and fixed dims of io) to io's dtype; errors name field. */
int mdl__json_tensor(const json_t *v, const mdl_io *io, mdl__jt *out, const char *field,
                     md_err *err);
void mdl__jt_free(mdl__jt *t);
/* Element i of data (dtype) as a double (numeric and BOOL dtypes). */
double mdl__elem_double(const void *data, int dtype, size_t i);
int mdl__validate(const mdl_version *v, md_err *err);
/* SHA-256 of a file in lower-case hex; MD_E_IO / MD_E_FILE_NOT_FOUND. */
int mdl__sha256_file(const char *path, char hex[65], md_err *err);
/* Load, hash-check and validate a parsed version outside any registry (validate_dir). */

/* manifest.c */
bool mdl__name_ok(const char *s);
bool mdl__version_ok(const char *s);
int mdl__version_cmp(const char *a, const char *b);
/* Read and parse <dir>/modeld.json. */
int mdl__manifest_read(const char *dir, mdl_manifest *out, md_err *err);

/* runtime.c: results */
mdl_result *mdl__result_new(size_t n);
/* The result takes ownership of data (free()d by mdl_result_free). */
void mdl__result_set(mdl_result *r, size_t i, const char *name, int dtype, int rank,
                     const int64_t *dims, const void *data, void *owned);
/* A held onnx result to free with the mdl_result (borrowed tensors point into it). */
void mdl__result_hold_onnx(mdl_result *r, onnx_result *o);
int64_t mdl__numel(int rank, const int64_t *dims);

/* runtime_onnx.c, runtime_xgb.c */
extern const mdl_runtime mdl__runtime_onnx;
extern const mdl_runtime mdl__runtime_xgb;
/* onnx threads for the loads of this process (set by the registry opts). */
extern atomic_int mdl__onnx_threads;

/* registry.c, for install.c: with r->mgmt held. */
int mdl__begin(mdl_registry *r, md_err *err);
void mdl__end(mdl_registry *r);
/* Rescan the directories of name; load + validate version id, then publish it as mode says
 * (mdl_install_as). */
int mdl__install_place(mdl_registry *r, const char *name, const char *id, int mode,
                       double canary_percent, md_err *err);
/* Whether the registry knows version id of name (either root). */
bool mdl__slot_exists(mdl_registry *r, const char *name, const char *id);
/* Forget the slot of a version whose directory was removed (failed install). */
void mdl__slot_remove(mdl_registry *r, const char *name, const char *id);

#endif
