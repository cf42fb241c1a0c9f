/* cpus.h - how many CPUs this process may really use: the affinity mask and
 * the cgroup CPU quota (v2 cpu.max, v1 cpu.cfs_quota_us), for `workers: auto`.
 * A pod limited to 2 CPUs on a 64-core node sees 64 CPUs in its affinity
 * mask; 64 pinned workers there would share 2 CPUs' worth of time slices. */
#ifndef RINGWAY_CPUS_H
#define RINGWAY_CPUS_H

#include <stddef.h>

typedef struct rw_cpu_budget {
    int affinity;  /* CPUs in the affinity mask (at least 1) */
    double quota;  /* the tightest cgroup quota on the way to the root, in CPUs; 0: none */
    int workers;   /* min(affinity, ceil(quota)), at least 1 */
    char why[192]; /* how workers was chosen, for the start-up line */
} rw_cpu_budget;

/* Reads the cgroup CPU quota of the cgroup listed in proc_cgroup (the text of
 * /proc/self/cgroup) under the cgroup file system mounted at root (normally
 * /sys/fs/cgroup): cgroup v2 when root holds cgroup.controllers, else the v1
 * "cpu" hierarchy. Walks from the process's cgroup up to root and keeps the
 * smallest quota. Returns the quota in CPUs, 0 when there is none, and
 * describes it in why (whylen > 0; "" when none). Never fails: unreadable
 * files mean no quota. */
double rw_cgroup_cpu_quota(const char *proc_cgroup, const char *root, char *why, size_t whylen);

/* Fills b for this process (sched_getaffinity, /proc/self/cgroup,
 * /sys/fs/cgroup). */
void rw_cpu_budget_get(rw_cpu_budget *b);

#endif
