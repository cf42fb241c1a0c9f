/* test_timer.c - the per-worker timer wheel. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "ringway/common.h"
#include "ringway/timer.h"

#define T0 1000000u /* an arbitrary non-zero start time */

typedef struct ttimer {
    rw_timer t;
    int id;
    int fired;
    uint64_t fired_at;
    int rearm_left; /* periodic: re-arm this many more times */
    uint64_t period;
    struct ttimer *victim; /* cancel this one when firing */
    struct ttimer *arm;    /* arm this one at arm_at when firing */
    uint64_t arm_at;
} ttimer;

static rw_timers W;
static int order[64];
static int norder;

static void on_fire(rw_timer *t)
{
    ttimer *x = RW_CONTAINER_OF(t, ttimer, t);
    cr_assert(!rw_timer_armed(t), "a firing timer is disarmed");
    x->fired++;
    x->fired_at = W.now;
    if (norder < (int)RW_ARRAY_LEN(order))
        order[norder++] = x->id;
    if (x->victim != NULL)
        rw_timer_cancel(&W, &x->victim->t);
    if (x->arm != NULL)
        rw_timer_set(&W, &x->arm->t, x->arm_at);
    if (x->rearm_left > 0) {
        x->rearm_left--;
        rw_timer_set(&W, t, t->expires + x->period);
    }
}

static void mk(ttimer *x, int id)
{
    memset(x, 0, sizeof *x);
    rw_timer_init(&x->t, on_fire);
    x->id = id;
}

static void setup(void)
{
    norder = 0;
    cr_assert_eq(rw_timers_init(&W, T0), 0);
}

static void teardown(void)
{
    rw_timers_free(&W);
}

TestSuite(timer, .init = setup, .fini = teardown);

Test(timer, fires_in_order_exactly_on_time)
{
    static const uint64_t when[] = {50, 10, 30, 20, 5, 400, 1, 16383, 17};
    ttimer t[RW_ARRAY_LEN(when)];
    for (size_t i = 0; i < RW_ARRAY_LEN(when); i++) {
        mk(&t[i], (int)i);
        rw_timer_set(&W, &t[i].t, T0 + when[i]);
        cr_assert(rw_timer_armed(&t[i].t));
    }
    cr_assert_eq(W.count, RW_ARRAY_LEN(when));
    for (uint64_t now = T0; now <= T0 + 20000; now++)
        rw_timers_run(&W, now);
    cr_assert_eq(W.count, 0);
    static const int want[] = {6, 4, 1, 8, 3, 2, 0, 5, 7};
    cr_assert_eq(norder, (int)RW_ARRAY_LEN(want));
    for (size_t i = 0; i < RW_ARRAY_LEN(want); i++)
        cr_expect_eq(order[i], want[i], "position %zu: got %d want %d", i, order[i], want[i]);
    for (size_t i = 0; i < RW_ARRAY_LEN(when); i++) {
        cr_expect_eq(t[i].fired, 1);
        cr_expect_eq(t[i].fired_at, T0 + when[i], "timer %zu fired at +%llu", i,
                     (unsigned long long)(t[i].fired_at - T0));
    }
}

Test(timer, never_early)
{
    ttimer a;
    mk(&a, 1);
    rw_timer_set(&W, &a.t, T0 + 13); /* inside a tick, not on its start */
    rw_timers_run(&W, T0 + 12);
    cr_assert_eq(a.fired, 0);
    rw_timers_run(&W, T0 + 12);
    cr_assert_eq(a.fired, 0);
    rw_timers_run(&W, T0 + 13);
    cr_assert_eq(a.fired, 1);
    rw_timers_run(&W, T0 + 100);
    cr_assert_eq(a.fired, 1, "fires once");
}

Test(timer, coarse_runs_fire_late_but_never_early)
{
    ttimer t[200];
    srand(7);
    for (int i = 0; i < 200; i++) {
        mk(&t[i], i);
        rw_timer_set(&W, &t[i].t, T0 + (uint64_t)(rand() % 3000));
    }
    uint64_t now = T0;
    while (W.count > 0) {
        now += (uint64_t)(rand() % 37);
        rw_timers_run(&W, now);
        for (int i = 0; i < 200; i++)
            if (t[i].fired)
                cr_assert_geq(now, t[i].t.expires);
            else
                cr_assert_lt(now, t[i].t.expires, "timer %d due at %llu not fired at %llu", i,
                             (unsigned long long)t[i].t.expires, (unsigned long long)now);
    }
    for (int i = 0; i < 200; i++)
        cr_assert_eq(t[i].fired, 1);
}

