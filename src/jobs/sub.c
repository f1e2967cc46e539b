/* sub.c - subscriptions to one job's changes (the WebSocket status route follows jobs with
 * them).
 *
 * Two sources feed a subscription: jobs__publish, called by this process's workers at once
 * when a run they hold changes (and by job_cancel), and jobs__poll_subs, the keeper thread's
 * poll of the store every poll_ms for jobs that another process runs. Both go through
 * deliver(), which drops what the subscriber already got, so the two never double up.
 *
 * Invariants:
 *   1. Every delivery happens with subs_mu held; job_unsubscribe takes subs_mu to unlink, so
 *      after it returns the callback is not running and never runs again.
 *   2. A subscription gets a change only when state, progress or stage differ from what it
 *      last got, and nothing after a terminal state.
 *   3. The poller reads seqs in one call, then the changed rows, outside subs_mu; it holds
 *      subs_mu only to deliver (the store is never called with subs_mu held, so a slow disk
 *      does not block job_unsubscribe longer than one delivery).
 *   4. Only changes made by this process (jobs__publish) go to on_event; what the poller or
 *      job_event_apply delivers came from another process and is never published again.
 */
#include "jobs/jobs_int.h"

#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Invariant 2. subs_mu held. */
static void deliver(job_sub *s, const job_info *info)
{
    if (s->done)
        return;
    if (info->seq > s->seen_seq)
        s->seen_seq = info->seq;
    if (info->state == s->last_state && info->progress == s->last_progress &&
        strcmp(info->stage, s->last_stage) == 0)
        return;
    s->last_state = info->state;
    s->last_progress = info->progress;
    memcpy(s->last_stage, info->stage, sizeof s->last_stage);
    s->done = job_state_terminal(info->state);
    s->cb(info, s->user);
}

/* A change to this process's subscribers of info->id. */
static void deliver_all(jobs *j, const job_info *info)
{
    pthread_mutex_lock(&j->subs_mu);
    for (job_sub *s = j->subs; s; s = s->next)
        if (strcmp(s->id, info->id) == 0)
            deliver(s, info);
    pthread_mutex_unlock(&j->subs_mu);
}

/* Invariant 4: a change made here goes to the subscribers here and to the cluster. */
void jobs__publish(jobs *j, const job_info *info)
{
    deliver_all(j, info);
    if (j->o.on_event)
        j->o.on_event(j->o.on_event_ctx, info);
}

static bool followed(jobs *j, const char *id)
{
    bool any = false;
    pthread_mutex_lock(&j->subs_mu);
    for (job_sub *s = j->subs; s && !any; s = s->next)
        any = !s->done && strcmp(s->id, id) == 0;
    pthread_mutex_unlock(&j->subs_mu);
    return any;
}

void job_event_apply(jobs *j, const char *id, int state, double progress, const char *stage)
{
    if (!id || strlen(id) >= STORE_JOB_ID_MAX || !followed(j, id))
        return;
    job_info *info = malloc(sizeof *info);
    if (info && store_jobs_get(j->s, id, info, NULL) == MD_OK) {
        if (info->state == state && progress >= info->progress) {
            info->progress = progress;
            snprintf(info->stage, sizeof info->stage, "%s", stage ? stage : "");
        }
        deliver_all(j, info); /* invariant 4: never published again */
    }
    free(info);
}

int job_subscribe(jobs *j, const char *id, job_event_fn cb, void *user, job_sub **out, md_err *err)
{
    *out = NULL;
    if (!id || !id[0] || strlen(id) >= STORE_JOB_ID_MAX || !cb)
        return md_fail(err, MD_E_INVALID_PARAM, "job_id", "bad job id");
    job_sub *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    s->j = j;
    memcpy(s->id, id, strlen(id) + 1);
    s->cb = cb;
    s->user = user;
    s->last_state = -1;
    s->last_progress = -1;
    pthread_mutex_lock(&j->subs_mu);
    s->next = j->subs;
    j->subs = s;
    pthread_mutex_unlock(&j->subs_mu);
    *out = s;
    return MD_OK;
}

void job_unsubscribe(job_sub *sub)
{
    if (!sub)
        return;
    jobs *j = sub->j;
    pthread_mutex_lock(&j->subs_mu);
    for (job_sub **p = &j->subs; *p; p = &(*p)->next)
        if (*p == sub) {
            *p = sub->next;
            break;
        }
    pthread_mutex_unlock(&j->subs_mu);
    free(sub);
}

void jobs__drop_subs(jobs *j)
{
    pthread_mutex_lock(&j->subs_mu);
    job_sub *s = j->subs;
    j->subs = NULL;
    pthread_mutex_unlock(&j->subs_mu);
    while (s) {
        job_sub *next = s->next;
        free(s);
        s = next;
    }
}

typedef struct poll_item {
    char id[STORE_JOB_ID_MAX];
    int64_t seen;
} poll_item;

/* The ids (with the lowest seq seen) of live subscriptions; *items new. */
static size_t collect(jobs *j, poll_item **items)
{
    size_t n = 0, cap = 0;
    poll_item *arr = NULL;
    pthread_mutex_lock(&j->subs_mu);
    for (job_sub *s = j->subs; s; s = s->next) {
        if (s->done)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            poll_item *na = realloc(arr, nc * sizeof *na);
            if (!na)
                break;
            arr = na;
            cap = nc;
        }
        memcpy(arr[n].id, s->id, sizeof arr[n].id);
        arr[n++].seen = s->seen_seq;
    }
    pthread_mutex_unlock(&j->subs_mu);
    *items = arr;
    return n;
}

void jobs__poll_subs(jobs *j)
{
    poll_item *items = NULL;
    size_t n = collect(j, &items);
    const char **ids = n ? malloc(n * sizeof *ids) : NULL;
    int64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
    job_info *info = n ? malloc(sizeof *info) : NULL;
    if (n && ids && seqs && info) {
        for (size_t i = 0; i < n; i++)
            ids[i] = items[i].id;
        if (store_jobs_seqs(j->s, ids, n, seqs, NULL) != MD_OK)
            n = 0;
        for (size_t i = 0; i < n; i++)
            if (seqs[i] > items[i].seen && store_jobs_get(j->s, ids[i], info, NULL) == MD_OK)
                deliver_all(j, info);
    }
    free(info);
    free(seqs);
    free(ids);
    free(items);
}
