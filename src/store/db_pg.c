/* db_pg.c - the PostgreSQL driver of db.h (libpq), for stores shared by several nodes.
 *
 * A statement is the store's SQL with ?N rewritten to $N (db_pg_params), prepared on first
 * use on each connection as "m<k>" with the types of that first execution's binds (int8,
 * float8, text, bytea; a NULL leaves its type to PostgreSQL's inference), and run with
 * PQexecPrepared: text-format parameters (bytea binary), text-format results. db_step runs the
 * statement on its first call and then walks the rows of the result.
 *
 * Invariants:
 *   1. A statement is prepared on a connection at most once per connection generation:
 *      c->gen is bumped by every reconnect (a new server session knows no prepared names),
 *      and a statement whose prep_gen differs is prepared again before it runs.
 *   2. A lost connection (PQstatus CONNECTION_BAD) is MD_E_UNAVAILABLE. A statement that
 *      failed that way outside a transaction is retried once after a reconnect when it is a
 *      SELECT (it cannot have changed anything); a write is not retried (it may have
 *      committed), and inside a transaction nothing is (the transaction is gone): the caller
 *      gets MD_E_UNAVAILABLE (503 + Retry-After).
 *   3. Text parameters are sent as valid UTF-8 (PostgreSQL refuses anything else in a UTF-8
 *      database): a string that is not gets its bad bytes replaced by '?', in a copy.
 *   4. Results are owned by the statement from its execution to the next db_reset.
 */
#include "store/db.h"

#include "base/log.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type OIDs of the parameters we send (pg_type.h values, stable across releases). */
#define OID_INT8 20
#define OID_TEXT 25
#define OID_FLOAT8 701
#define OID_BYTEA 17

#define MAX_PARAMS 32

typedef struct pg_param {
    Oid type;        /* 0: NULL (or not bound) */
    const char *val; /* borrowed, or buf, or owned */
    int len;         /* bytea only */
    int fmt;         /* 0 text, 1 binary */
    char buf[32];    /* integers and doubles in text */
    char *owned;     /* a sanitised or length-limited copy */
} pg_param;

typedef struct pg_stmt {
    db_stmt base;
    const char *sql; /* borrowed, static: the cache key */
    char *text;      /* owned: sql with $N parameters */
    int nparams;
    bool select; /* a read: retried once after a reconnect (invariant 2) */
    char name[16];
    unsigned prep_gen; /* c->gen when prepared; 0: never (invariant 1) */
    pg_param p[MAX_PARAMS];
    PGresult *res; /* owned (invariant 4) */
    int row, nrows;
    int64_t changes;
    unsigned char *blob; /* owned: the last bytea column read */
} pg_stmt;

typedef struct pg_conn {
    db_conn base;
    PGconn *pg;
    unsigned gen;    /* starts at 1; bumped by each reconnect */
    pg_stmt **stmts; /* owned */
    int nstmts, capstmts;
} pg_conn;

#define PC(c) ((pg_conn *)(c))
#define PS(s) ((pg_stmt *)(s))

/* ---- SQL rewrites ------------------------------------------------------------------------ */

static bool ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Length of the quoted literal or identifier starting at p (quote char q), quotes included. */
static size_t quoted_len(const char *p, char q)
{
    size_t i = 1;
    while (p[i] && !(p[i] == q && p[i + 1] != q))
        i += p[i] == q ? 2 : 1;
    return p[i] ? i + 1 : i;
}