Test(timer, cancel)
{
    ttimer a, b;
    mk(&a, 1);
    mk(&b, 2);
    rw_timer_cancel(&W, &a.t); /* unarmed: no-op */
    rw_timer_set(&W, &a.t, T0 + 10);
    rw_timer_set(&W, &b.t, T0 + 10);
    rw_timer_cancel(&W, &a.t);
    cr_assert(!rw_timer_armed(&a.t));
    rw_timer_cancel(&W, &a.t); /* twice */
    cr_assert_eq(W.count, 1);
    rw_timers_run(&W, T0 + 50);
    cr_assert_eq(a.fired, 0);
    cr_assert_eq(b.fired, 1);
    cr_assert_eq(W.count, 0);
}

Test(timer, rearm_moves_timer)
{
    ttimer a;
    mk(&a, 1);
    rw_timer_set(&W, &a.t, T0 + 10);
    rw_timer_set(&W, &a.t, T0 + 500);
    cr_assert_eq(W.count, 1);
    rw_timers_run(&W, T0 + 499);
    cr_assert_eq(a.fired, 0);
    rw_timer_set(&W, &a.t, T0 + 200); /* earlier than now: due */
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 0);
    rw_timers_run(&W, T0 + 499);
    cr_assert_eq(a.fired, 1);
}

Test(timer, rearm_inside_callback)
{
    ttimer a;
    mk(&a, 1);
    a.rearm_left = 4;
    a.period = 10;
    rw_timer_set(&W, &a.t, T0 + 10);
    for (uint64_t now = T0; now <= T0 + 100; now++)
        rw_timers_run(&W, now);
    cr_assert_eq(a.fired, 5);
    cr_assert_eq(a.fired_at, T0 + 50);
    cr_assert(!rw_timer_armed(&a.t));
}

Test(timer, rearm_inside_callback_for_now_does_not_loop)
{
    ttimer a;
    mk(&a, 1);
    a.rearm_left = 3;
    a.period = 0; /* re-arms for the same, already due, time */
    rw_timer_set(&W, &a.t, T0 + 10);
    rw_timers_run(&W, T0 + 10);
    cr_assert_eq(a.fired, 1, "a due re-arm waits for the next run");
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 0);
    rw_timers_run(&W, T0 + 10);
    cr_assert_eq(a.fired, 2);
}

Test(timer, callback_cancels_and_arms_others_in_same_slot)
{
    ttimer a, b, c, d;
    mk(&a, 1);
    mk(&b, 2);
    mk(&c, 3);
    mk(&d, 4);
    a.victim = &b; /* same expiry: b waits in the same slot */
    a.arm = &d;
    a.arm_at = T0 + 9;
    rw_timer_set(&W, &a.t, T0 + 8);
    rw_timer_set(&W, &b.t, T0 + 8);
    rw_timer_set(&W, &c.t, T0 + 8);
    rw_timers_run(&W, T0 + 9);
    cr_assert_eq(a.fired, 1);
    cr_assert_eq(b.fired, 0);
    cr_assert_eq(c.fired, 1);
    cr_assert(!rw_timer_armed(&b.t));
    cr_assert_eq(W.count, 1);
    rw_timers_run(&W, T0 + 9);
    cr_assert_eq(d.fired, 1);
    cr_assert_eq(W.count, 0);
}

Test(timer, callback_cancels_disarmed_timers)
{
    ttimer a, b;
    mk(&a, 1);
    mk(&b, 2);
    a.victim = &a; /* cancelling the firing (already disarmed) timer is harmless */
    b.victim = &a;
    rw_timer_set(&W, &a.t, T0 + 4);
    rw_timer_set(&W, &b.t, T0 + 4);
    rw_timers_run(&W, T0 + 4);
    cr_assert_eq(a.fired, 1);
    cr_assert_eq(b.fired, 1);
    cr_assert_eq(W.count, 0);
}

Test(timer, far_future_beyond_one_revolution)
{
    const uint64_t span = (uint64_t)RW_TIMER_SLOTS * RW_TIMER_TICK_MS;
    ttimer a, b;
    mk(&a, 1);
    mk(&b, 2);
    rw_timer_set(&W, &a.t, T0 + 3 * span + 7);
    rw_timer_set(&W, &b.t, T0 + span); /* exactly one revolution: same slot as now */
    uint64_t now = T0;
    for (; now < T0 + 3 * span + 7; now += 3) {
        rw_timers_run(&W, now);
        cr_assert_eq(a.fired, 0, "fired early at +%llu", (unsigned long long)(now - T0));
        cr_assert_eq(b.fired, now >= T0 + span);
    }
    rw_timers_run(&W, T0 + 3 * span + 7);
    cr_assert_eq(a.fired, 1);
    cr_assert_eq(a.fired_at, T0 + 3 * span + 7);
}

