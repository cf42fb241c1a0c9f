/* ratelimit.c - GCRA token buckets: a lock-free shared table and per-worker
 * shards that borrow tokens from it in small batches.
 *
 * Bucket arithmetic (GCRA). A bucket with interval T (ns per token) and burst
 * b has tolerance tau = b*T and one state word, tat (the theoretical arrival
 * time). At time now the bucket holds (tau - (max(tat, now) - now)) / T tokens:
 * tat <= now is a full bucket, tat = now + tau an empty one. Taking n tokens
 * moves tat to max(tat, now) + n*T, allowed while that stays <= now + tau.
 * Every tat <= now is the same full bucket, which is why a slot whose tat has
 * fallen behind the clock can be handed to another key without losing state.
 *
 * Table. Open addressing over a power-of-two array of 64-byte slots; a key
 * lives in one of the 8 slots from rw_mix64(key). Keys are already hashes; 0
 * marks an empty slot and UINT64_MAX a slot being (re)claimed (BUSY), so real
 * keys with those values are mapped to two other constants. A key is claimed
 * in the first empty or full slot of its window, or, when the window has
 * neither, in the slot with the smallest tat (the fullest bucket), which is
 * reset to full. That is the behaviour under a key flood: the evicted key
 * restarts with a full bucket, so a flood can at worst reset a bucket to full,
 * never block a key that has tokens. Evictions go to the fullest buckets first,
 * so the hot, drained keys that matter most are evicted last.
 *
 * Claims race with takes on the same slot: a taker found its key, then
 * CASes tat; meanwhile a claimer may hand the slot to another key. Both sides
 * write one word and then read the other, all seq_cst (Dekker): the claimer
 * CASes key to BUSY and then reads tat, the taker CASes tat and then re-reads
 * key. At least one of them sees the other's write: either the claimer sees
 * the taker's tat (no longer full) and restores the key, or the taker sees the
 * key changed and undoes its CAS, then probes again. Evictions reset tat
 * rather than check it, so a take that lands just before an eviction is lost
 * with the evicted bucket (at worst, one more reset to full). Two claimers of
 * one slot for different keys cannot both win the CAS to BUSY; the loser
 * probes again. Two workers creating the same new key at the same instant may
 * claim two different slots when their views of the window differ; lookups
 * use the first in probe order and the other one refills and is reclaimed.
 * On x86 the seq_cst loads are plain loads and the CASes are locked anyway.
 *
 * Shard. A worker-local LRU hash map of (table, key) -> parked tokens, all
 * preallocated. A request is served from parked tokens (no atomics) while
 * they are younger than RL_PARK_MAX_NS; otherwise stale tokens go back and a
 * batch of clamp(rate * 5 ms, 1, burst / 8) tokens is borrowed, so low rates
 * borrow one token at a time (exact) and high rates amortise the CAS.
 *
 * Lifetimes: a table owns its slot array and name; a shard owns its entries
 * and index, and holds borrowed table pointers (rw_rl_shard_forget before
 * rw_rl_table_free). */
#include "ringway/ratelimit.h"

#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "ringway/common.h"

#define RL_EMPTY 0ull
#define RL_BUSY UINT64_MAX
#define RL_PROBE 8u      /* probe window, in slots */
#define RL_BUSY_SPINS 64 /* re-probes while a BUSY slot hides the key */
#define RL_MIN_SLOTS 64u
#define RL_MAX_SLOTS (1u << 30)
#define RL_NS 1000000000ull
#define RL_T_MAX 1000000000000000ull      /* 1e15 ns (~11.6 days) per token at most */
#define RL_TAU_MAX (1ull << 60)           /* tolerance cap (~36 years): no overflow */
#define RL_DEBIT_SLACK_NS (60ull * RL_NS) /* debits push tat at most this past now + tau */
#define RL_BATCH_NS 5000000ull            /* a shard borrows about 5 ms worth of tokens */
#define RL_PARK_MAX_NS RL_NS              /* parked tokens older than this go back */
#define RL_SHARD_MAX_KEYS (1u << 28)
#define RL_NIL UINT32_MAX

/* ---- helpers ------------------------------------------------------------ */