char *db_pg_params(const char *sql, int *nparams)
{
    size_t n = strlen(sql);
    char *out = malloc(5 * n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    int max = 0;
    for (size_t i = 0; i < n;) {
        if (sql[i] == '\'' || sql[i] == '"') {
            size_t q = quoted_len(sql + i, sql[i]);
            memcpy(out + o, sql + i, q);
            o += q;
            i += q;
        } else if (sql[i] == '?') {
            char *end = NULL;
            long k = strtol(sql + i + 1, &end, 10);
            bool numbered = end != sql + i + 1;
            int num = numbered ? (int)k : max + 1;
            o += (size_t)sprintf(out + o, "$%d", num);
            max = num > max ? num : max;
            i = numbered ? (size_t)(end - sql) : i + 1;
        } else {
            out[o++] = sql[i++];
        }
    }
    out[o] = '\0';
    *nparams = max;
    return out;
}

static const struct {
    const char *from, *to;
} ddl_words[] = {
    {"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"},
    {"INTEGER", "BIGINT"},
    {"REAL", "DOUBLE PRECISION"},
    {"BLOB", "BYTEA"},
};

/* The replacement of the DDL word at sql[i] (its length in *len), or NULL. */
static const char *ddl_word(const char *sql, size_t i, size_t *len)
{
    if (i > 0 && ident_char(sql[i - 1]))
        return NULL;
    for (size_t k = 0; k < sizeof ddl_words / sizeof ddl_words[0]; k++) {
        size_t l = strlen(ddl_words[k].from);
        if (strncmp(sql + i, ddl_words[k].from, l) == 0 && !ident_char(sql[i + l])) {
            *len = l;
            return ddl_words[k].to;
        }
    }
    return NULL;
}

char *db_pg_ddl(const char *sql)
{
    size_t n = strlen(sql);
    char *out = malloc(5 * n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = 0;
        const char *to = NULL;
        if (sql[i] == '\'' || sql[i] == '"')
            len = quoted_len(sql + i, sql[i]);
        else
            to = ddl_word(sql, i, &len);
        if (len == 0)
            len = 1;
        memcpy(out + o, to ? to : sql + i, to ? strlen(to) : len);
        o += to ? strlen(to) : len;
        i += len;
    }
    out[o] = '\0';
    return out;
}

/* ---- errors -------------------------------------------------------------------------------- */

/* Record a failure (db.h invariant 4); returns the md code. res may be NULL. */
static int fail(pg_conn *c, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !msg[0])
        msg = PQerrorMessage(c->pg);
    snprintf(c->base.errmsg, sizeof c->base.errmsg, "%s: %s%s%s", what, msg,
             state ? " sqlstate " : "", state ? state : "");
    size_t l = strlen(c->base.errmsg);
    while (l && (c->base.errmsg[l - 1] == '\n' || c->base.errmsg[l - 1] == ' '))
        c->base.errmsg[--l] = '\0';
    bool gone = PQstatus(c->pg) == CONNECTION_BAD ||
                (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0));
    c->base.errcode = gone                                   ? MD_E_UNAVAILABLE
                      : state && strcmp(state, "53100") == 0 ? MD_E_STORAGE_FULL
                                                             : MD_E_IO;
    return c->base.errcode;
}

/* ---- statements ---------------------------------------------------------------------------- */

static db_stmt *p_prepare(db_conn *dc, const char *sql)
{
    pg_conn *c = PC(dc);
    for (int i = 0; i < c->nstmts; i++)
        if (c->stmts[i]->sql == sql)
            return &c->stmts[i]->base;
    if (c->nstmts == c->capstmts) {
        int cap = c->capstmts ? 2 * c->capstmts : 64;
        pg_stmt **g = realloc(c->stmts, (size_t)cap * sizeof *g);
        if (!g)
            return NULL;
        c->stmts = g;
        c->capstmts = cap;
    }
    pg_stmt *s = calloc(1, sizeof *s);
    if (s)
        s->text = db_pg_params(sql, &s->nparams);
    if (!s || !s->text || s->nparams > MAX_PARAMS) {
        if (s && s->text)
            snprintf(c->base.errmsg, sizeof c->base.errmsg, "too many parameters in %s", sql);
        c->base.errcode = s && s->text ? MD_E_IO : MD_OK;
        free(s ? s->text : NULL);
        free(s);
        return NULL;
    }
    s->base.c = dc;
    s->sql = sql;
    s->select = strncmp(sql + strspn(sql, " \n("), "SELECT", 6) == 0;
    snprintf(s->name, sizeof s->name, "m%d", c->nstmts);
    c->stmts[c->nstmts++] = s;
    return &s->base;
}

static pg_param *param(db_stmt *st, int i)
{
    pg_stmt *s = PS(st);
    if (i < 1 || i > s->nparams)
        return NULL; /* not used by this statement: a no-op, as in SQLite */
    pg_param *p = &s->p[i - 1];
    free(p->owned);
    memset(p, 0, sizeof *p);
    return p;
}

static void p_bind_int64(db_stmt *st, int i, int64_t v)
{
    pg_param *p = param(st, i);
    if (!p)
        return;
    p->type = OID_INT8;
    snprintf(p->buf, sizeof p->buf, "%lld", (long long)v);
    p->val = p->buf;
}

static void p_bind_double(db_stmt *st, int i, double v)
{
    pg_param *p = param(st, i);
    if (!p)
        return;
    p->type = OID_FLOAT8;
    snprintf(p->buf, sizeof p->buf, "%.17g", v);
    p->val = p->buf;
}

/* Bytes of the valid UTF-8 sequence at s (at most n), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xe0) == 0xc0 ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xc2))
        return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* A NUL-terminated, valid UTF-8 copy of v[0..n) (invariant 3). New, or NULL without memory. */
