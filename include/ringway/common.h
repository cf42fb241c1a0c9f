/* common.h - small types and helpers shared by every ringway module. */
#ifndef RINGWAY_COMMON_H
#define RINGWAY_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A borrowed byte slice: never owns its memory, never NUL-terminated by contract. */
typedef struct rw_str {
    const char *p;
    size_t len;
} rw_str;

#define RW_STR(lit) ((rw_str){(lit), sizeof(lit) - 1})
#define RW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RW_MAX(a, b) ((a) > (b) ? (a) : (b))
#define RW_LIKELY(x) __builtin_expect(!!(x), 1)
#define RW_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RW_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Status vocabulary: 0 is success, negative errno values are failures. */
enum { RW_OK = 0 };

/* Monotonic clock in milliseconds (control-side timing; workers use their
 * loop's cached rw_loop_now). */
/* Milliseconds of Unix time (CLOCK_REALTIME): timestamps that leave the process. */
static inline uint64_t rw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* FNV-1a (64-bit) of n bytes at p, continuing from h (start with
 * RW_FNV1A_INIT): file content hashes (the config watch). */
#define RW_FNV1A_INIT 0xcbf29ce484222325ull
static inline uint64_t rw_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static inline uint64_t rw_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Monotonic clock in nanoseconds (control-side timing, background threads). */
static inline uint64_t rw_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The value of one hex digit (either case), or -1. */
static inline int rw_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* splitmix64's finaliser: spreads a 64-bit value (often a hash with weak low
 * bits) over all bits, for table indexes. */
static inline uint64_t rw_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static inline bool rw_str_eq(rw_str a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && memcmp(a.p, s, n) == 0;
}

/* True when a[0..n) and b[0..n) are equal ignoring ASCII case (inline: the
 * names compared on a request's path are short, and a call to strncasecmp
 * costs more than the comparison). */
static inline bool rw_ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned)((x | 0x20) - 'a') > 25))
            return false;
    }
    return true;
}

/* Returns true when the slice equals s ignoring ASCII case. */
static inline bool rw_str_ieq(rw_str a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && rw_ascii_ieq(a.p, s, n);
}

/* Returns true when slices a and b are equal ignoring ASCII case. */
static inline bool rw_str_ieq_str(rw_str a, rw_str b)
{
    return a.len == b.len && rw_ascii_ieq(a.p, b.p, a.len);
}

/* Header names equal ignoring case, with '_' counting as '-': CGI-style
 * upstreams read X_User_ID as X-User-ID, so identity headers compare this way. */
static inline bool rw_str_ieq_dash(rw_str a, rw_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        char x = a.p[i] == '_' ? '-' : a.p[i], y = b.p[i] == '_' ? '-' : b.p[i];
        if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned)((x | 0x20) - 'a') > 25))
            return false;
    }
    return true;
}

#endif
