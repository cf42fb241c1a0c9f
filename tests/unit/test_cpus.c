/* test_cpus.c - the cgroup CPU quota behind `workers: auto`, read from fake
 * cgroup trees (v2 cpu.max, v1 cpu.cfs_quota_us) built in a temp directory. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringway/cpus.h"

static char root[256];

static void mkdirs(const char *rel)
{
    char path[1024], *p;
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    mkdir(path, 0755);
}

static void put(const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/rw_cpus.XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cpus, .init = setup, .fini = teardown);

Test(cpus, v2_pod_quota)
{
    put("cgroup.controllers", "cpu memory\n");
    mkdirs("kubepods/burstable/pod1/ctr");
    put("kubepods/cpu.max", "max 100000\n");
    put("kubepods/burstable/pod1/cpu.max", "200000 100000\n");
    put("kubepods/burstable/pod1/ctr/cpu.max", "max 100000\n");
    char why[192];
    double q = rw_cgroup_cpu_quota("0::/kubepods/burstable/pod1/ctr\n", root, why, sizeof(why));
    cr_assert_float_eq(q, 2.0, 1e-9);
    cr_assert(strstr(why, "cpu.max 200000/100000") != NULL, "%s", why);
    cr_assert(strstr(why, "/kubepods/burstable/pod1") != NULL, "%s", why);
}

Test(cpus, v2_tightest_level_wins)
{
    put("cgroup.controllers", "cpu\n");
    mkdirs("a/b");
    put("a/cpu.max", "150000 100000\n");
    put("a/b/cpu.max", "400000 100000\n");
    char why[192];
    cr_assert_float_eq(rw_cgroup_cpu_quota("0::/a/b\n", root, why, sizeof(why)), 1.5, 1e-9);
}

Test(cpus, v2_namespace_root)
{
    /* Inside a cgroup namespace: "0::/" and the mount is the container's cgroup. */
    put("cgroup.controllers", "cpu\n");
    put("cpu.max", "50000 100000\n");
    char why[192];
    cr_assert_float_eq(rw_cgroup_cpu_quota("0::/\n", root, why, sizeof(why)), 0.5, 1e-9);
}

Test(cpus, v2_no_quota)
{
    put("cgroup.controllers", "cpu\n");
    mkdirs("a");
    put("a/cpu.max", "max 100000\n");
    char why[192] = "x";
    cr_assert_float_eq(rw_cgroup_cpu_quota("0::/a\n", root, why, sizeof(why)), 0.0, 1e-9);
    cr_assert_str_eq(why, "");
}

Test(cpus, v1_cpu_cpuacct)
{
    mkdirs("cpu,cpuacct/docker/abc");
    put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
    put("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    put("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    put("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    char why[192];
    const char *proc = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n";
    cr_assert_float_eq(rw_cgroup_cpu_quota(proc, root, why, sizeof(why)), 3.0, 1e-9);
    cr_assert(strstr(why, "cgroup v1") != NULL, "%s", why);
}

Test(cpus, garbage_means_no_quota)
{
    put("cgroup.controllers", "cpu\n");
    mkdirs("a");
    put("a/cpu.max", "lots of cpu\n");
    char why[192];
    cr_assert_float_eq(rw_cgroup_cpu_quota("0::/a\n", root, why, sizeof(why)), 0.0, 1e-9);
    cr_assert_float_eq(rw_cgroup_cpu_quota("", root, why, sizeof(why)), 0.0, 1e-9);
    cr_assert_float_eq(rw_cgroup_cpu_quota("nonsense", root, why, sizeof(why)), 0.0, 1e-9);
}

Test(cpus, budget_of_this_process)
{
    rw_cpu_budget b;
    rw_cpu_budget_get(&b);
    cr_assert_geq(b.workers, 1);
    cr_assert_leq(b.workers, b.affinity);
    cr_assert(strncmp(b.why, "auto: ", 6) == 0, "%s", b.why);
}
