/* cpus.c - the CPUs a process may use: affinity mask and cgroup quota. */
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringway/cpus.h"

/* Reads a small file into buf (NUL-terminated); -1 when it cannot. */
static int read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

/* The cgroup path of the line whose controller list holds want ("" for the
 * v2 line "0::/path"); copied into out. -1 when there is no such line. */
static int cgroup_path(const char *proc_cgroup, const char *want, char *out, size_t cap)
{
    const char *p = proc_cgroup;
    while (p != NULL && *p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        const char *c1 = memchr(p, ':', len);
        const char *c2 = c1 != NULL ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p)) : NULL;
        if (c2 != NULL) {
            size_t clen = (size_t)(c2 - c1 - 1);
            bool match = false;
            if (want[0] == '\0') {
                match = clen == 0 && c1 - p == 1 && p[0] == '0';
            } else {
                /* comma-separated controllers, e.g. "cpu,cpuacct" */
                const char *t = c1 + 1;
                while (t < c2 && !match) {
                    const char *comma = memchr(t, ',', (size_t)(c2 - t));
                    const char *te = comma != NULL ? comma : c2;
                    match = (size_t)(te - t) == strlen(want) && memcmp(t, want, (size_t)(te - t)) == 0;
                    t = te + 1;
                }
            }
            if (match) {
                size_t plen = len - (size_t)(c2 + 1 - p);
                if (plen + 1 > cap)
                    return -1;
                memcpy(out, c2 + 1, plen);
                out[plen] = '\0';
                return 0;
            }
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return -1;
}

/* The directory names the v1 cpu hierarchy is mounted under. */
static const char *const v1_dirs[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};

double rw_cgroup_cpu_quota(const char *proc_cgroup, const char *root, char *why, size_t whylen)
{
    char rel[1024], base[1280], dir[2560], file[2600], text[128];
    bool v2;
    why[0] = '\0';
    snprintf(file, sizeof(file), "%s/cgroup.controllers", root);
    v2 = access(file, R_OK) == 0;
    if (v2) {
        if (cgroup_path(proc_cgroup, "", rel, sizeof(rel)) != 0)
            return 0;
        snprintf(base, sizeof(base), "%s", root);
    } else {
        if (cgroup_path(proc_cgroup, "cpu", rel, sizeof(rel)) != 0)
            return 0;
        size_t k = 0;
        for (; k < sizeof(v1_dirs) / sizeof(v1_dirs[0]); k++) {
            snprintf(base, sizeof(base), "%s/%s", root, v1_dirs[k]);
            if (access(base, R_OK) == 0)
                break;
        }
        if (k == sizeof(v1_dirs) / sizeof(v1_dirs[0]))
            return 0;
    }
    double best = 0;
    /* From the process's cgroup up to the mount's root (inside a cgroup
     * namespace the root is the container's own cgroup). */
    for (;;) {
        size_t rl = strlen(rel);
        while (rl > 1 && rel[rl - 1] == '/')
            rel[--rl] = '\0';
        snprintf(dir, sizeof(dir), "%s%s", base, strcmp(rel, "/") == 0 ? "" : rel);
        double q = 0;
        char desc[160] = "";
        if (v2) {
            snprintf(file, sizeof(file), "%s/cpu.max", dir);
            long long quota, period;
            if (read_small(file, text, sizeof(text)) == 0 &&
                sscanf(text, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0) {
                q = (double)quota / (double)period;
                snprintf(desc, sizeof(desc), "cgroup v2 cpu.max %lld/%lld in %s", quota, period, rel);
            }
        } else {
            long long quota = -1, period = 0;
            snprintf(file, sizeof(file), "%s/cpu.cfs_quota_us", dir);
            if (read_small(file, text, sizeof(text)) == 0)
                quota = atoll(text);
            snprintf(file, sizeof(file), "%s/cpu.cfs_period_us", dir);
            if (read_small(file, text, sizeof(text)) == 0)
                period = atoll(text);
            if (quota > 0 && period > 0) {
                q = (double)quota / (double)period;
                snprintf(desc, sizeof(desc), "cgroup v1 cpu.cfs_quota_us %lld/%lld in %s", quota, period,
                         rel);
            }
        }
        if (q > 0 && (best == 0 || q < best)) {
            best = q;
            snprintf(why, whylen, "%s", desc);
        }
        if (strcmp(rel, "/") == 0 || rel[0] == '\0')
            break;
        char *slash = strrchr(rel, '/');
        if (slash == NULL)
            break;
        if (slash == rel)
            rel[1] = '\0';
        else
            *slash = '\0';
    }
    return best;
}

void rw_cpu_budget_get(rw_cpu_budget *b)
{
    memset(b, 0, sizeof(*b));
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        b->affinity = CPU_COUNT(&set);
    if (b->affinity <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        b->affinity = n > 0 ? (int)n : 1;
    }
    char proc[4096], qwhy[160] = "";
    if (read_small("/proc/self/cgroup", proc, sizeof(proc)) == 0)
        b->quota = rw_cgroup_cpu_quota(proc, "/sys/fs/cgroup", qwhy, sizeof(qwhy));
    b->workers = b->affinity;
    int qcpus = (int)b->quota; /* rounded up: 1.5 CPUs of quota keep 2 workers busy */
    if ((double)qcpus < b->quota - 1e-9)
        qcpus++;
    if (qcpus > 0 && qcpus < b->workers) {
        b->workers = qcpus;
        snprintf(b->why, sizeof(b->why), "auto: %d of %d CPUs, the %s allows %.2f", b->workers, b->affinity,
                 qwhy, b->quota);
    } else if (qcpus > 0) {
        snprintf(b->why, sizeof(b->why), "auto: %d CPUs in the affinity mask (%s allows %.2f)", b->affinity,
                 qwhy, b->quota);
    } else {
        snprintf(b->why, sizeof(b->why), "auto: %d CPUs in the affinity mask, no cgroup CPU quota",
                 b->affinity);
    }
    if (b->workers < 1)
        b->workers = 1;
}
