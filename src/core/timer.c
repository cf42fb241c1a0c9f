/* timer.c - per-worker hashed timer wheel.
 *
 * The wheel has RW_TIMER_SLOTS slots of RW_TIMER_TICK_MS each. A timer lives in
 * slot (tick % RW_TIMER_SLOTS) where tick = max(expires / TICK, cursor); a timer
 * farther away than one revolution simply stays in its slot and is skipped
 * (its expires is checked) until a revolution brings it due.
 *
 * Invariant: cursor is the tick of w->now; every armed timer sits in the slot of
 * a tick >= cursor (modulo revolutions), so processing the ticks cursor..now
 * sees every timer that can be due. The cursor's own tick is processed again on
 * the next call (cursor = the tick of now, not one past it), which is what makes
 * expiry exact to the millisecond: a timer due at 13 ms fires on the first run
 * with now >= 13, not at the end of its tick.
 *
 * Each slot is a circular doubly-linked list through a sentinel rw_timer in
 * w->slots (expires and cb unused). Lifetime: the wheel owns only the slot
 * array; timers belong to whoever embeds them. */
#include "ringway/timer.h"

#include <errno.h>
#include <stdlib.h>

#define SLOT_MASK (RW_TIMER_SLOTS - 1u)
_Static_assert((RW_TIMER_SLOTS & (RW_TIMER_SLOTS - 1u)) == 0, "RW_TIMER_SLOTS must be a power of two");

static inline void list_init(rw_timer *head)
{
    head->next = head;
    head->prev = head;
}

static inline bool list_empty(const rw_timer *head)
{
    return head->next == head;
}

static inline void list_add_tail(rw_timer *head, rw_timer *t)
{
    t->prev = head->prev;
    t->next = head;
    head->prev->next = t;
    head->prev = t;
}

static inline void list_unlink(rw_timer *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = NULL;
    t->prev = NULL;
}

/* Moves every element of src onto the empty list dst; src becomes empty. */
static void list_move_all(rw_timer *src, rw_timer *dst)
{
    list_init(dst);
    if (list_empty(src))
        return;
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    list_init(src);
}

static void wheel_insert(rw_timers *w, rw_timer *t)
{
    uint64_t tick = t->expires / RW_TIMER_TICK_MS;
    if (tick < w->cursor)
        tick = w->cursor; /* already due: fires on the next run */
    list_add_tail(&w->slots[tick & SLOT_MASK], t);
}

int rw_timers_init(rw_timers *w, uint64_t now_ms)
{
    w->slots = malloc(sizeof(rw_timer) * RW_TIMER_SLOTS);
    if (w->slots == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < RW_TIMER_SLOTS; i++) {
        list_init(&w->slots[i]);
        w->slots[i].expires = 0;
        w->slots[i].cb = NULL;
    }
    w->now = now_ms;
    w->hint = 0; /* unknown: the first rw_timers_next_ms scans */
    w->cursor = now_ms / RW_TIMER_TICK_MS;
    w->count = 0;
    return 0;
}

void rw_timers_free(rw_timers *w)
{
    free(w->slots);
    w->slots = NULL;
    w->count = 0;
}

void rw_timer_init(rw_timer *t, rw_timer_cb cb)
{
    t->next = NULL;
    t->prev = NULL;
    t->expires = 0;
    t->cb = cb;
}

void rw_timer_set(rw_timers *w, rw_timer *t, uint64_t expires_ms)
{
    if (expires_ms < w->hint)
        w->hint = expires_ms;
    if (t->next != NULL)
        list_unlink(t);
    else
        w->count++;
    t->expires = expires_ms;
    wheel_insert(w, t);
}

void rw_timer_cancel(rw_timers *w, rw_timer *t)
{
    if (t->next == NULL)
        return;
    list_unlink(t);
    w->count--;
}

/* Fires the due timers of one slot. The slot's list is first moved to a local
 * list so that callbacks may freely arm or cancel any timer (including ones
 * still waiting in the local list: unlinking works on any list); timers that
 * are not due yet go back to their slot, so the loop visits each timer once. */
static void run_slot(rw_timers *w, rw_timer *slot, uint64_t now)
{
    rw_timer local;
    list_move_all(slot, &local);
    while (!list_empty(&local)) {
        rw_timer *t = local.next;
        list_unlink(t);
        if (t->expires <= now) {
            w->count--;
            t->cb(t);
        } else {
            wheel_insert(w, t);
        }
    }
}

void rw_timers_run(rw_timers *w, uint64_t now_ms)
{
    if (now_ms < w->now)
        now_ms = w->now; /* the clock never goes back for the wheel */
    w->now = now_ms;
    uint64_t end = now_ms / RW_TIMER_TICK_MS;
    /* After a jump of more than one revolution each slot is visited once: the
     * ticks end-SLOTS+1..end cover every slot, and every timer is checked. */
    uint64_t tick = w->cursor;
    if (end - tick >= RW_TIMER_SLOTS)
        tick = end - RW_TIMER_SLOTS + 1;
    /* The cursor moves to the end first: a timer that a callback arms for any
     * time up to now lands in the end slot, visited last in this pass (or at
     * the next run if it is the one being processed), never in a slot this
     * pass has left behind. */
    w->cursor = end;
    for (; tick <= end && w->count > 0; tick++) {
        rw_timer *slot = &w->slots[tick & SLOT_MASK];
        if (!list_empty(slot))
            run_slot(w, slot, now_ms);
    }
}

uint64_t rw_timers_next_ms(rw_timers *w, uint64_t max_ms)
{
    if (w->count == 0)
        return max_ms;
    if (max_ms <= UINT64_MAX - w->now && w->hint >= w->now + max_ms)
        return max_ms; /* nothing can fire within the cap: no scan (the common case) */
    /* Scan the slots of ticks cursor, cursor+1, ... up to the one holding
     * now+max_ms (at most one revolution). A slot may also hold timers of later
     * revolutions: their minimum is kept in case no nearer timer exists. */
    uint64_t nslots = max_ms / RW_TIMER_TICK_MS + 2;
    if (nslots > RW_TIMER_SLOTS)
        nslots = RW_TIMER_SLOTS;
    uint64_t best = UINT64_MAX;
    for (uint64_t i = 0; i < nslots; i++) {
        uint64_t tick = w->cursor + i;
        const rw_timer *head = &w->slots[tick & SLOT_MASK];
        uint64_t tick_end = (tick + 1) * RW_TIMER_TICK_MS; /* first ms after the tick */
        bool this_rev = false;
        for (const rw_timer *t = head->next; t != head; t = t->next) {
            if (t->expires < best)
                best = t->expires;
            if (t->expires < tick_end)
                this_rev = true;
        }
        /* Later slots only hold later ticks (or later revolutions). */
        if (this_rev)
            break;
    }
    /* Timers in slots past the scanned window expire after it. */
    uint64_t window_end = (w->cursor + nslots) * RW_TIMER_TICK_MS;
    w->hint = best < window_end ? best : window_end;
    if (best == UINT64_MAX)
        return max_ms;
    if (best <= w->now)
        return 0;
    return best - w->now < max_ms ? best - w->now : max_ms;
}