/* Keeps real keys off the two reserved values. */
static inline uint64_t map_key(uint64_t key)
{
    if (RW_UNLIKELY(key == RL_EMPTY))
        return 0x9e3779b97f4a7c15ull;
    if (RW_UNLIKELY(key == RL_BUSY))
        return 0x9e3779b97f4a7c16ull;
    return key;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline uint64_t sat_mul(uint64_t a, uint64_t b, uint64_t cap)
{
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r) || r > cap)
        return cap;
    return r;
}

static inline uint32_t ceil_s(uint64_t ns)
{
    uint64_t s = ns / RL_NS + (ns % RL_NS != 0);
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* ns per token, rounded, in [1, RL_T_MAX]. The only floating-point division,
 * done on the borrow path (shards cache it per key). */
static uint64_t rate_to_interval(double rate)
{
    if (!(rate > 0.0))
        return RL_T_MAX;
    double t = 1e9 / rate + 0.5;
    if (t >= (double)RL_T_MAX)
        return RL_T_MAX;
    if (t < 1.0)
        return 1;
    return (uint64_t)t;
}

static inline uint64_t tolerance(uint64_t interval, uint32_t burst)
{
    return sat_mul(burst, interval, RL_TAU_MAX);
}

/* ---- table -------------------------------------------------------------- */

/* One bucket. Every field is written by workers through atomics; key is the
 * publication point (release on claim, acquire on probe) for interval, burst
 * and last_used set during a claim. tat carries the bucket's whole state. */
typedef struct rl_slot {
    alignas(64) _Atomic uint64_t key; /* RL_EMPTY, RL_BUSY or a mapped key */
    _Atomic uint64_t tat;             /* GCRA theoretical arrival time, ns */
    _Atomic uint64_t interval;        /* ns per token, from the last take */
    _Atomic uint64_t last_used;       /* now_ns of the last take */
    _Atomic int64_t consumed;         /* tokens taken less given back since the last collect */
    _Atomic uint32_t burst;           /* from the last take */
} rl_slot;
_Static_assert(sizeof(rl_slot) == 64, "one slot per cache line");

struct rw_rl_table {
    rl_slot *slots;
    size_t mask; /* slot count - 1 */
    char *name;
};

rw_rl_table *rw_rl_table_new(const char *name, uint32_t max_keys)
{
    rw_rl_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    /* Room for max_keys live buckets with some slack for the probe windows:
     * the next power of two >= 1.5 * max_keys. Only live (non-full) buckets
     * occupy a slot for good; full ones are reclaimed. */
    uint64_t want = (uint64_t)max_keys + max_keys / 2;
    size_t n = RL_MIN_SLOTS;
    while (n < want && n < RL_MAX_SLOTS)
        n <<= 1;
    t->name = strdup(name != NULL ? name : "");
    if (t->name == NULL)
        goto fail;
    if (posix_memalign((void **)&t->slots, 64, n * sizeof(rl_slot)) != 0) {
        t->slots = NULL;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        rl_slot *s = &t->slots[i];
        atomic_init(&s->key, RL_EMPTY);
        atomic_init(&s->tat, 0);
        atomic_init(&s->interval, 0);
        atomic_init(&s->last_used, 0);
        atomic_init(&s->consumed, 0);
        atomic_init(&s->burst, 0);
    }
    t->mask = n - 1;
    return t;
fail:
    free(t->name);
    free(t);
    errno = ENOMEM;
    return NULL;
}

void rw_rl_table_free(rw_rl_table *t)
{
    if (t == NULL)
        return;
    free(t->slots);
    t->slots = NULL;
    free(t->name);
    t->name = NULL;
    free(t);
}

const char *rw_rl_table_name(const rw_rl_table *t)
{
    return t->name;
}

static inline rl_slot *window_slot(rw_rl_table *t, uint64_t base, uint32_t i)
{
    return &t->slots[(base + i) & t->mask];
}

/* Finds key's slot without claiming one; NULL when absent. A BUSY slot may be
 * hiding the key for a moment (a failed reclaim restores it), so the window is
 * probed again a bounded number of times while one is seen. */
static rl_slot *slot_find(rw_rl_table *t, uint64_t key)
{
    uint64_t base = rw_mix64(key);
    for (int spin = 0;; spin++) {
        bool busy = false;
        for (uint32_t i = 0; i < RL_PROBE; i++) {
            rl_slot *s = window_slot(t, base, i);
            uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
            if (k == key)
                return s;
            busy |= k == RL_BUSY;
        }
        if (!busy || spin >= RL_BUSY_SPINS)
            return NULL;
        cpu_relax();
    }
}

/* Hands slot s from key `old` to `key`. A reclaim (evict false) keeps the slot
 * only if its bucket is still full once BUSY is visible (see the Dekker note at
 * the top); an eviction resets the bucket to full. Consumption not collected
 * yet belongs to the old key and is dropped (only an idle key's leftovers, or
 * an evicted one's). */
static bool slot_claim(rl_slot *s, uint64_t old, uint64_t key, uint64_t interval, uint32_t burst,
                       uint64_t now, bool evict)
{
    if (!atomic_compare_exchange_strong(&s->key, &old, RL_BUSY))
        return false;
    if (evict) {
        atomic_store(&s->tat, 0);
    } else if (atomic_load(&s->tat) > now) {
        atomic_store_explicit(&s->key, old, memory_order_release);
        return false;
    }
    atomic_store_explicit(&s->consumed, 0, memory_order_relaxed);
    atomic_store_explicit(&s->interval, interval, memory_order_relaxed);
    atomic_store_explicit(&s->burst, burst, memory_order_relaxed);
    atomic_store_explicit(&s->last_used, now, memory_order_relaxed);
    /* seq_cst (not just release): the store publishes the fields above, and a
     * taker of the old key that CASed tat after our check must see a key other
     * than its own. */
    atomic_store(&s->key, key);
    return true;
}

/* Finds or claims key's slot. Never fails: every round either finds the key,
 * claims a slot, or lost a race to another thread that made progress. */
static rl_slot *slot_get(rw_rl_table *t, uint64_t key, uint64_t interval, uint32_t burst, uint64_t now)
{
    uint64_t base = rw_mix64(key);
    for (int spin = 0;; spin++) {
        bool busy = false;
        rl_slot *free_s = NULL, *victim = NULL;
        uint64_t free_k = 0, victim_k = 0, victim_tat = UINT64_MAX;
        for (uint32_t i = 0; i < RL_PROBE; i++) {
            rl_slot *s = window_slot(t, base, i);
            uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
            if (k == key)
                return s;
            if (k == RL_BUSY) {
                busy = true;
                continue;
            }
            if (free_s != NULL)
                continue; /* keep scanning for the key itself */
            /* Relaxed: only a hint; slot_claim re-checks after BUSY. */
            uint64_t tat = k == RL_EMPTY ? 0 : atomic_load_explicit(&s->tat, memory_order_relaxed);
            if (tat <= now) {
                free_s = s;
                free_k = k;
            } else if (tat < victim_tat) {
                victim = s;
                victim_k = k;
                victim_tat = tat;
            }
        }
        if (busy && spin < RL_BUSY_SPINS) {
            cpu_relax();
            continue;
        }
        if (free_s != NULL) {
            if (slot_claim(free_s, free_k, key, interval, burst, now, false))
                return free_s;
        } else if (victim != NULL) {
            if (slot_claim(victim, victim_k, key, interval, burst, now, true))
                return victim;
        } else {
            cpu_relax(); /* the whole window BUSY: claims finish in a few instructions */
        }
    }
}

/* Gives amount_ns of tat back, never past full (tat <= now is full: lowering
 * it further would not add tokens, and is skipped). Returns what was applied. */
static uint64_t slot_give(rl_slot *s, uint64_t amount_ns, uint64_t now)
{
    uint64_t tat = atomic_load_explicit(&s->tat, memory_order_relaxed);
    for (;;) {
        if (tat <= now || amount_ns == 0)
            return 0;
        uint64_t nt = tat - now > amount_ns ? tat - amount_ns : now;
        if (atomic_compare_exchange_weak(&s->tat, &tat, nt))
            return tat - nt;
    }
}

/* Adds amount_ns to tat unconditionally: the undo of a slot_give. */
static void slot_add(rl_slot *s, uint64_t amount_ns)
{
    if (amount_ns != 0)
        atomic_fetch_add(&s->tat, amount_ns);
}

/* The decision for a one-token request, the caller's bucket ending at eff
 * (its tat, less the tokens it keeps for later requests). */
static void decide_ok(rw_rl_decision *out, uint32_t burst, uint64_t interval, uint64_t tau, uint64_t eff,
                      uint64_t now)
{
    uint64_t d = eff > now ? eff - now : 0;
    uint64_t rem = d < tau ? (tau - d) / interval : 0;
    out->allowed = true;
    out->limit = burst;
    out->remaining = rem > UINT32_MAX ? UINT32_MAX : (uint32_t)rem;
    out->reset_s = ceil_s(d);
    out->retry_after_s = 0;
}

/* The decision for a refusal at t0 = max(tat, now), t0 - now > tau - T. */
static void decide_refuse(rw_rl_decision *out, uint32_t burst, uint64_t interval, uint64_t tau, uint64_t t0,
                          uint64_t now)
{
    uint64_t wait = t0 - now + interval - tau; /* > 0 by the refusal */
    uint32_t retry = ceil_s(wait);
    out->allowed = false;
    out->limit = burst;
    out->remaining = 0;
    out->reset_s = ceil_s(t0 - now);
    out->retry_after_s = retry < 1 ? 1 : retry;
}

/* Takes up to want tokens for the (mapped) key. *tat_after receives tat after
 * a grant (for shard decisions). */
static uint32_t table_take(rw_rl_table *t, uint64_t key, uint64_t interval, uint32_t burst, uint32_t want,
                           uint64_t now, rw_rl_decision *out, uint64_t *tat_after)
{
    uint64_t tau = tolerance(interval, burst);
    for (;;) {
        rl_slot *s = slot_get(t, key, interval, burst, now);
        uint64_t tat = atomic_load_explicit(&s->tat, memory_order_relaxed);
        uint64_t t0, nt;
        uint32_t n;
        for (;;) {
            t0 = tat > now ? tat : now;
            uint64_t d = t0 - now;
            uint64_t avail = d < tau ? (tau - d) / interval : 0;
            n = avail < want ? (uint32_t)avail : want;
            if (n == 0) {
                /* No write on refusal: a flood of refused requests only reads. */
                if (out != NULL)
                    decide_refuse(out, burst, interval, tau, t0, now);
                return 0;
            }
            nt = t0 + (uint64_t)n * interval;
            /* seq_cst: ordered before the key re-load below (Dekker with
             * slot_claim). Failure reloads tat, relaxed is enough there. */
            if (atomic_compare_exchange_weak_explicit(&s->tat, &tat, nt, memory_order_seq_cst,
                                                      memory_order_relaxed))
                break;
        }
        if (RW_UNLIKELY(atomic_load(&s->key) != key)) {
            /* The slot changed hands under us: undo and probe again. */
            slot_give(s, nt - t0, now);
            continue;
        }
        /* Relaxed: statistics and params read by debit/collect; tat is the
         * only state that must be exact. Stored only when changed, to keep the
         * common case to the one CAS. */
        if (atomic_load_explicit(&s->interval, memory_order_relaxed) != interval)
            atomic_store_explicit(&s->interval, interval, memory_order_relaxed);
        if (atomic_load_explicit(&s->burst, memory_order_relaxed) != burst)
            atomic_store_explicit(&s->burst, burst, memory_order_relaxed);
        atomic_store_explicit(&s->last_used, now, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->consumed, n, memory_order_relaxed);
        if (out != NULL)
            decide_ok(out, burst, interval, tau, nt - (uint64_t)(n - 1) * interval, now);
        if (tat_after != NULL)
            *tat_after = nt;
        return n;
    }
}

uint32_t rw_rl_table_take(rw_rl_table *t, uint64_t key, const rw_rl_params *p, uint32_t want, uint64_t now_ns,
                          rw_rl_decision *out)
{
    uint32_t burst = p->burst != 0 ? p->burst : 1;
    return table_take(t, map_key(key), rate_to_interval(p->rate), burst, want != 0 ? want : 1, now_ns, out,
                      NULL);
}

/* give_back on a mapped key. */
static void table_give_back(rw_rl_table *t, uint64_t key, uint32_t n, uint64_t now)
{
    if (n == 0)
        return;
    rl_slot *s = slot_find(t, key);
    if (s == NULL)
        return; /* reclaimed (it was full) or evicted (reset to full): nothing to give */
    uint64_t interval = atomic_load_explicit(&s->interval, memory_order_relaxed);
    uint64_t applied = slot_give(s, sat_mul(n, interval, RL_TAU_MAX), now);
    if (RW_UNLIKELY(atomic_load(&s->key) != key)) {
        slot_add(s, applied); /* landed on another key's bucket: undo */
        return;
    }
    atomic_fetch_sub_explicit(&s->consumed, n, memory_order_relaxed);
}

void rw_rl_table_give_back(rw_rl_table *t, uint64_t key, uint32_t n, uint64_t now_ns)
{
    table_give_back(t, map_key(key), n, now_ns);
}

size_t rw_rl_table_collect(rw_rl_table *t, uint64_t now_ns, uint64_t active_ns, rw_rl_collect_fn fn,
                           void *arg)
{
    size_t calls = 0;
    for (size_t i = 0; i <= t->mask; i++) {
        rl_slot *s = &t->slots[i];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == RL_EMPTY || k == RL_BUSY)
            continue;
        int64_t c = atomic_load_explicit(&s->consumed, memory_order_relaxed);
        if (c != 0) {
            /* Only slots with something to report are written: collect must not
             * bounce every slot's cache line. */
            c = atomic_exchange_explicit(&s->consumed, 0, memory_order_relaxed);
            if (c < 0) {
                /* More given back than taken since the last call (a batch taken
                 * before it came back after): carry it to the next interval. */
                atomic_fetch_add_explicit(&s->consumed, c, memory_order_relaxed);
                c = 0;
            }
        }
        uint64_t used = atomic_load_explicit(&s->last_used, memory_order_relaxed);
        bool active = used >= now_ns || now_ns - used <= active_ns;
        if (c > 0 || active) {
            fn(arg, k, (uint64_t)c);
            calls++;
        }
    }
    return calls;
}

