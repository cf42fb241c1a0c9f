/* timer.h - a per-worker hashed timer wheel with millisecond expiry times.
 * Timers are embedded in their owner's struct; the wheel never allocates
 * after rw_timers_init and never owns a timer. Not thread-safe by design. */
#ifndef RINGWAY_TIMER_H
#define RINGWAY_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rw_timer rw_timer;
typedef void (*rw_timer_cb)(rw_timer *t);

/* One timer; zero-initialise (or rw_timer_init) before first use. */
struct rw_timer {
    rw_timer *next, *prev; /* slot list links, NULL when not armed */
    uint64_t expires;      /* absolute ms on the wheel's clock */
    rw_timer_cb cb;        /* called once when the timer fires */
};

typedef struct rw_timers {
    rw_timer *slots; /* RW_TIMER_SLOTS list heads (sentinels), allocated by init */
    uint64_t now;    /* last time passed to run/init */
    uint64_t cursor; /* next tick to process */
    uint32_t count;  /* armed timers */
    uint64_t hint;   /* no armed timer expires before this (a lower bound) */
} rw_timers;

#define RW_TIMER_SLOTS 4096u /* slots of RW_TIMER_TICK_MS each */
#define RW_TIMER_TICK_MS 4u

/* Sets up an empty wheel at time now_ms; returns 0 or -ENOMEM. */
int rw_timers_init(rw_timers *w, uint64_t now_ms);
/* Frees the wheel's slot array; armed timers are simply forgotten. */
void rw_timers_free(rw_timers *w);
/* Prepares a timer with its callback; it is not armed. */
void rw_timer_init(rw_timer *t, rw_timer_cb cb);
/* Arms (or re-arms) t to fire at absolute time expires_ms (fires no earlier). */
void rw_timer_set(rw_timers *w, rw_timer *t, uint64_t expires_ms);
/* Disarms t if armed; safe to call on an unarmed timer. */
void rw_timer_cancel(rw_timers *w, rw_timer *t);
/* Returns whether t is armed. */
static inline bool rw_timer_armed(const rw_timer *t)
{
    return t->next != NULL;
}
/* Milliseconds until the earliest armed timer may fire, capped at max_ms (0 if due),
 * relative to the time of the last run. Exact to the millisecond: a loop that
 * sleeps this long and then runs the wheel fires the timer on time. Scans at
 * most max_ms / RW_TIMER_TICK_MS + 2 slots (one revolution at most), so pass
 * a modest cap (e.g. 1000) from the event loop. Keeps a lower bound of the
 * next expiry (hint) so that, when nothing is near, it answers without a scan. */
uint64_t rw_timers_next_ms(rw_timers *w, uint64_t max_ms);
/* Fires every timer whose expiry is <= now_ms; callbacks may arm/cancel timers.
 * A timer is disarmed before its callback runs. A timer armed from a callback
 * for a time <= now_ms may fire in the same call or at the next one (never
 * lost, never in a loop). Order is by tick (RW_TIMER_TICK_MS); within a tick,
 * and after a jump of more than one revolution, order is not guaranteed.
 * A now_ms below the last one is treated as the last one. */
void rw_timers_run(rw_timers *w, uint64_t now_ms);

#endif
