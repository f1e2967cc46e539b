/* redis_int.h - what client.c shares with sub.c (not for other modules). */
#ifndef MD_REDIS_INT_H
#define MD_REDIS_INT_H

#include "redis/redis.h"

#include <pthread.h>

/* A connected hiredis context (redisContext *) with the command timeout set and the db
 * selected, or NULL with the reason in why. */
void *rds__connect(const rds_url *u, int connect_ms, int command_ms, char *why, size_t cap);
/* Copy a hiredis reply into a new rds_reply. MD_OK or MD_E_NOMEM. */
int rds__reply_new(const void *hiredis_reply, rds_reply **out);
/* Count one failure in c's metrics (NULL: none). */
void rds__count_error(rds_client *c);
/* The subscriber lost the server: c goes DOWN now (NULL: nothing), instead of at its next
 * command, so that readiness and metrics say so. */
void rds__client_down(rds_client *c, const char *why);
/* The subscriber reached the server again: c's next command reconnects without waiting out
 * its backoff. */
void rds__client_retry_now(rds_client *c);

#endif