void rw_rl_table_debit(rw_rl_table *t, uint64_t key, uint64_t n, uint64_t now_ns)
{
    if (n == 0)
        return;
    key = map_key(key);
    rl_slot *s = slot_find(t, key);
    if (s == NULL)
        return;
    uint64_t interval = atomic_load_explicit(&s->interval, memory_order_relaxed);
    uint32_t burst = atomic_load_explicit(&s->burst, memory_order_relaxed);
    uint64_t add = sat_mul(n, interval, RL_TAU_MAX);
    /* Consumption elsewhere beyond this bucket's capacity pushes tat past
     * now + tau, so this node refuses until the cluster has caught up, but by
     * at most RL_DEBIT_SLACK_NS: bogus counts cannot lock a key out for long. */
    uint64_t cap = now_ns + tolerance(interval, burst) + RL_DEBIT_SLACK_NS;
    uint64_t tat = atomic_load_explicit(&s->tat, memory_order_relaxed);
    uint64_t nt;
    for (;;) {
        uint64_t t0 = tat > now_ns ? tat : now_ns;
        if (t0 >= cap)
            return; /* already at the cap */
        nt = cap - t0 > add ? t0 + add : cap;
        if (atomic_compare_exchange_weak(&s->tat, &tat, nt))
            break;
    }
    if (RW_UNLIKELY(atomic_load(&s->key) != key))
        slot_give(s, nt - (tat > now_ns ? tat : now_ns), now_ns); /* the slot changed hands */
}

