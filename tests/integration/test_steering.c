/* test_steering.c - --reuseport-steering: with "cpu", a connection made from a
 * client thread pinned to a CPU (on loopback the SYN is handled on the
 * connecting CPU) is accepted by the worker pinned to that CPU, as /status
 * per_worker "accepted" shows; bad values are refused. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The first two CPUs this test may run on; false when there are fewer. */
static bool two_cpus(int out[2])
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return false;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &set))
            out[n++] = c;
    return n == 2;
}

static void pin_self(int a, int b)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(a, &set);
    if (b >= 0)
        CPU_SET(b, &set);
    cr_assert_eq(sched_setaffinity(0, sizeof set, &set), 0, "sched_setaffinity");
}

/* per_worker accepted counters from the admin port's /status. */
static void accepted(int admin, int nworkers, long *out)
{
    h_conn *c = h_connect(admin);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/status", NULL, NULL, 0, &r), H_OK, "no answer to GET /status");
    cr_assert_eq(r.status, 200);
    for (int i = 0; i < nworkers; i++) {
        const char *key = h_fmt("{\"id\":%d,\"accepted\":", i);
        const char *p = strstr(r.body, key);
        cr_assert_not_null(p, "no per_worker entry %d in /status: %s", i, r.body);
        out[i] = strtol(p + strlen(key), NULL, 10);
    }
    h_resp_free(&r);
    h_close(c);
}

/* Starts ringway with nworkers and cpu steering, both CPUs allowed to it;
 * for each of the two CPUs makes `per` connections from this thread pinned
 * there; returns the per-worker accepted deltas in got[cpu index][worker]. */
static void run_steered(int nworkers, const char *extra, int per, long got[2][8])
{
    int cpus[2];
    if (!two_cpus(cpus))
        cr_skip_test("fewer than 2 CPUs: nothing to steer between");
    pin_self(cpus[0], cpus[1]); /* ringway inherits the mask: worker i runs on cpus[i % 2] */
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){
        .workers = nworkers,
        .args = {"--admin", h_fmt("127.0.0.1:%d", admin), "--reuseport-steering", "cpu", extra}});
    for (int k = 0; k < 2; k++) {
        long before[8], after[8];
        accepted(admin, nworkers, before);
        pin_self(cpus[k], -1);
        for (int i = 0; i < per; i++) {
            h_resp r;
            h_get(p->port, "/health", &r);
            cr_assert_eq(r.status, 200);
            h_resp_free(&r);
        }
        pin_self(cpus[0], cpus[1]);
        accepted(admin, nworkers, after);
        for (int w = 0; w < nworkers; w++)
            got[k][w] = after[w] - before[w];
    }
}

H_TEST(steering, cpu_lands_on_the_workers_cpu)
{
    long got[2][8];
    run_steered(2, NULL, 10, got);
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(got[k][k], 10,
                     "connections from CPU index %d: worker %d accepted %ld of 10 (other: %ld)", k, k,
                     got[k][k], got[k][1 - k]);
        cr_expect_eq(got[k][1 - k], 0, "connections from CPU index %d: worker %d accepted %ld", k, 1 - k,
                     got[k][1 - k]);
    }
}

H_TEST(steering, cpu_with_more_workers_than_cpus)
{
    long got[2][8];
    run_steered(4, NULL, 16, got); /* workers 0, 2 on the first CPU; 1, 3 on the second */
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(got[k][k] + got[k][k + 2], 16,
                     "connections from CPU index %d: workers %d and %d accepted %ld + %ld of 16", k, k, k + 2,
                     got[k][k], got[k][k + 2]);
        cr_expect_eq(got[k][1 - k] + got[k][3 - k], 0,
                     "connections from CPU index %d reached the other CPU's workers", k);
    }
}

H_TEST(steering, cpu_without_pinning_still_serves)
{
    long got[2][8];
    run_steered(2, "--no-pin", 4, got);
    for (int k = 0; k < 2; k++)
        cr_expect_eq(got[k][0] + got[k][1], 4, "lost connections from CPU index %d", k);
}

H_TEST(steering, hash_is_accepted)
{
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.workers = 2, .args = {"--reuseport-steering", "hash"}});
    h_resp r;
    h_get(p->port, "/health", &r);
    cr_expect_eq(r.status, 200);
    h_resp_free(&r);
}

H_TEST(steering, bogus_value_is_refused)
{
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --reuseport-steering bogus --check-config", h_binary());
    cr_expect_eq(code, 2, "--reuseport-steering bogus should exit 2 (bad command line), got %d", code);
    cr_expect(strstr(c->err, "--reuseport-steering bogus: expected hash or cpu") != NULL,
              "no clear message on stderr: %s", c->err);
    code = h_run(&c, 5000, "'%s' --reuseport-steering", h_binary());
    cr_expect(code > 0 && code < 128, "--reuseport-steering without a value should fail, exit code %d", code);
}

H_TEST(steering, help_mentions_it)
{
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --help", h_binary());
    cr_assert_eq(code, 0);
    cr_expect(strstr(c->out, "--reuseport-steering") != NULL && strstr(c->out, "hash | cpu") != NULL,
              "--help does not document --reuseport-steering: %s", c->out);
    code = h_run(&c, 5000, "'%s' --reuseport-steering cpu --check-config", h_binary());
    cr_expect_eq(code, 0, "--check-config with --reuseport-steering cpu exited %d: %s", code, c->err);
}