static char *clean_copy(const char *v, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t l = v[i] ? utf8_seq((const unsigned char *)v + i, n - i) : 0;
        if (l == 0) {
            c[i++] = '?';
            continue;
        }
        memcpy(c + i, v + i, l);
        i += l;
    }
    c[n] = '\0';
    return c;
}

static bool valid_utf8(const char *v)
{
    size_t n = strlen(v);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq((const unsigned char *)v + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

static void p_bind_text(db_stmt *st, int i, const char *v, int n)
{
    pg_param *p = param(st, i);
    if (!p || !v)
        return;
    p->type = OID_TEXT;
    if (n < 0 && valid_utf8(v)) {
        p->val = v;
        return;
    }
    p->owned = clean_copy(v, n < 0 ? strlen(v) : (size_t)n);
    p->val = p->owned ? p->owned : "";
}

static void p_bind_blob(db_stmt *st, int i, const void *v, size_t n)
{
    pg_param *p = param(st, i);
    if (!p)
        return;
    p->type = OID_BYTEA;
    p->val = v ? v : "";
    p->len = (int)n;
    p->fmt = 1;
}

static void p_bind_null(db_stmt *st, int i)
{
    param(st, i);
}
static int p_param_count(db_stmt *st)
{
    return PS(st)->nparams;
}

static void clear_result(pg_stmt *s)
{
    PQclear(s->res);
    s->res = NULL;
    PQfreemem(s->blob);
    s->blob = NULL;
    s->row = s->nrows = 0;
}

/* Prepare s on its connection when this generation has not (invariant 1). */
static int ensure_prepared(pg_conn *c, pg_stmt *s)
{
    if (s->prep_gen == c->gen)
        return MD_OK;
    Oid types[MAX_PARAMS];
    for (int i = 0; i < s->nparams; i++)
        types[i] = s->p[i].type;
    PGresult *r = PQprepare(c->pg, s->name, s->text, s->nparams, types);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? MD_OK : fail(c, r, "prepare");
    PQclear(r);
    if (rc == MD_OK)
        s->prep_gen = c->gen;
    return rc;
}

/* Run s once: MD_OK with s->res holding its rows, or the md code. */
static int run_once(pg_conn *c, pg_stmt *s)
{
    int rc = ensure_prepared(c, s);
    if (rc != MD_OK)
        return rc;
    const char *vals[MAX_PARAMS];
    int lens[MAX_PARAMS], fmts[MAX_PARAMS];
    for (int i = 0; i < s->nparams; i++) {
        vals[i] = s->p[i].type ? s->p[i].val : NULL;
        lens[i] = s->p[i].len;
        fmts[i] = s->p[i].fmt;
    }
    PGresult *r = PQexecPrepared(c->pg, s->name, s->nparams, vals, lens, fmts, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        rc = fail(c, r, "execute");
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool constraint = state && strncmp(state, "23", 2) == 0;
        PQclear(r);
        return constraint ? DB_CONSTRAINT : rc;
    }
    s->res = r;
    s->nrows = st == PGRES_TUPLES_OK ? PQntuples(r) : 0;
    s->row = -1;
    const char *ct = PQcmdTuples(r);
    s->changes = ct && ct[0] ? strtoll(ct, NULL, 10) : 0;
    return MD_OK;
}

static int p_step(db_stmt *st)
{
    pg_stmt *s = PS(st);
    pg_conn *c = PC(st->c);
    if (!s->res) {
        bool in_tx = PQtransactionStatus(c->pg) != PQTRANS_IDLE;
        int rc = run_once(c, s);
        if (rc == MD_E_UNAVAILABLE && s->select && !in_tx && db_pg_reconnect(st->c) == MD_OK)
            rc = run_once(c, s); /* invariant 2 */
        if (rc == DB_CONSTRAINT)
            return DB_CONSTRAINT;
        if (rc != MD_OK)
            return DB_ERROR;
    }
    if (s->row + 1 >= s->nrows) {
        s->row = s->nrows;
        return DB_DONE;
    }
    s->row++;
    PQfreemem(s->blob);
    s->blob = NULL;
    return DB_ROW;
}

static bool on_row(pg_stmt *s, int i)
{
    return s->res && s->row >= 0 && s->row < s->nrows && i >= 0 && i < PQnfields(s->res);
}

static const char *p_col_text(db_stmt *st, int i)
{
    pg_stmt *s = PS(st);
    if (!on_row(s, i) || PQgetisnull(s->res, s->row, i))
        return NULL;
    return PQgetvalue(s->res, s->row, i);
}

static int64_t p_col_int64(db_stmt *st, int i)
{
    const char *t = p_col_text(st, i);
    return t ? strtoll(t, NULL, 10) : 0;
}

static double p_col_double(db_stmt *st, int i)
{
    const char *t = p_col_text(st, i);
    return t ? strtod(t, NULL) : 0.0;
}

static const void *p_col_blob(db_stmt *st, int i, size_t *n)
{
    pg_stmt *s = PS(st);
    const char *t = p_col_text(st, i);
    *n = 0;
    if (!t)
        return NULL;
    PQfreemem(s->blob);
    s->blob = PQunescapeBytea((const unsigned char *)t, n);
    return s->blob;
}

static bool p_col_null(db_stmt *st, int i)
{
    pg_stmt *s = PS(st);
    return !on_row(s, i) || PQgetisnull(s->res, s->row, i);
}

static int64_t p_changes(db_stmt *st)
{
    return PS(st)->changes;
}

static void p_reset(db_stmt *st)
{
    pg_stmt *s = PS(st);
    clear_result(s);
    for (int i = 0; i < s->nparams; i++) {
        free(s->p[i].owned);
        memset(&s->p[i], 0, sizeof s->p[i]);
    }
}

/* ---- connections --------------------------------------------------------------------------- */

static int p_exec(db_conn *dc, const char *sql)
{
    pg_conn *c = PC(dc);
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? MD_OK : fail(c, r, "exec");
    PQclear(r);
    return rc;
}

static bool p_in_tx(db_conn *dc)
{
    PGTransactionStatusType t = PQtransactionStatus(PC(dc)->pg);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

static bool p_broken(db_conn *dc)
{
    return PQstatus(PC(dc)->pg) == CONNECTION_BAD;
}

static void p_close(db_conn *dc)
{
    pg_conn *c = PC(dc);
    for (int i = 0; i < c->nstmts; i++) {
        p_reset(&c->stmts[i]->base);
        free(c->stmts[i]->text);
        free(c->stmts[i]);
    }
    free(c->stmts);
    PQfinish(c->pg);
    free(c);
}

static const db_ops pg_ops = {
    .prepare = p_prepare,
    .exec = p_exec,
    .bind_int64 = p_bind_int64,
    .bind_double = p_bind_double,
    .bind_text = p_bind_text,
    .bind_blob = p_bind_blob,
    .bind_null = p_bind_null,
    .param_count = p_param_count,
    .step = p_step,
    .col_int64 = p_col_int64,
    .col_double = p_col_double,
    .col_text = p_col_text,
    .col_blob = p_col_blob,
    .col_null = p_col_null,
    .changes = p_changes,
    .reset = p_reset,
    .in_tx = p_in_tx,
    .broken = p_broken,
    .close = p_close,
};

/* Server notices ("relation already exists, skipping") are not errors: keep them out of
 * stderr. */
static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Settings every session gets: UTC, UTF-8, and no NOTICE chatter. */
static int session_setup(pg_conn *c)
{
    PQsetNoticeProcessor(c->pg, quiet, NULL);
    return p_exec(&c->base, "SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC';"
                            "SET client_min_messages = warning");
}

int db_pg_open(const char *conninfo, db_conn **out, md_err *err)
{
    *out = NULL;
    pg_conn *c = calloc(1, sizeof *c);
    if (!c)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    c->base.ops = &pg_ops;
    c->base.kind = DB_PG;
    c->gen = 1;
    /* Defaults first: the URI's own values override them (expand_dbname). TCP keepalives
     * notice a server that vanished without closing (a dead host) within ~25 s instead of the
     * kernel's two hours. */
    const char *keys[] = {
        "connect_timeout",     "application_name", "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "dbname",     NULL};
    const char *vals[] = {"5", "modeld", "1", "10", "5", "3", conninfo, NULL};
    c->pg = PQconnectdbParams(keys, vals, 1);
    int rc = c->pg && PQstatus(c->pg) == CONNECTION_OK ? session_setup(c) : MD_E_UNAVAILABLE;
    if (rc != MD_OK) {
        md_log(MD_LOG_ERROR, "store: cannot connect to PostgreSQL: %s",
               c->pg ? PQerrorMessage(c->pg) : "out of memory");
        p_close(&c->base);
        return md_fail(err, MD_E_UNAVAILABLE, "store", "cannot connect to the database");
    }
    *out = &c->base;
    return MD_OK;
}

int db_pg_reconnect(db_conn *dc)
{
    pg_conn *c = PC(dc);
    PQreset(c->pg);
    c->gen++; /* invariant 1: the new session knows no prepared statement */
    c->base.reconnects++;
    if (PQstatus(c->pg) != CONNECTION_OK || session_setup(c) != MD_OK) {
        fail(c, NULL, "reconnect");
        c->base.errcode = MD_E_UNAVAILABLE;
        return MD_E_UNAVAILABLE;
    }
    return MD_OK;
}