size_t rw_rl_table_live(rw_rl_table *t, uint64_t now_ns)
{
    size_t live = 0;
    for (size_t i = 0; i <= t->mask; i++) {
        rl_slot *s = &t->slots[i];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_relaxed);
        if (k != RL_EMPTY && k != RL_BUSY && atomic_load_explicit(&s->tat, memory_order_relaxed) > now_ns)
            live++;
    }
    return live;
}

/* ---- shard -------------------------------------------------------------- */

/* One key seen by a worker. The decision fields are a snapshot of the last
 * borrow: local serves report rem_base + parked without touching the table. */
typedef struct rl_ent {
    rw_rl_table *t;      /* NULL on the free list */
    uint64_t key;        /* mapped */
    uint64_t taken_at;   /* now_ns of the last borrow */
    uint64_t tat_after;  /* table tat right after the last borrow */
    uint64_t interval;   /* ns per token for `rate` */
    double rate;         /* rate `interval` was computed from */
    uint32_t parked;     /* borrowed tokens not used yet */
    uint32_t rem_base;   /* shared bucket's remaining at the last borrow */
    uint32_t prev, next; /* LRU list (head = most recent), RL_NIL ends; next links the free list */
} rl_ent;

struct rw_rl_shard {
    rl_ent *ents;
    uint32_t *index; /* open addressing, linear probing: entry index + 1, 0 = empty */
    uint32_t index_mask;
    uint32_t cap;        /* max keys */
    uint32_t count;      /* keys held */
    uint32_t fresh;      /* ents[fresh..cap) never used */
    uint32_t head, tail; /* LRU */
    uint32_t free_head;  /* entries released by forget */
    uint64_t evictions;
};

