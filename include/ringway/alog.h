/* alog.h - the access log's transport: one lock-free ring per worker (the
 * worker writes lines into it, never blocking) and one writer thread that
 * batches them to the sink (stdout, stderr or a file). A full ring drops the
 * line and counts it; nothing queues without bound. What a line says is the
 * proxy's business (src/proxy/access.c). */
#ifndef RINGWAY_ALOG_H
#define RINGWAY_ALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringway/config.h"

typedef struct rw_alog_ring rw_alog_ring;

/* Creates the rings for nworkers and starts the writer thread on cfg's sink
 * (nothing is written while it is "off"). Returns 0, or -errno (the reason
 * in err: a file that cannot be opened). Control thread, once. */
int rw_alog_start(int nworkers, const rw_access_log_cfg *cfg, char *err, size_t errlen);
/* Follows a reloaded cfg: another path is opened (the old one kept when it
 * cannot be, with the reason in err and -1). Control thread. */
int rw_alog_configure(const rw_access_log_cfg *cfg, char *err, size_t errlen);
/* Reopens a file sink (SIGUSR1, after logrotate moved it). Control thread. */
void rw_alog_reopen(void);
/* Flushes what the rings hold and stops the writer (process exit, after the workers). */
void rw_alog_stop(void);

/* Worker id's ring, or NULL when the access log never started. */
rw_alog_ring *rw_alog_ring_of(int worker_id);
/* Room for a line of at most max bytes in r (worker thread only), or NULL
 * when the ring is full (the line is dropped and counted). */
char *rw_alog_reserve(rw_alog_ring *r, uint32_t max);
/* Publishes the len bytes written at what rw_alog_reserve returned. */
void rw_alog_commit(rw_alog_ring *r, uint32_t len);

/* Lines dropped because a ring was full, and lines written, so far (any thread). */
uint64_t rw_alog_dropped(void);
uint64_t rw_alog_written(void);

#endif
