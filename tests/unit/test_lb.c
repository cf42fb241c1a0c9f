/* test_lb.c - load-balancing policies and rw_hash64. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>

#include "ringway/common.h"
#include "ringway/config.h"
#include "ringway/lb.h"

static uint64_t key_hash(unsigned k)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "user-%u", k);
    return rw_hash64(buf, (size_t)n);
}

Test(lb, init_rejects_empty)
{
    rw_lb lb;
    cr_assert_eq(rw_lb_init(&lb, RW_LB_ROUND_ROBIN, NULL, 0, 1), -EINVAL);
    rw_lb_free(&lb); /* safe after a failed init */
    cr_assert_eq(rw_lb_init(&lb, 99, NULL, 3, 1), -EINVAL);
    rw_lb_free(&lb);
}

Test(lb, swrr_nginx_sequence)
{
    rw_lb lb;
    const uint32_t w[] = {5, 1, 1};
    cr_assert_eq(rw_lb_init(&lb, RW_LB_ROUND_ROBIN, w, 3, 1), 0);
    static const int want[] = {0, 0, 1, 0, 2, 0, 0};
    for (int cycle = 0; cycle < 3; cycle++)
        for (size_t i = 0; i < RW_ARRAY_LEN(want); i++) {
            int got = rw_lb_pick(&lb, NULL, NULL, 0);
            cr_assert_eq(got, want[i], "cycle %d pick %zu: got %d", cycle, i, got);
        }
    rw_lb_free(&lb);
}

Test(lb, swrr_exact_proportions)
{
    rw_lb lb;
    const uint32_t w[] = {5, 3, 2};
    cr_assert_eq(rw_lb_init(&lb, RW_LB_ROUND_ROBIN, w, 3, 1), 0);
    unsigned cnt[3] = {0};
    for (int i = 0; i < 10000; i++)
        cnt[rw_lb_pick(&lb, NULL, NULL, 0)]++;
    cr_expect_eq(cnt[0], 5000);
    cr_expect_eq(cnt[1], 3000);
    cr_expect_eq(cnt[2], 2000);
    rw_lb_free(&lb);
}

Test(lb, swrr_skips_excluded)
{
    rw_lb lb;
    const uint32_t w[] = {5, 1, 1};
    cr_assert_eq(rw_lb_init(&lb, RW_LB_ROUND_ROBIN, w, 3, 1), 0);
    uint8_t ex[3] = {1, 0, 0};
    unsigned cnt[3] = {0};
    for (int i = 0; i < 1000; i++)
        cnt[rw_lb_pick(&lb, NULL, ex, 0)]++;
    cr_expect_eq(cnt[0], 0);
    cr_expect_eq(cnt[1], 500);
    cr_expect_eq(cnt[2], 500);
    /* unequal weights among the rest */
    uint8_t ex2[3] = {0, 1, 0};
    unsigned c2[3] = {0};
    for (int i = 0; i < 600; i++)
        c2[rw_lb_pick(&lb, NULL, ex2, 0)]++;
    cr_expect_eq(c2[1], 0);
    cr_expect_eq(c2[0], 500);
    cr_expect_eq(c2[2], 100);
    rw_lb_free(&lb);
}

Test(lb, all_excluded_returns_minus_one)
{
    const uint32_t w[] = {1, 2, 3, 4};
    uint8_t ex[4] = {1, 1, 1, 1};
    uint32_t act[4] = {0};
    for (int pol = RW_LB_ROUND_ROBIN; pol <= RW_LB_HASH; pol++) {
        rw_lb lb;
        cr_assert_eq(rw_lb_init(&lb, pol, w, 4, 9), 0);
        for (unsigned k = 0; k < 50; k++)
            cr_assert_eq(rw_lb_pick(&lb, act, ex, key_hash(k)), -1, "policy %d", pol);
        rw_lb_free(&lb);
    }
}

Test(lb, single_instance_every_policy)
{
    for (int pol = RW_LB_ROUND_ROBIN; pol <= RW_LB_HASH; pol++) {
        rw_lb lb;
        cr_assert_eq(rw_lb_init(&lb, pol, NULL, 1, 3), 0);
        for (unsigned k = 0; k < 20; k++)
            cr_assert_eq(rw_lb_pick(&lb, NULL, NULL, key_hash(k)), 0, "policy %d", pol);
        rw_lb_free(&lb);
    }
}