rw_rl_shard *rw_rl_shard_new(uint32_t max_keys)
{
    if (max_keys == 0)
        max_keys = 1;
    if (max_keys > RL_SHARD_MAX_KEYS)
        max_keys = RL_SHARD_MAX_KEYS;
    rw_rl_shard *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    uint32_t isz = 16;
    while (isz < 2 * max_keys) /* load factor <= 1/2 */
        isz <<= 1;
    s->ents = calloc(max_keys, sizeof *s->ents);
    s->index = calloc(isz, sizeof *s->index);
    if (s->ents == NULL || s->index == NULL) {
        free(s->ents);
        free(s->index);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->index_mask = isz - 1;
    s->cap = max_keys;
    s->head = s->tail = s->free_head = RL_NIL;
    return s;
}

static inline uint32_t ent_hash(const rw_rl_table *t, uint64_t key)
{
    return (uint32_t)rw_mix64(key ^ ((uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15ull));
}

/* Returns the entry for (t, key), or NULL with *pos at the empty index slot
 * where it would go. */
static rl_ent *shard_lookup(rw_rl_shard *s, const rw_rl_table *t, uint64_t key, uint32_t *pos)
{
    uint32_t i = ent_hash(t, key) & s->index_mask;
    for (;; i = (i + 1) & s->index_mask) {
        uint32_t v = s->index[i];
        if (v == 0)
            break;
        rl_ent *e = &s->ents[v - 1];
        if (e->key == key && e->t == t)
            return e;
    }
    *pos = i;
    return NULL;
}

/* Removes entry number idx from the index (backward-shift deletion: the
 * entries after it in its run move up so that no probe chain breaks). */
static void index_remove(rw_rl_shard *s, uint32_t idx)
{
    const rl_ent *e = &s->ents[idx];
    uint32_t mask = s->index_mask;
    uint32_t i = ent_hash(e->t, e->key) & mask;
    while (s->index[i] != idx + 1)
        i = (i + 1) & mask;
    for (;;) {
        s->index[i] = 0;
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & mask;
            uint32_t v = s->index[j];
            if (v == 0)
                return;
            const rl_ent *o = &s->ents[v - 1];
            uint32_t home = ent_hash(o->t, o->key) & mask;
            /* o may fill the hole at i unless its home lies cyclically in (i, j]. */
            bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays) {
                s->index[i] = v;
                i = j;
                break;
            }
        }
    }
}

