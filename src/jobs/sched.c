/* sched.c - the scheduler (issue 11 §4): schedules are store rows with a cron expression
 * (cron.c) and a next fire time; job_schedule_tick, called by the keeper of every process on the
 * data dir (worker.c) and by tests with a manual clock, submits one job for each due schedule.
 *
 * One fire of a schedule, with the function making each step:
 *
 *     due (next_run_ms <= now)
 *        |  store_schedule_claim: next_run_ms old -> cron next after now  (compare-and-set)
 *        v
 *     claimed by this tick  --- job_submit fails ---> claim given back (next_run_ms = old)
 *        |  job_submit
 *        v
 *     submitted  -- store_schedule_set_job --> last_job_id recorded
 *
 * Invariants:
 *   1. A fire (schedule id, next_run_ms) is claimed by exactly one compare-and-set, whatever
 *      number of processes and ticks race for it (store/schedules.c invariant 1), and only
 *      the claimant submits: no fire submits two jobs.
 *   2. The new next_run_ms is the cron's first fire strictly after now (whole minutes, so
 *      strictly after the old one too): a schedule missed while nothing ran fires once.
 *   3. A row whose expression no longer parses (it was validated when added, so only a
 *      damaged database has one) is parked at next_run_ms = INT64_MAX and logged once, rather
 *      than failing on every tick.
 */
#include "jobs/jobs_int.h"

#include "base/buf.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUE_PER_TICK 64 /* schedules fired per tick at most; the rest on the next tick */

static int copy_field(char *dst, size_t cap, const char *v, bool required, const char *field,
                      md_err *err)
{
    if (required && (!v || !v[0]))
        return md_fail(err, MD_E_MISSING_FIELD, field, "required");
    if (v && strlen(v) >= cap)
        return md_fail(err, MD_E_INVALID_PARAM, field, "longer than %zu bytes", cap - 1);
    snprintf(dst, cap, "%s", v ? v : "");
    return MD_OK;
}

/* The next fire after now_ms, in ms; INT64_MAX when none (invariant 3). */
static int next_fire_ms(const char *expr, int64_t now_ms, int64_t *out, md_err *err)
{
    job_cron c;
    int64_t next_s = 0;
    int rc = job_cron_parse(expr, &c, err);
    if (rc == MD_OK)
        rc = job_cron_next(&c, now_ms < 0 ? 0 : now_ms / 1000, &next_s, err);
    *out = rc == MD_OK ? next_s * 1000 : INT64_MAX;
    return rc;
}

static int fill_schedule(const job_schedule_in *in, job_schedule *s, md_err *err)
{
    memset(s, 0, sizeof *s);
    if (!in->kind || !jobs__valid_kind_name(in->kind))
        return md_fail(err, MD_E_INVALID_PARAM, "kind", "a job kind of [a-z0-9_-] is required");
    int rc = copy_field(s->kind, sizeof s->kind, in->kind, true, "kind", err);
    if (rc == MD_OK)
        rc = copy_field(s->owner, sizeof s->owner, in->owner, false, "owner", err);
    if (rc == MD_OK)
        rc = copy_field(s->model, sizeof s->model, in->model, true, "model", err);
    if (rc == MD_OK)
        rc = copy_field(s->cron, sizeof s->cron, in->cron, true, "cron", err);
    if (rc == MD_OK)
        rc = copy_field(s->input, sizeof s->input, in->input, true, "input", err);
    if (rc == MD_OK)
        rc = copy_field(s->callback_url, sizeof s->callback_url, in->callback_url, false,
                        "callback_url", err);
    return rc;
}

/* A stored dataset input ("d_...") must exist when the schedule is made (an upload id is only
 * looked up when the schedule fires: it may be refreshed under the same id meanwhile). A delete
 * racing this check leaves a schedule whose runs fail with "no dataset" (the store refuses a
 * delete only once the schedule row exists). */
static int check_input(jobs *j, const char *input, md_err *err)
{
    if (strncmp(input, "d_", 2) != 0)
        return MD_OK;
    store_dataset *d = malloc(sizeof *d);
    if (!d)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = store_datasets_get(j->s, input, d, err);
    free(d);
    if (rc == MD_E_NOT_FOUND)
        rc = md_fail(err, MD_E_NOT_FOUND, "input", "no dataset %.40s", input);
    return rc;
}

int job_schedule_add(jobs *j, const job_schedule_in *in, job_schedule *out, md_err *err)
{
    job_schedule s;
    int rc = fill_schedule(in, &s, err);
    if (rc == MD_OK)
        rc = check_input(j, s.input, err);
    if (rc == MD_OK && s.callback_url[0])
        rc = job_callback_check_url(j->cb_allow, s.callback_url, err);
    if (rc == MD_OK)
        rc = next_fire_ms(s.cron, md_clock_wall_ms(j->clock), &s.next_run_ms, err);
    if (rc == MD_OK)
        rc = store_schedule_add(j->s, &s, err);
    if (rc == MD_OK && out)
        *out = s;
    return rc;
}