Test(lb, least_conn_picks_least_loaded)
{
    rw_lb lb;
    cr_assert_eq(rw_lb_init(&lb, RW_LB_LEAST_CONN, NULL, 4, 1), 0);
    uint32_t act[4] = {3, 1, 2, 5};
    cr_assert_eq(rw_lb_pick(&lb, act, NULL, 0), 1);
    uint8_t ex[4] = {0, 1, 0, 0};
    cr_assert_eq(rw_lb_pick(&lb, act, ex, 0), 2);
    rw_lb_free(&lb);

    /* weighted: 3 active on weight 2 (1.5) beats 2 active on weight 1 */
    const uint32_t w[] = {2, 1};
    cr_assert_eq(rw_lb_init(&lb, RW_LB_LEAST_CONN, w, 2, 1), 0);
    uint32_t a2[2] = {3, 2};
    cr_assert_eq(rw_lb_pick(&lb, a2, NULL, 0), 0);
    uint32_t a3[2] = {5, 2};
    cr_assert_eq(rw_lb_pick(&lb, a3, NULL, 0), 1);
    rw_lb_free(&lb);
}

Test(lb, least_conn_spreads_ties)
{
    rw_lb lb;
    cr_assert_eq(rw_lb_init(&lb, RW_LB_LEAST_CONN, NULL, 3, 1), 0);
    uint32_t act[3] = {0, 0, 0};
    unsigned cnt[3] = {0};
    for (int i = 0; i < 300; i++)
        cnt[rw_lb_pick(&lb, act, NULL, 0)]++;
    cr_expect_eq(cnt[0], 100);
    cr_expect_eq(cnt[1], 100);
    cr_expect_eq(cnt[2], 100);
    rw_lb_free(&lb);

    /* simulated: requests that never finish fill instances evenly */
    cr_assert_eq(rw_lb_init(&lb, RW_LB_LEAST_CONN, NULL, 3, 1), 0);
    uint32_t busy[3] = {0};
    for (int i = 0; i < 30; i++)
        busy[rw_lb_pick(&lb, busy, NULL, 0)]++;
    cr_expect(busy[0] == 10 && busy[1] == 10 && busy[2] == 10);
    rw_lb_free(&lb);

    /* weighted fill: weights 3:1 get 3:1 of the load */
    const uint32_t w[] = {3, 1};
    cr_assert_eq(rw_lb_init(&lb, RW_LB_LEAST_CONN, w, 2, 1), 0);
    uint32_t b2[2] = {0};
    for (int i = 0; i < 40; i++)
        b2[rw_lb_pick(&lb, b2, NULL, 0)]++;
    cr_expect_eq(b2[0], 30);
    cr_expect_eq(b2[1], 10);
    rw_lb_free(&lb);
}

Test(lb, p2c_never_picks_excluded)
{
    rw_lb lb;
    enum { N = 16 };
    cr_assert_eq(rw_lb_init(&lb, RW_LB_P2C, NULL, N, 12345), 0);
    uint32_t act[N] = {0};
    uint8_t ex[N];
    for (int round = 0; round < 200; round++) {
        int navail = 0;
        for (int i = 0; i < N; i++) {
            ex[i] = (uint8_t)((i * 7 + round) % 5 < 3 || (round % 10 == 0 && i != round % N));
            navail += !ex[i];
        }
        for (int k = 0; k < 100; k++) {
            int p = rw_lb_pick(&lb, act, ex, 0);
            if (navail == 0) {
                cr_assert_eq(p, -1);
            } else {
                cr_assert(p >= 0 && p < N && !ex[p], "round %d picked %d", round, p);
                act[p] = (act[p] + 1) % 7;
            }
        }
    }
    rw_lb_free(&lb);
}