static void lru_unlink(rw_rl_shard *s, uint32_t idx)
{
    rl_ent *e = &s->ents[idx];
    if (e->prev != RL_NIL)
        s->ents[e->prev].next = e->next;
    else
        s->head = e->next;
    if (e->next != RL_NIL)
        s->ents[e->next].prev = e->prev;
    else
        s->tail = e->prev;
}

static void lru_push_head(rw_rl_shard *s, uint32_t idx)
{
    rl_ent *e = &s->ents[idx];
    e->prev = RL_NIL;
    e->next = s->head;
    if (s->head != RL_NIL)
        s->ents[s->head].prev = idx;
    else
        s->tail = idx;
    s->head = idx;
}

/* Drops entry idx: parked tokens go back, the entry leaves the index and the
 * LRU. The caller reuses or frees the entry. */
static void shard_drop(rw_rl_shard *s, uint32_t idx, uint64_t now)
{
    rl_ent *e = &s->ents[idx];
    if (e->parked != 0)
        table_give_back(e->t, e->key, e->parked, now);
    e->parked = 0;
    index_remove(s, idx);
    lru_unlink(s, idx);
    e->t = NULL;
    s->count--;
}

/* Adds (t, key) at the head of the LRU, evicting the tail when full. */
static rl_ent *shard_insert(rw_rl_shard *s, rw_rl_table *t, uint64_t key, uint32_t pos, uint64_t now)
{
    uint32_t idx;
    if (s->free_head != RL_NIL) {
        idx = s->free_head;
        s->free_head = s->ents[idx].next;
    } else if (s->fresh < s->cap) {
        idx = s->fresh++;
    } else {
        idx = s->tail;
        shard_drop(s, idx, now);
        s->evictions++;
        shard_lookup(s, t, key, &pos); /* the deletion may have moved the hole */
    }
    rl_ent *e = &s->ents[idx];
    *e = (rl_ent){.t = t, .key = key, .rate = -1.0};
    s->index[pos] = idx + 1;
    lru_push_head(s, idx);
    s->count++;
    return e;
}