int job_schedule_get(jobs *j, const char *id, job_schedule *out, md_err *err)
{
    return store_schedule_get(j->s, id, out, err);
}

int job_schedule_list(jobs *j, job_schedule **list, size_t *n, md_err *err)
{
    return store_schedule_list(j->s, list, n, err);
}

int job_schedule_delete(jobs *j, const char *id, md_err *err)
{
    return store_schedule_delete(j->s, id, err);
}

/* The params of the job a fire submits (see jobs.h). *out is new (free()). */
static int fire_params(const job_schedule *s, char **out, md_err *err)
{
    md_buf b;
    md_buf_init(&b, STORE_JOB_PARAMS_MAX - 1);
    int rc = md_buf_puts(&b, "{\"model\":");
    rc = rc ? rc : md_buf_put_json_str(&b, s->model);
    rc = rc ? rc : md_buf_puts(&b, ",\"input\":");
    rc = rc ? rc : md_buf_put_json_str(&b, s->input);
    rc = rc ? rc : md_buf_puts(&b, ",\"schedule_id\":");
    rc = rc ? rc : md_buf_put_json_str(&b, s->id);
    rc = rc ? rc : md_buf_puts(&b, ",\"callback_url\":");
    rc = rc ? rc : md_buf_put_json_str(&b, s->callback_url);
    rc = rc ? rc : md_buf_printf(&b, ",\"scheduled_ms\":%lld}", (long long)s->next_run_ms);
    if (rc == MD_OK) {
        *out = md_buf_steal(&b, NULL);
        rc = *out ? MD_OK : MD_E_NOMEM;
    }
    md_buf_free(&b);
    return rc == MD_OK ? MD_OK : md_fail(err, rc, "params", "schedule parameters too large");
}

/* Submit the job of a claimed fire; on failure give the claim back. */
static int submit_fire(jobs *j, const job_schedule *s, int64_t new_next, md_err *err)
{
    char *params = NULL;
    job_info info;
    int rc = fire_params(s, &params, err);
    if (rc == MD_OK) {
        job_submit_in in = {.kind = s->kind,
                            .owner = s->owner,
                            .params_json = params,
                            .callback_url = s->callback_url};
        rc = job_submit(j, &in, &info, err);
    }
    free(params);
    if (rc != MD_OK) {
        md_err e2;
        if (store_schedule_claim(j->s, s->id, new_next, s->next_run_ms, s->last_run_ms, &e2) !=
            MD_OK)
            md_log(MD_LOG_WARN, "jobs: schedule %s: cannot give its claim back: %s", s->id,
                   md_err_message(&e2));
        return rc;
    }
    md_err e3;
    if (store_schedule_set_job(j->s, s->id, info.id, &e3) != MD_OK)
        md_log(MD_LOG_WARN, "jobs: schedule %s: job %s not recorded: %s", s->id, info.id,
               md_err_message(&e3));
    return MD_OK;
}

/* One due schedule: claim its fire, then submit. *fired is set when this call submitted. */
static int fire_one(jobs *j, const job_schedule *s, int64_t now_ms, bool *fired, md_err *err)
{
    int64_t new_next = INT64_MAX;
    md_err ce;
    *fired = false;
    if (next_fire_ms(s->cron, now_ms, &new_next, &ce) != MD_OK)
        md_log(MD_LOG_ERROR, "jobs: schedule %s parked: %s", s->id, md_err_message(&ce));
    int rc = store_schedule_claim(j->s, s->id, s->next_run_ms, new_next, now_ms, err);
    if (rc == MD_E_CONFLICT)
        return MD_OK; /* another process or tick fired it (invariant 1) */
    if (rc != MD_OK || new_next == INT64_MAX)
        return rc;
    rc = submit_fire(j, s, new_next, err);
    *fired = rc == MD_OK;
    return rc;
}

int job_schedule_tick(jobs *j, size_t *fired, md_err *err)
{
    int64_t now_ms = md_clock_wall_ms(j->clock);
    job_schedule *due = NULL;
    size_t n = 0, count = 0;
    int rc = store_schedule_due(j->s, now_ms, DUE_PER_TICK, &due, &n, err);
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        bool one = false;
        md_err e;
        /* one schedule's failure (a full queue) must not starve the others */
        if (fire_one(j, &due[i], now_ms, &one, &e) != MD_OK)
            md_log(MD_LOG_WARN, "jobs: schedule %s not fired: %s", due[i].id, md_err_message(&e));
        count += one;
    }
    free(due);
    if (fired)
        *fired = count;
    return rc;
}