Test(lb, p2c_prefers_less_loaded)
{
    rw_lb lb;
    cr_assert_eq(rw_lb_init(&lb, RW_LB_P2C, NULL, 2, 1), 0);
    uint32_t act[2] = {10, 0};
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(rw_lb_pick(&lb, act, NULL, 0), 1, "two instances: always the idle one");
    rw_lb_free(&lb);

    /* 4 instances, one idle: it is in the random pair half of the time */
    cr_assert_eq(rw_lb_init(&lb, RW_LB_P2C, NULL, 4, 2), 0);
    uint32_t a4[4] = {5, 5, 0, 5};
    unsigned cnt[4] = {0};
    for (int i = 0; i < 20000; i++)
        cnt[rw_lb_pick(&lb, a4, NULL, 0)]++;
    cr_expect(cnt[2] > 9000 && cnt[2] < 11000, "idle picked %u of 20000", cnt[2]);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            cr_expect(cnt[i] > 2800 && cnt[i] < 3900, "busy %d picked %u", i, cnt[i]);
    rw_lb_free(&lb);

    /* the most loaded of n is only picked when paired with itself: never */
    cr_assert_eq(rw_lb_init(&lb, RW_LB_P2C, NULL, 5, 3), 0);
    uint32_t a5[5] = {1, 2, 9, 3, 4};
    for (int i = 0; i < 5000; i++)
        cr_assert_neq(rw_lb_pick(&lb, a5, NULL, 0), 2);
    rw_lb_free(&lb);
}

Test(lb, p2c_uniform_when_equal)
{
    rw_lb lb;
    cr_assert_eq(rw_lb_init(&lb, RW_LB_P2C, NULL, 5, 77), 0);
    unsigned cnt[5] = {0};
    for (int i = 0; i < 50000; i++)
        cnt[rw_lb_pick(&lb, NULL, NULL, 0)]++;
    for (int i = 0; i < 5; i++)
        cr_expect(cnt[i] > 9000 && cnt[i] < 11000, "instance %d: %u", i, cnt[i]);
    rw_lb_free(&lb);
}

Test(lb, hash_same_key_same_instance)
{
    rw_lb lb, lb2;
    cr_assert_eq(rw_lb_init(&lb, RW_LB_HASH, NULL, 7, 1), 0);
    cr_assert_eq(rw_lb_init(&lb2, RW_LB_HASH, NULL, 7, 999), 0);
    unsigned cnt[7] = {0};
    for (unsigned k = 0; k < 70000; k++) {
        int a = rw_lb_pick(&lb, NULL, NULL, key_hash(k));
        cr_assert(a >= 0 && a < 7);
        cr_assert_eq(rw_lb_pick(&lb, NULL, NULL, key_hash(k)), a);
        cr_assert_eq(rw_lb_pick(&lb2, NULL, NULL, key_hash(k)), a, "independent of the seed");
        cnt[a]++;
    }
    for (int i = 0; i < 7; i++)
        cr_expect(cnt[i] > 8000 && cnt[i] < 12000, "instance %d got %u of 70000", i, cnt[i]);
    rw_lb_free(&lb);
    rw_lb_free(&lb2);
}

Test(lb, hash_weighted)
{
    rw_lb lb;
    const uint32_t w[] = {1, 3};
    cr_assert_eq(rw_lb_init(&lb, RW_LB_HASH, w, 2, 1), 0);
    cr_assert_eq(lb.ring_len, 4 * 160);
    unsigned cnt[2] = {0};
    for (unsigned k = 0; k < 40000; k++)
        cnt[rw_lb_pick(&lb, NULL, NULL, key_hash(k))]++;
    cr_expect(cnt[0] > 8500 && cnt[0] < 11500, "weight 1 got %u of 40000", cnt[0]);
    rw_lb_free(&lb);
}

Test(lb, hash_adding_instance_moves_few_keys)
{
    enum { KEYS = 100000 };
    for (uint32_t n = 3; n <= 20; n += 17) {
        rw_lb a, b;
        cr_assert_eq(rw_lb_init(&a, RW_LB_HASH, NULL, n, 1), 0);
        cr_assert_eq(rw_lb_init(&b, RW_LB_HASH, NULL, n + 1, 1), 0);
        unsigned moved = 0;
        for (unsigned k = 0; k < KEYS; k++) {
            int x = rw_lb_pick(&a, NULL, NULL, key_hash(k));
            int y = rw_lb_pick(&b, NULL, NULL, key_hash(k));
            if (x != y) {
                moved++;
                cr_assert_eq(y, (int)n, "a moved key goes to the new instance");
            }
        }
        double frac = (double)moved / KEYS;
        cr_expect(frac < 2.0 / (n + 1) && frac > 0.3 / (n + 1), "n=%u moved %.4f", n, frac);
        rw_lb_free(&a);
        rw_lb_free(&b);
    }
}