void rw_rl_shard_free(rw_rl_shard *s, uint64_t now_ns)
{
    if (s == NULL)
        return;
    for (uint32_t i = s->head; i != RL_NIL; i = s->ents[i].next) {
        rl_ent *e = &s->ents[i];
        if (e->parked != 0)
            table_give_back(e->t, e->key, e->parked, now_ns);
    }
    free(s->ents);
    s->ents = NULL;
    free(s->index);
    s->index = NULL;
    free(s);
}

void rw_rl_shard_forget(rw_rl_shard *s, rw_rl_table *t, uint64_t now_ns)
{
    uint32_t i = s->head;
    while (i != RL_NIL) {
        uint32_t next = s->ents[i].next;
        if (s->ents[i].t == t) {
            shard_drop(s, i, now_ns);
            s->ents[i].next = s->free_head;
            s->free_head = i;
        }
        i = next;
    }
}

bool rw_rl_check(rw_rl_shard *s, rw_rl_table *t, uint64_t key, const rw_rl_params *p, uint64_t now_ns,
                 rw_rl_decision *d)
{
    rw_rl_decision scratch;
    if (d == NULL)
        d = &scratch;
    key = map_key(key);
    uint32_t burst = p->burst != 0 ? p->burst : 1;
    uint32_t pos;
    rl_ent *e = shard_lookup(s, t, key, &pos);
    if (RW_LIKELY(e != NULL)) {
        uint32_t idx = (uint32_t)(e - s->ents);
        if (s->head != idx) {
            lru_unlink(s, idx);
            lru_push_head(s, idx);
        }
        if (e->parked != 0) {
            /* A clock that went back counts as fresh. */
            if (RW_LIKELY(now_ns < e->taken_at || now_ns - e->taken_at < RL_PARK_MAX_NS)) {
                /* The common path: worker-local only. */
                e->parked--;
                uint64_t eff = e->tat_after - (uint64_t)e->parked * e->interval;
                d->allowed = true;
                d->limit = burst;
                d->remaining = e->rem_base + e->parked;
                d->reset_s = eff > now_ns ? ceil_s(eff - now_ns) : 0;
                d->retry_after_s = 0;
                return true;
            }
            table_give_back(t, key, e->parked, now_ns); /* stale: let other workers have them */
            e->parked = 0;
        }
    } else {
        e = shard_insert(s, t, key, pos, now_ns);
    }
    if (e->rate != p->rate) {
        e->rate = p->rate;
        e->interval = rate_to_interval(p->rate);
    }
    uint64_t batch = RL_BATCH_NS / e->interval;
    uint32_t batch_max = burst / 8 != 0 ? burst / 8 : 1;
    if (batch > batch_max)
        batch = batch_max;
    if (batch == 0)
        batch = 1;
    uint64_t tat_after = 0;
    uint32_t n = table_take(t, key, e->interval, burst, (uint32_t)batch, now_ns, d, &tat_after);
    if (n == 0)
        return false;
    e->parked = n - 1;
    e->taken_at = now_ns;
    e->tat_after = tat_after;
    e->rem_base = d->remaining - (n - 1);
    return true;
}

size_t rw_rl_shard_size(const rw_rl_shard *s)
{
    return s->count;
}

uint64_t rw_rl_shard_evictions(const rw_rl_shard *s)
{
    return s->evictions;
}
