/* discovery.h - service discovery: instances found by DNS (discovery.dns,
 * every A and AAAA record, re-resolved every interval and when TTLs end) and
 * by the Redis registry (discovery.redis), joined to a service's static
 * instances without a config reload. Each source runs on its own thread,
 * off the workers; what they find reaches the workers as a new snapshot
 * (rw_snapshot_derive) that the control thread publishes. When a source
 * fails (DNS or Redis down), its last known instances stay. Control thread
 * API. */
#ifndef RINGWAY_DISCOVERY_H
#define RINGWAY_DISCOVERY_H

#include <stdint.h>

#include "ringway/worker.h"

/* Makes the sources follow snap's services (starting or stopping their
 * threads as needed). */
void rw_discovery_apply(const rw_snapshot *snap);

/* Waits up to timeout_ms for every source to have tried each of its
 * services once (start-up, so the first snapshot is not empty for a name
 * that resolves). */
void rw_discovery_wait_first(uint32_t timeout_ms);

/* A descriptor that becomes readable when a source found a change (for the
 * control thread's poll), or -1 before the first rw_discovery_apply. */
int rw_discovery_fd(void);

/* When what the sources know differs from snap's instances: a new snapshot
 * derived from snap with them (generation given), else NULL. Clears the
 * descriptor's readiness. */
rw_snapshot *rw_discovery_overlay(rw_snapshot *snap, uint64_t generation);

/* Stops every source (process exit). */
void rw_discovery_stop(void);

#endif
