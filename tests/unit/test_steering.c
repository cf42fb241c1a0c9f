/* test_steering.c - the CPU-affine reuseport program (--reuseport-steering cpu):
 * rw_net_cpu_steering_prog run by a small classic-BPF interpreter (the opcodes
 * it emits), and the kernel's acceptance of it (SO_ATTACH_REUSEPORT_CBPF). */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringway/net.h"

static struct sock_filter prog[RW_NET_STEER_MAX_INSNS];

static int build(const int *cpus, int n)
{
    int len = rw_net_cpu_steering_prog(cpus, n, prog, RW_NET_STEER_MAX_INSNS);
    cr_assert_gt(len, 0, "building the program for %d workers failed: %d", n, len);
    return len;
}

/* Runs prog[0..len) for a SYN handled on cpu with SKF_AD_RANDOM = rnd; checks
 * that every jump stays inside the program and that it ends in a ret. */
static uint32_t run(int len, uint32_t cpu, uint32_t rnd)
{
    uint32_t a = 0;
    for (int pc = 0; pc < len; pc++) {
        const struct sock_filter *f = &prog[pc];
        switch (f->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (f->k == (uint32_t)(SKF_AD_OFF + SKF_AD_CPU))
                a = cpu;
            else if (f->k == (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM))
                a = rnd;
            else
                cr_assert_fail("pc %d: unexpected load k=%#x", pc, f->k);
            break;
        case BPF_JMP | BPF_JEQ | BPF_K:
            pc += a == f->k ? f->jt : f->jf;
            cr_assert_lt(pc + 1, len, "a jump leaves the program");
            break;
        case BPF_ALU | BPF_MOD | BPF_K:
            cr_assert_neq(f->k, 0u);
            a %= f->k;
            break;
        case BPF_ALU | BPF_MUL | BPF_K:
            a *= f->k;
            break;
        case BPF_ALU | BPF_ADD | BPF_K:
            a += f->k;
            break;
        case BPF_RET | BPF_K:
            return f->k;
        case BPF_RET | BPF_A:
            return a;
        default:
            cr_assert_fail("pc %d: unexpected opcode %#x", pc, f->code);
        }
    }
    cr_assert_fail("the program runs off its end");
    return 0;
}

Test(steering, identity_is_cpu_mod_n)
{
    int cpus[4] = {0, 1, 2, 3};
    int len = build(cpus, 4);
    cr_expect_eq(len, 3, "workers on CPUs 0..n-1 need only ld cpu; mod n; ret a (got %d)", len);
    for (uint32_t c = 0; c < 64; c++)
        cr_expect_eq(run(len, c, 12345), c % 4);
}

Test(steering, unpinned_is_cpu_mod_n)
{
    int cpus[3] = {-1, -1, -1};
    int len = build(cpus, 3);
    cr_expect_eq(len, 3);
    for (uint32_t c = 0; c < 64; c++)
        cr_expect_eq(run(len, c, 7), c % 3);
}

Test(steering, pinned_elsewhere_uses_the_jump_table)
{
    int cpus[2] = {2, 3}; /* taskset -c 2-3 */
    int len = build(cpus, 2);
    cr_expect_eq(run(len, 2, 0), 0u);
    cr_expect_eq(run(len, 3, 0), 1u);
    for (uint32_t c = 0; c < 64; c++)
        cr_expect_lt(run(len, c, 99), 2u, "CPU %u without a worker gets an invalid index", c);
    cr_expect_eq(run(len, 0, 0), 0u);
    cr_expect_eq(run(len, 5, 0), 1u);
}

Test(steering, more_workers_than_cpus_pick_among_the_cpus_workers)
{
    int cpus[5] = {4, 6, 4, 6, 4}; /* worker i on cpus[i % 2] of {4, 6} */
    int len = build(cpus, 5);
    int seen[5] = {0};
    for (uint32_t r = 0; r < 60; r++) {
        uint32_t w4 = run(len, 4, r), w6 = run(len, 6, r * 2654435761u);
        cr_assert(w4 == 0 || w4 == 2 || w4 == 4, "a SYN on CPU 4 went to worker %u", w4);
        cr_assert(w6 == 1 || w6 == 3, "a SYN on CPU 6 went to worker %u", w6);
        seen[w4]++;
        seen[w6]++;
    }
    for (int i = 0; i < 5; i++)
        cr_expect_gt(seen[i], 0, "worker %d never chosen", i);
    cr_expect_eq(seen[0], 20);
    cr_expect_eq(seen[2], 20);
    cr_expect_eq(seen[4], 20);
    for (uint32_t c = 0; c < 16; c++)
        cr_expect_lt(run(len, c, 3), 5u);
}

Test(steering, uneven_layout_takes_the_first_worker)
{
    int cpus[4] = {0, 1, 0, 0};
    int len = build(cpus, 4);
    for (uint32_t r = 0; r < 10; r++) {
        cr_expect_eq(run(len, 0, r), 0u);
        cr_expect_eq(run(len, 1, r), 1u);
    }
}

Test(steering, largest_fits_and_maps)
{
    static int cpus[1024];
    for (int i = 0; i < 1024; i++)
        cpus[i] = 2 * i + 1; /* distinct, never the identity */
    int len = build(cpus, 1024);
    cr_expect_leq(len, 2 * 1024 + 3);
    for (int i = 0; i < 1024; i++)
        cr_assert_eq(run(len, (uint32_t)(2 * i + 1), 0), (uint32_t)i);
    cr_expect_eq(run(len, 2048 + 5, 0), (2048u + 5) % 1024);
}

Test(steering, bad_arguments)
{
    int cpus[4] = {3, 2, 1, 0};
    cr_expect_eq(rw_net_cpu_steering_prog(cpus, 0, prog, RW_NET_STEER_MAX_INSNS), -EINVAL);
    cr_expect_eq(rw_net_cpu_steering_prog(cpus, 4, prog, 4), -E2BIG);
}

/* The kernel's classic-BPF checker accepts every shape of program. */
Test(steering, kernel_accepts_the_program)
{
    static int big[1024];
    for (int i = 0; i < 1024; i++)
        big[i] = 2 * i + 1;
    const struct {
        int n;
        const int *cpus;
    } cases[] = {
        {1, (const int[]){0}},    {2, (const int[]){0, 1}},          {2, (const int[]){-1, -1}},
        {2, (const int[]){2, 3}}, {5, (const int[]){4, 6, 4, 6, 4}}, {1024, big},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(fd, 0);
        int one = 1;
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        cr_assert_eq(listen(fd, 4), 0);
        int rc = rw_net_attach_cpu_steering(fd, cases[i].cpus, cases[i].n);
        cr_expect_eq(rc, 0, "case %zu (%d workers): SO_ATTACH_REUSEPORT_CBPF: %s", i, cases[i].n,
                     strerror(-rc));
        close(fd);
    }
}