Test(timer, big_time_jump)
{
    ttimer t[100];
    for (int i = 0; i < 100; i++) {
        mk(&t[i], i);
        rw_timer_set(&W, &t[i].t, T0 + (uint64_t)i * 997 + 1);
    }
    ttimer later;
    mk(&later, 1000);
    rw_timer_set(&W, &later.t, T0 + 10000000 + 1);
    rw_timers_run(&W, T0 + 10000000); /* ~2.8 h in one step */
    for (int i = 0; i < 100; i++)
        cr_assert_eq(t[i].fired, 1, "timer %d", i);
    cr_assert_eq(later.fired, 0);
    cr_assert_eq(W.count, 1);
    cr_assert_eq(rw_timers_next_ms(&W, 100), 1);
    rw_timers_run(&W, T0 + 10000001);
    cr_assert_eq(later.fired, 1);
}

Test(timer, big_jump_with_callback_arming_past_due)
{
    ttimer a, b;
    mk(&a, 1);
    mk(&b, 2);
    a.arm = &b;
    a.arm_at = T0 + 500000; /* due, in a slot the jump may already have visited */
    rw_timer_set(&W, &a.t, T0 + 100);
    rw_timers_run(&W, T0 + 1000000);
    cr_assert_eq(a.fired, 1);
    /* b either fired in this run or is due at the very next one */
    if (!b.fired) {
        cr_assert_eq(rw_timers_next_ms(&W, 1000), 0);
        rw_timers_run(&W, T0 + 1000000);
    }
    cr_assert_eq(b.fired, 1);
}

Test(timer, clock_going_back_is_ignored)
{
    ttimer a;
    mk(&a, 1);
    rw_timers_run(&W, T0 + 100);
    rw_timer_set(&W, &a.t, T0 + 150);
    rw_timers_run(&W, T0 + 50);
    cr_assert_eq(a.fired, 0);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 50);
    rw_timers_run(&W, T0 + 150);
    cr_assert_eq(a.fired, 1);
}

Test(timer, next_ms)
{
    const uint64_t span = (uint64_t)RW_TIMER_SLOTS * RW_TIMER_TICK_MS;
    ttimer a, b, far;
    mk(&a, 1);
    mk(&b, 2);
    mk(&far, 3);
    cr_assert_eq(rw_timers_next_ms(&W, 777), 777, "empty wheel: the cap");
    rw_timer_set(&W, &far.t, T0 + 5 * span + 3);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 1000);
    cr_assert_eq(rw_timers_next_ms(&W, UINT64_MAX), 5 * span + 3, "far timer found when uncapped");
    rw_timer_set(&W, &a.t, T0 + 100);
    rw_timer_set(&W, &b.t, T0 + 103);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 100);
    cr_assert_eq(rw_timers_next_ms(&W, 60), 60);
    rw_timers_run(&W, T0 + 61);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 39);
    rw_timers_run(&W, T0 + 100);
    cr_assert_eq(a.fired, 1);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 3);
    rw_timers_run(&W, T0 + 102);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 1);
    rw_timers_run(&W, T0 + 103);
    cr_assert_eq(b.fired, 1);
    /* only the far timer remains, one revolution after its slot comes round */
    cr_assert_eq(rw_timers_next_ms(&W, UINT64_MAX), 5 * span + 3 - 103);
    rw_timer_set(&W, &a.t, T0 + 50); /* already past */
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 0);
}

Test(timer, many_random_timers_with_cancels)
{
    enum { N = 20000 };
    ttimer *t = calloc(N, sizeof *t);
    cr_assert_not_null(t);
    srand(42);
    for (int i = 0; i < N; i++) {
        mk(&t[i], i);
        rw_timer_set(&W, &t[i].t, T0 + (uint64_t)(rand() % 100000));
    }
    int cancelled = 0;
    for (int i = 0; i < N; i += 3) {
        rw_timer_cancel(&W, &t[i].t);
        cancelled++;
    }
    cr_assert_eq(W.count, (uint32_t)(N - cancelled));
    uint64_t now = T0;
    int turns = 0;
    while (W.count > 0) {
        now += rw_timers_next_ms(&W, 5000);
        rw_timers_run(&W, now);
        cr_assert_lt(++turns, 2 * N + 100, "the loop makes progress");
    }
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            cr_assert_eq(t[i].fired, 0);
        } else {
            cr_assert_eq(t[i].fired, 1);
            cr_assert_eq(t[i].fired_at, t[i].t.expires, "next_ms lets the loop wake exactly");
        }
    }
    free(t);
}

Test(timer, next_ms_hint_never_hides_a_nearer_timer)
{
    ttimer far, near;
    mk(&far, 1);
    mk(&near, 2);
    rw_timer_set(&W, &far.t, T0 + 75000);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 1000, "scans, then remembers nothing is near");
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 1000, "answered from the hint");
    rw_timer_set(&W, &near.t, T0 + 20);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 20, "a new nearer timer lowers the hint");
    rw_timer_cancel(&W, &near.t);
    cr_assert_eq(rw_timers_next_ms(&W, 1000), 1000, "after a cancel the scan is exact again");
    rw_timers_run(&W, T0 + 75000);
    cr_assert_eq(far.fired, 1);
}
