/* health.h - the health thread: one per node, it runs the active health
 * checks of every service that has health_check (one probe per instance per
 * interval, whatever the worker count), ends expired outlier ejections and
 * logs every change of an instance's state. Its verdicts reach the workers
 * through upstate.h (atomics), never a lock. Control thread API. */
#ifndef RINGWAY_HEALTH_H
#define RINGWAY_HEALTH_H

#include "ringway/worker.h"

/* Makes the health thread follow snap (takes its own reference), starting the
 * thread the first time a snapshot needs it. Returns 0, or -errno when the
 * thread cannot start (then no active checks run; logged). */
int rw_health_apply(rw_snapshot *snap);

/* Stops the thread and drops its snapshot (process exit). */
void rw_health_stop(void);

/* Probes run so far (all instances), for tests and /metrics. */
uint64_t rw_health_probes_total(void);

/* Writes the "upstreams" member of /status for snap (every service and
 * instance: in rotation, healthy, ejected, checks) at buf; returns the
 * length (at most cap - 1; truncated output ends early). */
size_t rw_health_status_json(const rw_snapshot *snap, char *buf, size_t cap);

/* Writes the per-instance Prometheus series for snap at buf; returns the
 * length (at most cap - 1). */
size_t rw_health_metrics(const rw_snapshot *snap, char *buf, size_t cap);

#endif