Test(lb, hash_skips_excluded)
{
    rw_lb lb;
    cr_assert_eq(rw_lb_init(&lb, RW_LB_HASH, NULL, 5, 1), 0);
    uint8_t ex[5] = {0, 0, 1, 0, 0};
    unsigned moved = 0;
    for (unsigned k = 0; k < 20000; k++) {
        int x = rw_lb_pick(&lb, NULL, NULL, key_hash(k));
        int y = rw_lb_pick(&lb, NULL, ex, key_hash(k));
        cr_assert_neq(y, 2);
        if (x != 2)
            cr_assert_eq(x, y, "keys of healthy instances stay put");
        else
            moved++;
    }
    cr_expect(moved > 2000, "instance 2 had %u keys", moved);
    /* only one left */
    uint8_t ex4[5] = {1, 1, 1, 0, 1};
    for (unsigned k = 0; k < 1000; k++)
        cr_assert_eq(rw_lb_pick(&lb, NULL, ex4, key_hash(k)), 3);
    rw_lb_free(&lb);
}

Test(lb, hash_named_ring_follows_names)
{
    const char *names[] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"};
    const char *reordered[] = {"10.0.0.3:80", "10.0.0.1:80", "10.0.0.4:80"}; /* .2 removed */
    rw_lb a, b;
    cr_assert_eq(rw_lb_init_named(&a, RW_LB_HASH, NULL, names, 4, 1), 0);
    cr_assert_eq(rw_lb_init_named(&b, RW_LB_HASH, NULL, reordered, 3, 1), 0);
    for (unsigned k = 0; k < 20000; k++) {
        int x = rw_lb_pick(&a, NULL, NULL, key_hash(k));
        int y = rw_lb_pick(&b, NULL, NULL, key_hash(k));
        if (x != 1)
            cr_assert_str_eq(names[x], reordered[y], "key %u", k);
    }
    rw_lb_free(&a);
    rw_lb_free(&b);
}

Test(lb, hash_ring_is_capped)
{
    rw_lb lb;
    uint32_t w[100];
    for (int i = 0; i < 100; i++)
        w[i] = 1000;
    cr_assert_eq(rw_lb_init(&lb, RW_LB_HASH, w, 100, 1), 0);
    cr_assert_leq(lb.ring_len, (1u << 18) + 100);
    cr_assert_geq(lb.ring_len, 100);
    unsigned cnt[100] = {0};
    for (unsigned k = 0; k < 100000; k++)
        cnt[rw_lb_pick(&lb, NULL, NULL, key_hash(k))]++;
    for (int i = 0; i < 100; i++)
        cr_expect(cnt[i] > 600 && cnt[i] < 1400, "instance %d: %u", i, cnt[i]);
    rw_lb_free(&lb);
}

Test(lb, hash64_properties)
{
    uint8_t buf[200];
    for (int i = 0; i < 200; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    /* deterministic, length matters, every prefix distinct */
    uint64_t seen[201];
    for (size_t n = 0; n <= 200; n++) {
        seen[n] = rw_hash64(buf, n);
        cr_assert_eq(seen[n], rw_hash64(buf, n));
        for (size_t m = 0; m < n; m++)
            cr_assert_neq(seen[n], seen[m], "prefixes %zu and %zu collide", m, n);
    }
    uint8_t zeros[64] = {0};
    for (size_t n = 1; n <= 64; n++)
        cr_assert_neq(rw_hash64(zeros, n), rw_hash64(zeros, n - 1));
    /* avalanche: one flipped input bit changes about half the output bits */
    for (size_t len = 1; len <= 200; len += 13) {
        double total = 0;
        int trials = 0;
        for (size_t bit = 0; bit < len * 8; bit++) {
            uint64_t h0 = rw_hash64(buf, len);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            uint64_t h1 = rw_hash64(buf, len);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            total += __builtin_popcountll(h0 ^ h1);
            trials++;
        }
        double avg = total / trials;
        cr_expect(avg > 28 && avg < 36, "len %zu: %.2f bits change on average", len, avg);
    }
    /* low bits of sequential keys spread over buckets */
    unsigned buckets[64] = {0};
    for (unsigned k = 0; k < 64000; k++)
        buckets[key_hash(k) & 63]++;
    for (int i = 0; i < 64; i++)
        cr_expect(buckets[i] > 800 && buckets[i] < 1200, "bucket %d: %u", i, buckets[i]);
}
