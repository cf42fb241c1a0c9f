/* config.c - loads the declarative YAML configuration into an immutable
 * rw_config snapshot and validates it.
 *
 * libyaml's document API builds the node tree (with line marks); the loader
 * walks the known schema only, so aliases can never make it recurse, and a
 * work budget bounds what alias fan-out can multiply. Every string, array and
 * compiled regex of the result lives in one arena owned by the config;
 * rw_config_free releases it in one go. Nothing here is on the request path:
 * it runs on the control thread (startup and reload). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "ringway/common.h"
#include "ringway/config.h"
#include "ringway/http.h"
#include "ringway/jwt.h"
#include "ringway/rlsync.h"

/* ------------------------------------------------------------------------ */
/* Arena: chunked bump allocator. Memory is zeroed and never freed piecemeal. */

#define ARENA_CHUNK_SIZE 16384
#define ARENA_BIG (ARENA_CHUNK_SIZE / 4) /* at least this goes in its own chunk */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
} arena_chunk;

/* Every regex_t compiled into the config, so rw_config_free can regfree it. */
typedef struct arena_regex {
    struct arena_regex *next;
    regex_t *re;
} arena_regex;

typedef struct rw_arena {
    arena_chunk *chunks; /* head is the chunk small allocations bump in */
    arena_regex *regexes;
} rw_arena;

static void *arena_alloc(rw_arena *a, size_t n)
{
    const size_t align = _Alignof(max_align_t);

    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 4)
        return NULL;
    n = (n + align - 1) & ~(align - 1);

    arena_chunk *c = a->chunks;
    if (c && c->size - c->used >= n) {
        void *p = (unsigned char *)c->data + c->used;
        c->used += n;
        return p;
    }
    size_t size = n >= ARENA_BIG ? n : ARENA_CHUNK_SIZE;
    arena_chunk *nc = calloc(1, sizeof(*nc) + size);
    if (!nc)
        return NULL;
    nc->size = size;
    nc->used = n;
    if (n >= ARENA_BIG && c) {
        /* keep bumping in the current chunk: the big one goes behind it */
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        a->chunks = nc;
    }
    return nc->data;
}

static void *arena_array(rw_arena *a, size_t count, size_t size)
{
    if (count != 0 && size > SIZE_MAX / 4 / count)
        return NULL;
    return arena_alloc(a, count * size);
}

static void arena_destroy(rw_arena *a)
{
    if (!a)
        return;
    /* the list nodes live in the chunks: regfree everything before freeing them */
    for (arena_regex *r = a->regexes; r; r = r->next)
        regfree(r->re);
    arena_chunk *c = a->chunks;
    while (c) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

/* ------------------------------------------------------------------------ */
/* A temporary string -> int hash set (malloc'd; freed before load returns). */

typedef struct strset {
    const char **keys;
    int *vals;
    size_t cap;
    size_t n;
} strset;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Inserts key -> val. Returns 1 when inserted, 0 when key was there (its value
 * in *old), -1 when out of memory. The set borrows key. */
static int strset_put(strset *s, const char *key, int val, int *old)
{
    if (s->n * 2 >= s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        const char **nk = calloc(ncap, sizeof(*nk));
        int *nv = calloc(ncap, sizeof(*nv));
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->keys[i])
                continue;
            size_t j = str_hash(s->keys[i]) & (ncap - 1);
            while (nk[j])
                j = (j + 1) & (ncap - 1);
            nk[j] = s->keys[i];
            nv[j] = s->vals[i];
        }
        free(s->keys);
        free(s->vals);
        s->keys = nk;
        s->vals = nv;
        s->cap = ncap;
    }
    size_t j = str_hash(key) & (s->cap - 1);
    while (s->keys[j]) {
        if (strcmp(s->keys[j], key) == 0) {
            if (old)
                *old = s->vals[j];
            return 0;
        }
        j = (j + 1) & (s->cap - 1);
    }
    s->keys[j] = key;
    s->vals[j] = val;
    s->n++;
    return 1;
}

/* Returns the value stored for key, or -1 when it is not in the set. */
static int strset_get(const strset *s, const char *key)
{
    if (s->cap == 0)
        return -1;
    size_t j = str_hash(key) & (s->cap - 1);
    while (s->keys[j]) {
        if (strcmp(s->keys[j], key) == 0)
            return s->vals[j];
        j = (j + 1) & (s->cap - 1);
    }
    return -1;
}

static void strset_free(strset *s)
{
    free(s->keys);
    free(s->vals);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------------ */
/* Loader context, errors and node helpers. */

#define WORK_MAX 2000000u /* nodes visited; bounds alias fan-out */
#define MAX_LIST 100000u  /* entries in any one list or mapping */
#define MAX_REGEX_LEN 4096
#define MAX_BODY (1u << 20)
#define MAX_NAME_LEN 128
#define MAX_FILE_SIZE (16u << 20)

typedef struct loader {
    const char *name; /* file name for messages */
    yaml_document_t *doc;
    rw_arena *arena;
    rw_config *cfg;
    char *err;
    size_t errlen;
    bool failed;
    unsigned long work;
} loader;

#define SEQ_LEN(n) ((size_t)((n)->data.sequence.items.top - (n)->data.sequence.items.start))
#define MAP_LEN(n) ((size_t)((n)->data.mapping.pairs.top - (n)->data.mapping.pairs.start))
#define MAP_EACH(n, pr)                                                                                      \
    for (yaml_node_pair_t *pr = (n)->data.mapping.pairs.start; pr < (n)->data.mapping.pairs.top; pr++)

static const char *const method_names[RW_METHOD__COUNT] = {
    [RW_METHOD_GET] = "GET",         [RW_METHOD_HEAD] = "HEAD",     [RW_METHOD_POST] = "POST",
    [RW_METHOD_PUT] = "PUT",         [RW_METHOD_DELETE] = "DELETE", [RW_METHOD_CONNECT] = "CONNECT",
    [RW_METHOD_OPTIONS] = "OPTIONS", [RW_METHOD_TRACE] = "TRACE",   [RW_METHOD_PATCH] = "PATCH",
};

static void errorv(loader *l, size_t line, const char *fmt, va_list ap)
{
    if (l->failed)
        return;
    l->failed = true;
    if (!l->err || l->errlen == 0)
        return;
    int n = snprintf(l->err, l->errlen, "%s:%zu: ", l->name, line);
    if (n >= 0 && (size_t)n < l->errlen)
        vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
}

__attribute__((format(printf, 3, 4))) static int fail_line(loader *l, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errorv(l, line, fmt, ap);
    va_end(ap);
    return -1;
}

static size_t line_of(const yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 1;
}

__attribute__((format(printf, 3, 4))) static int fail(loader *l, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errorv(l, line_of(n), fmt, ap);
    va_end(ap);
    return -1;
}

static int oom(loader *l, const yaml_node_t *n)
{
    return fail(l, n, "out of memory");
}

/* Formats a path like "routes[3].paths[0]" into buf. */
__attribute__((format(printf, 3, 4))) static const char *wheref(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return buf;
}

static yaml_node_t *node_at(loader *l, int index)
{
    return yaml_document_get_node(l->doc, index);
}

static const char *scalar_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain scalar spelled like YAML's null ("", "~", "null"): "not set". */
static bool is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar_text(n);
    return n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Describes a node for "expected X, got Y" messages. */
static const char *describe(const yaml_node_t *n, char *buf, size_t cap)
{
    if (is_null(n))
        return "nothing";
    switch (n->type) {
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SCALAR_NODE: {
        size_t len = n->data.scalar.length;
        int shown = len > 40 ? 40 : (int)len;
        snprintf(buf, cap, "'%.*s%s'", shown, scalar_text(n), len > 40 ? "..." : "");
        return buf;
    }
    default:
        return "nothing";
    }
}

static int want(loader *l, const yaml_node_t *n, yaml_node_type_t type, const char *where)
{
    char b[64];
    const char *what = type == YAML_MAPPING_NODE    ? "a mapping"
                       : type == YAML_SEQUENCE_NODE ? "a list"
                                                    : "a string";

    if (n->type == type && (type != YAML_SCALAR_NODE || !is_null(n)))
        return 0;
    return fail(l, n, "%s: expected %s, got %s", where, what, describe(n, b, sizeof(b)));
}

static int spend(loader *l, const yaml_node_t *n, size_t units)
{
    if (units > MAX_LIST)
        return fail(l, n, "too many entries (%zu; at most %u)", units, MAX_LIST);
    l->work += units + 1;
    if (l->work > WORK_MAX)
        return fail(l, n, "configuration too large (too many nodes, or aliases expanding too far)");
    return 0;
}

/* Borrows a scalar's text; rejects other node kinds and embedded NUL bytes. */
static int str_of(loader *l, const yaml_node_t *n, const char *where, const char **out)
{
    if (want(l, n, YAML_SCALAR_NODE, where))
        return -1;
    if (strlen(scalar_text(n)) != n->data.scalar.length)
        return fail(l, n, "%s: contains a NUL byte", where);
    *out = scalar_text(n);
    return 0;
}

static char *dup_mem(loader *l, const yaml_node_t *n, const char *s, size_t len)
{
    char *p = arena_alloc(l->arena, len + 1);
    if (!p) {
        oom(l, n);
        return NULL;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* Copies a string value into the arena. A null value leaves *out unchanged. */
static int get_string(loader *l, const yaml_node_t *n, const char *where, char **out)
{
    const char *s = "";

    if (is_null(n))
        return 0;
    if (str_of(l, n, where, &s))
        return -1;
    if (*s == '\0')
        return fail(l, n, "%s: must not be empty", where);
    char *p = dup_mem(l, n, s, strlen(s));
    if (!p)
        return -1;
    *out = p;
    return 0;
}

static bool name_char(int c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.';
}

/* Names of services, routes, consumers, groups and tiers. */
static int check_name(loader *l, const yaml_node_t *n, const char *where, const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > MAX_NAME_LEN)
        return fail(l, n, "%s: a name must have 1 to %d characters", where, MAX_NAME_LEN);
    for (size_t i = 0; i < len; i++) {
        if (!name_char((unsigned char)s[i]))
            return fail(l, n, "%s: invalid name '%s' (use letters, digits, '-', '_' and '.')", where, s);
    }
    return 0;
}

static int get_name(loader *l, const yaml_node_t *n, const char *where, char **out)
{
    if (get_string(l, n, where, out))
        return -1;
    return *out ? check_name(l, n, where, *out) : 0;
}

static int get_uint(loader *l, const yaml_node_t *n, const char *where, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    const char *s = "";
    uint64_t v = 0;
    char b[64];

    if (is_null(n))
        return 0;
    if (str_of(l, n, where, &s))
        return -1;
    if (*s == '\0' || strlen(s) > 19)
        goto bad;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max)
        return fail(l, n, "%s: %s is out of range (%llu..%llu)", where, s, (unsigned long long)min,
                    (unsigned long long)max);
    *out = v;
    return 0;
bad:
    return fail(l, n, "%s: expected a whole number, got %s", where, describe(n, b, sizeof(b)));
}

static int get_u32(loader *l, const yaml_node_t *n, const char *where, uint32_t min, uint32_t max,
                   uint32_t *out)
{
    uint64_t v = *out;
    if (get_uint(l, n, where, min, max, &v))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int get_bool(loader *l, const yaml_node_t *n, const char *where, bool *out)
{
    const char *s = "";
    char b[64];

    if (is_null(n))
        return 0;
    if (str_of(l, n, where, &s))
        return -1;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return fail(l, n, "%s: expected true or false, got %s", where, describe(n, b, sizeof(b)));
    return 0;
}

/* A duration in milliseconds that must fit uint32_t and be at least min_ms. */
static int get_ms(loader *l, const yaml_node_t *n, const char *where, uint32_t min_ms, uint32_t *out)
{
    const char *s = "";
    uint64_t v;

    if (is_null(n))
        return 0;
    if (str_of(l, n, where, &s))
        return -1;
    if (rw_parse_duration_ms(s, &v) != 0)
        return fail(l, n, "%s: invalid duration '%s' (expected e.g. 250ms, 10s, 5m, 1h)", where, s);
    if (v > UINT32_MAX)
        return fail(l, n, "%s: duration '%s' is too long (at most 1193h)", where, s);
    if (v < min_ms)
        return fail(l, n, "%s: duration '%s' is too short (at least %ums)", where, s, min_ms);
    *out = (uint32_t)v;
    return 0;
}

static int get_size(loader *l, const yaml_node_t *n, const char *where, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    const char *s = "";
    uint64_t v;

    if (is_null(n))
        return 0;
    if (str_of(l, n, where, &s))
        return -1;
    if (rw_parse_size(s, &v) != 0)
        return fail(l, n, "%s: invalid size '%s' (expected e.g. 512, 16k, 10m, 1g)", where, s);
    if (v < min || v > max)
        return fail(l, n, "%s: size '%s' is out of range (%llu..%llu bytes)", where, s,
                    (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

/* One of a fixed set of words; what names the kind ("policy", "mode"). */
static int get_choice(loader *l, const yaml_node_t *n, const char *where, const char *what,
                      const char *const *names, size_t count, int *out)
{
    const char *s = "";
    char expected[160] = "";
    size_t off = 0;

    if (is_null(n))
        return 0;
    if (str_of(l, n, where, &s))
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    for (size_t i = 0; i < count && off < sizeof(expected); i++) {
        int w = snprintf(expected + off, sizeof(expected) - off, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return fail(l, n, "%s: unknown %s '%s' (expected %s)", where, what, s, expected);
}

/* Checks n is a mapping whose keys are distinct, non-empty strings. */
static int check_map(loader *l, const yaml_node_t *n, const char *where)
{
    if (want(l, n, YAML_MAPPING_NODE, where) || spend(l, n, MAP_LEN(n)))
        return -1;

    size_t count = MAP_LEN(n);
    strset seen = {0};
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const yaml_node_t *k = node_at(l, n->data.mapping.pairs.start[i].key);
        const char *s = "";
        char b[64];
        if (!k || k->type != YAML_SCALAR_NODE || is_null(k)) {
            rc = fail(l, k ? k : n, "%s%skeys must be strings, got %s", where, *where ? ": " : "",
                      k ? describe(k, b, sizeof(b)) : "nothing");
            break;
        }
        if (str_of(l, k, *where ? where : "top-level key", &s)) {
            rc = -1;
            break;
        }
        if (*s == '\0') {
            rc = fail(l, k, "%s%skeys must not be empty", where, *where ? ": " : "");
            break;
        }
        if (count <= 16) {
            for (size_t j = 0; j < i; j++) {
                const yaml_node_t *o = node_at(l, n->data.mapping.pairs.start[j].key);
                if (strcmp(scalar_text(o), s) == 0) {
                    rc = fail(l, k, "%s%sduplicate key '%s'", where, *where ? ": " : "", s);
                    break;
                }
            }
        } else {
            int put = strset_put(&seen, s, 0, NULL);
            if (put < 0)
                rc = oom(l, k);
            else if (put == 0)
                rc = fail(l, k, "%s%sduplicate key '%s'", where, *where ? ": " : "", s);
        }
    }
    strset_free(&seen);
    return rc;
}

static int unknown_key(loader *l, const yaml_node_t *k, const char *where, const char *ctx,
                       const char *expected)
{
    if (*where == '\0')
        return fail(l, k, "unknown key '%s' at top level (expected %s)", scalar_text(k), expected);
    return fail(l, k, "%s: unknown key '%s' in %s (expected %s)", where, scalar_text(k), ctx, expected);
}

/* A list of strings may also be written as one string: "x" means ["x"]. */
static int check_list(loader *l, const yaml_node_t *n, const char *where, bool scalar_ok)
{
    char b[64];

    if (n->type == YAML_SEQUENCE_NODE)
        return spend(l, n, SEQ_LEN(n));
    if (scalar_ok && n->type == YAML_SCALAR_NODE && !is_null(n))
        return 0;
    return fail(l, n, "%s: expected a list, got %s", where, describe(n, b, sizeof(b)));
}

static size_t list_len(const yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE ? SEQ_LEN(n) : 1;
}

static yaml_node_t *list_item(loader *l, yaml_node_t *n, size_t i)
{
    return n->type == YAML_SEQUENCE_NODE ? node_at(l, n->data.sequence.items.start[i]) : n;
}

static const char *item_where(char *buf, size_t cap, const yaml_node_t *list, const char *where, size_t i)
{
    if (list->type != YAML_SEQUENCE_NODE)
        return wheref(buf, cap, "%s", where);
    return wheref(buf, cap, "%s[%zu]", where, i);
}

/* Reads a list (or single string) of strings into an arena array. */
static int get_str_list(loader *l, yaml_node_t *n, const char *where, char ***out, size_t *count)
{
    char w[256];

    if (is_null(n))
        return 0;
    if (check_list(l, n, where, true))
        return -1;
    size_t len = list_len(n);
    char **arr = arena_array(l->arena, len, sizeof(*arr));
    if (!arr)
        return oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(l, n, i);
        item_where(w, sizeof(w), n, where, i);
        if (!it)
            return fail(l, n, "%s: missing entry", w);
        if (is_null(it))
            return fail(l, it, "%s: expected a string, got nothing", w);
        if (get_string(l, it, w, &arr[i]))
            return -1;
    }
    *out = arr;
    *count = len;
    return 0;
}

static int compile_regex(loader *l, const yaml_node_t *n, const char *where, const char *src, regex_t **out)
{
    if (strlen(src) > MAX_REGEX_LEN)
        return fail(l, n, "%s: regex is too long (at most %d characters)", where, MAX_REGEX_LEN);
    regex_t *re = arena_alloc(l->arena, sizeof(*re));
    arena_regex *node = arena_alloc(l->arena, sizeof(*node));
    if (!re || !node)
        return oom(l, n);
    int rc = regcomp(re, src, REG_EXTENDED);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        return fail(l, n, "%s: invalid regex '%s': %s", where, src, msg);
    }
    node->re = re;
    node->next = l->arena->regexes;
    l->arena->regexes = node;
    *out = re;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Value syntaxes that need more than the units parsers. */

static bool is_tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int check_token(loader *l, const yaml_node_t *n, const char *where, const char *what, const char *s)
{
    if (*s == '\0')
        return fail(l, n, "%s: %s must not be empty", where, what);
    for (const char *p = s; *p; p++) {
        if (!is_tchar((unsigned char)*p))
            return fail(l, n, "%s: invalid %s '%s'", where, what, s);
    }
    return 0;
}

/* A header value we would send or compare: visible ASCII, space, tab, obs-text. */
static int check_field_value(loader *l, const yaml_node_t *n, const char *where, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return fail(l, n, "%s: header value contains a control character", where);
    }
    return 0;
}

/* Brings an exact/prefix/strip path to the form requests are matched in (see
 * path.h): escapes of unreserved characters decoded, other escapes in upper
 * case. Paths with "//", "." or ".." segments could never match a normalised
 * request, so they are rejected rather than silently rewritten. */
static int normalise_path(loader *l, const yaml_node_t *n, const char *where, char *s)
{
    char *w = s;

    if (s[0] != '/')
        return fail(l, n, "%s: path '%s' must start with '/'", where, s);
    for (char *r = s; *r;) {
        unsigned char c = (unsigned char)*r;
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            return fail(l, n, "%s: path '%s' contains a character that must be percent-encoded", where, s);
        if (c == '%') {
            int hi = rw_hexval((unsigned char)r[1]), lo = hi < 0 ? -1 : rw_hexval((unsigned char)r[2]);
            if (hi < 0 || lo < 0)
                return fail(l, n, "%s: path '%s' has an invalid percent-escape", where, s);
            int v = hi * 16 + lo;
            if (v == 0)
                return fail(l, n, "%s: path '%s' contains %%00", where, s);
            if (isalnum(v) || v == '-' || v == '.' || v == '_' || v == '~') {
                *w++ = (char)v;
            } else {
                *w++ = '%';
                *w++ = (char)toupper((unsigned char)r[1]);
                *w++ = (char)toupper((unsigned char)r[2]);
            }
            r += 3;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    for (const char *p = s; *p; p++) {
        if (*p != '/')
            continue;
        const char *seg = p + 1;
        size_t len = strcspn(seg, "/");
        bool last = seg[len] == '\0';
        if ((len == 0 && !last) || (len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return fail(l, n, "%s: path '%s' is not normalised (no '//', '.' or '..' segments)", where, s);
    }
    return 0;
}

/* Route hosts: lower-cased names, IPv4 or [IPv6] literals, or "*.suffix". */
static int check_host(loader *l, const yaml_node_t *n, const char *where, char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    size_t len = strlen(s);
    if (len > 253)
        return fail(l, n, "%s: host '%s' is too long", where, s);
    if (s[0] == '[') {
        struct in6_addr a;
        char buf[INET6_ADDRSTRLEN + 1];
        size_t inner = len - 1;
        if (len < 3 || s[len - 1] != ']' || inner - 1 >= sizeof(buf))
            return fail(l, n, "%s: invalid host '%s'", where, s);
        memcpy(buf, s + 1, inner - 1);
        buf[inner - 1] = '\0';
        if (inet_pton(AF_INET6, buf, &a) != 1)
            return fail(l, n, "%s: invalid IPv6 literal '%s'", where, s);
        return 0;
    }
    const char *p = s;
    if (p[0] == '*' && p[1] == '.')
        p += 2;
    if (strchr(p, '*'))
        return fail(l, n, "%s: host '%s': a wildcard is only allowed as a leading '*.'", where, s);
    if (strchr(p, ':'))
        return fail(l, n, "%s: host '%s' must not include a port", where, s);
    if (*p == '\0' || *p == '.' || s[len - 1] == '.' || strstr(p, ".."))
        return fail(l, n, "%s: invalid host '%s'", where, s);
    for (; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
            return fail(l, n, "%s: invalid host '%s'", where, s);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Top-level scalars: listen, admin, workers, io. */

static bool addr_is_any(const rw_sockaddr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
    return IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
}

static uint16_t addr_port(const rw_sockaddr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* True when binding both would clash (v6 sockets are IPV6_V6ONLY). */
static bool addr_conflict(const rw_sockaddr *a, const rw_sockaddr *b)
{
    if (a->ss.ss_family != b->ss.ss_family || addr_port(a) != addr_port(b))
        return false;
    return addr_is_any(a) || addr_is_any(b) || (a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0);
}

static int get_sockaddr(loader *l, const yaml_node_t *n, const char *where, rw_sockaddr *out)
{
    const char *s = "";

    if (str_of(l, n, where, &s))
        return -1;
    if (rw_parse_sockaddr(s, out) != 0)
        return fail(l, n, "%s: invalid address '%s' (expected IP:PORT, [IPV6]:PORT or :PORT)", where, s);
    return 0;
}

static int parse_listen(loader *l, yaml_node_t *n)
{
    char w[64];
    rw_config *cfg = l->cfg;

    if (is_null(n))
        return 0;
    if (check_list(l, n, "listen", true))
        return -1;
    size_t len = list_len(n);
    if (len == 0)
        return fail(l, n, "listen: needs at least one address");
    if (len > 256)
        return fail(l, n, "listen: too many addresses (at most 256)");
    rw_sockaddr *arr = arena_array(l->arena, len, sizeof(*arr));
    if (!arr)
        return oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(l, n, i);
        item_where(w, sizeof(w), n, "listen", i);
        if (!it || get_sockaddr(l, it, w, &arr[i]))
            return it ? -1 : fail(l, n, "%s: missing entry", w);
        for (size_t j = 0; j < i; j++) {
            if (addr_conflict(&arr[i], &arr[j]))
                return fail(l, it, "%s: %s overlaps listen address %s", w, arr[i].text, arr[j].text);
        }
    }
    cfg->listen = arr;
    cfg->nlisten = len;
    return 0;
}

static int parse_workers(loader *l, const yaml_node_t *n)
{
    if (n->type == YAML_SCALAR_NODE && strcmp(scalar_text(n), "auto") == 0) {
        l->cfg->workers = 0;
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        const char *s = scalar_text(n);
        bool digits = *s != '\0';
        for (const char *p = s; *p; p++)
            digits = digits && *p >= '0' && *p <= '9';
        if (!digits)
            return fail(l, n, "workers: expected auto or a number, got '%s'", s);
    }
    return get_u32(l, n, "workers", 1, 1024, &l->cfg->workers);
}

/* ------------------------------------------------------------------------ */
/* http, redis, tiers */

static int parse_http(loader *l, yaml_node_t *n)
{
    static const char keys[] = "client_header_timeout, client_body_timeout, keepalive_timeout, "
                               "send_timeout, max_header_bytes, max_request_line, max_body_bytes, "
                               "max_headers";
    rw_http_cfg *h = &l->cfg->http;
    const yaml_node_t *line_v = NULL;

    if (is_null(n))
        return 0;
    if (check_map(l, n, "http"))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        char w[64];
        int rc;
        wheref(w, sizeof(w), "http.%s", key);
        if (!strcmp(key, "client_header_timeout"))
            rc = get_ms(l, v, w, 1, &h->client_header_timeout_ms);
        else if (!strcmp(key, "client_body_timeout"))
            rc = get_ms(l, v, w, 1, &h->client_body_timeout_ms);
        else if (!strcmp(key, "keepalive_timeout"))
            rc = get_ms(l, v, w, 0, &h->keepalive_timeout_ms);
        else if (!strcmp(key, "send_timeout"))
            rc = get_ms(l, v, w, 1, &h->send_timeout_ms);
        else if (!strcmp(key, "max_header_bytes"))
            rc = get_size(l, v, w, 1024, 1u << 20, &h->max_header_bytes);
        else if (!strcmp(key, "max_request_line")) {
            rc = get_size(l, v, w, 64, 1u << 20, &h->max_request_line);
            line_v = v;
        } else if (!strcmp(key, "max_body_bytes")) {
            if (v->type == YAML_SCALAR_NODE && !strcmp(scalar_text(v), "unlimited")) {
                h->max_body_bytes = 0;
                rc = 0;
            } else {
                rc = get_size(l, v, w, 0, UINT64_MAX, &h->max_body_bytes);
            }
        } else if (!strcmp(key, "max_headers"))
            rc = get_u32(l, v, w, 1, RW_HTTP_MAX_HEADERS, &h->max_headers);
        else
            rc = unknown_key(l, k, "http", "http", keys);
        if (rc)
            return -1;
    }
    if (h->max_request_line > h->max_header_bytes)
        return fail(l, line_v ? line_v : n,
                    "http.max_request_line: %llu is larger than max_header_bytes (%llu), which "
                    "includes the request line",
                    (unsigned long long)h->max_request_line, (unsigned long long)h->max_header_bytes);
    return 0;
}

static int parse_redis(loader *l, yaml_node_t *n)
{
    static const char *const failures[] = {"local", "allow", "deny"};
    rw_redis_cfg *r = &l->cfg->redis;

    if (is_null(n))
        return 0;
    if (check_map(l, n, "redis"))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc;
        if (!strcmp(key, "url")) {
            rc = get_string(l, v, "redis.url", &r->url);
            if (rc == 0 && r->url) {
                char why[256];
                rw_redis_url u;
                if (strncmp(r->url, "redis://", 8) != 0)
                    rc = fail(l, v,
                              "redis.url: '%s' must start with redis:// (TLS and unix sockets are not "
                              "supported)",
                              r->url);
                else if (rw_redis_url_parse(r->url, &u, why, sizeof(why)) != 0)
                    rc = fail(l, v, "redis.url: %s", why);
            }
        } else if (!strcmp(key, "sync_interval"))
            rc = get_ms(l, v, "redis.sync_interval", 1, &r->sync_interval_ms);
        else if (!strcmp(key, "on_failure"))
            rc = get_choice(l, v, "redis.on_failure", "mode", failures, 3, &r->on_failure);
        else
            rc = unknown_key(l, k, "redis", "redis", "url, sync_interval, on_failure");
        if (rc)
            return -1;
    }
    if (!r->url)
        return fail(l, n, "redis: url is required");
    return 0;
}

static uint32_t rate_window_ms(const char *s);

static int parse_tiers(loader *l, yaml_node_t *n)
{
    rw_config *cfg = l->cfg;
    char w[256];

    if (is_null(n))
        return 0;
    if (check_map(l, n, "tiers"))
        return -1;
    size_t len = MAP_LEN(n);
    cfg->tiers = arena_array(l->arena, len, sizeof(*cfg->tiers));
    if (!cfg->tiers)
        return oom(l, n);
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        rw_tier_cfg *t = &cfg->tiers[cfg->ntiers];
        wheref(w, sizeof(w), "tiers.%s", scalar_text(k));
        if (get_name(l, k, w, &t->name) || check_map(l, v, w))
            return -1;
        const yaml_node_t *rate = NULL;
        MAP_EACH(v, tp)
        {
            yaml_node_t *tk = node_at(l, tp->key);
            if (strcmp(scalar_text(tk), "rate") != 0)
                return unknown_key(l, tk, w, "tier", "rate");
            rate = node_at(l, tp->value);
        }
        if (!rate || is_null(rate))
            return fail(l, v, "%s: rate is required", w);
        const char *s = "";
        char rw[300];
        wheref(rw, sizeof(rw), "%s.rate", w);
        if (str_of(l, rate, rw, &s))
            return -1;
        t->window_ms = rate_window_ms(s);
        if (rw_parse_rate(s, &t->rate_per_sec, &t->unlimited) != 0)
            return fail(l, rate, "%s: invalid rate '%s' (expected N/s, N/min, N/hour or unlimited)", rw, s);
        cfg->ntiers++;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* filters */

/* A file path from the config, in the arena: a relative path is taken from
 * the config file's directory (kept as written for the embedded config). */
static int resolve_path(loader *l, const yaml_node_t *n, const char *where, const char *path, char **out)
{
    const char *slash = strrchr(l->name, '/');
    if (path[0] == '/' || slash == NULL || l->name[0] == '<')
        return (*out = dup_mem(l, n, path, strlen(path))) ? 0 : -1;
    char full[4096];
    int w = snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - l->name), l->name, path);
    if (w < 0 || (size_t)w >= sizeof(full))
        return fail(l, n, "%s: path too long", where);
    return (*out = dup_mem(l, n, full, (size_t)w)) ? 0 : -1;
}

/* Reads a whole small file (a path from resolve_path) into the arena, NUL-terminated. */
static int read_small_file(loader *l, const yaml_node_t *n, const char *where, const char *p, char **out,
                           size_t *len_out)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(l, n, "%s: cannot open %s: %s", where, p, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)(1u << 20)) {
        close(fd);
        return fail(l, n, "%s: %s is not a regular file of at most 1 MiB", where, p);
    }
    char *buf = arena_alloc(l->arena, (size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return oom(l, n);
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len_out = got;
    return 0;
}

#define RW_MAX_CLAIM_HEADERS 12

/* Headers a claim must never set: framing, routing, hop-by-hop, and the ones
 * ringway sets itself. */
static bool reserved_header(const char *name)
{
    static const char *const reserved[] = {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "expect",
        "via",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
        "x-request-id",
        "x-consumer-id",
        "x-consumer-username",
        "x-consumer-groups",
        "cookie",
        "authorization",
    };
    for (size_t i = 0; i < RW_ARRAY_LEN(reserved); i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    return false;
}

/* "bearer", "header:NAME", "query:NAME", "cookie:NAME". */
static int parse_cred_from(loader *l, const yaml_node_t *n, const char *where, bool bearer_ok, int *from,
                           char **name)
{
    const char *s = "";
    if (str_of(l, n, where, &s))
        return -1;
    if (bearer_ok && !strcmp(s, "bearer")) {
        *from = RW_FROM_BEARER;
        return 0;
    }
    static const struct {
        const char *prefix;
        int from;
    } kinds[] = {{"header:", RW_FROM_HEADER}, {"query:", RW_FROM_QUERY}, {"cookie:", RW_FROM_COOKIE}};
    for (size_t i = 0; i < RW_ARRAY_LEN(kinds); i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (strncmp(s, kinds[i].prefix, pl) != 0 || (!bearer_ok && kinds[i].from == RW_FROM_COOKIE))
            continue;
        if (s[pl] == '\0')
            return fail(l, n, "%s: '%s' needs a name after the colon", where, s);
        if (kinds[i].from == RW_FROM_HEADER && check_token(l, n, where, "header name", s + pl))
            return -1;
        *from = kinds[i].from;
        return (*name = dup_mem(l, n, s + pl, strlen(s + pl))) ? 0 : -1;
    }
    return fail(l, n, "%s: expected %s, got '%s'", where,
                bearer_ok ? "bearer, header:NAME, query:NAME or cookie:NAME" : "header:NAME or query:NAME",
                s);
}

static int parse_jwt_key(loader *l, yaml_node_t *n, const char *where, rw_jwt_key_cfg *k)
{
    static const char keys[] = "alg, kid, secret, secret_env, secret_file, secret_base64, pem, pem_file";
    char w[400];
    const yaml_node_t *alg_node = NULL, *material = NULL;
    bool b64 = false;
    int sources = 0;
    char err[256];

    k->line = (int)line_of(n);
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *kk = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(kk);
        const char *s = "";
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "alg")) {
            alg_node = v;
            if ((rc = str_of(l, v, w, &s)) == 0 && (k->alg = rw_jwt_alg_parse(s, strlen(s))) == RW_JWT_NONE)
                rc = fail(l, v,
                          "%s: unsupported algorithm '%s' (HS256/384/512, RS256/384/512, PS256/384/512, "
                          "ES256/384, EdDSA)",
                          w, s);
        } else if (!strcmp(key, "kid")) {
            rc = get_string(l, v, w, &k->kid);
        } else if (!strcmp(key, "secret")) {
            sources++, material = v;
            if ((rc = get_string(l, v, w, &k->secret)) == 0 && k->secret)
                k->secret_len = strlen(k->secret);
        } else if (!strcmp(key, "secret_env")) {
            sources++, material = v;
            if ((rc = str_of(l, v, w, &s)) == 0) {
                const char *e = getenv(s);
                if (e == NULL || *e == '\0')
                    rc = fail(l, v, "%s: environment variable %s is not set", w, s);
                else if (!(k->secret = dup_mem(l, v, e, strlen(e))))
                    rc = -1;
                else
                    k->secret_len = strlen(e);
            }
        } else if (!strcmp(key, "secret_file")) {
            sources++, material = v;
            char *path = NULL;
            if ((rc = str_of(l, v, w, &s)) == 0 && (rc = resolve_path(l, v, w, s, &path)) == 0 &&
                (rc = read_small_file(l, v, w, path, &k->secret, &k->secret_len)) == 0)
                while (k->secret_len > 0 &&
                       (k->secret[k->secret_len - 1] == '\n' || k->secret[k->secret_len - 1] == '\r'))
                    k->secret[--k->secret_len] = '\0'; /* a trailing newline is never part of the secret */
        } else if (!strcmp(key, "secret_base64")) {
            rc = get_bool(l, v, w, &b64);
        } else if (!strcmp(key, "pem")) {
            sources++, material = v;
            rc = get_string(l, v, w, &k->pem);
        } else if (!strcmp(key, "pem_file")) {
            sources++, material = v;
            size_t len;
            char *path = NULL;
            if ((rc = str_of(l, v, w, &s)) == 0 && (rc = resolve_path(l, v, w, s, &path)) == 0)
                rc = read_small_file(l, v, w, path, &k->pem, &len);
        } else {
            rc = unknown_key(l, kk, where, "jwt key", keys);
        }
        if (rc)
            return -1;
    }
    if (!alg_node)
        return fail(l, n, "%s: alg is required", where);
    if (sources != 1)
        return fail(l, n, "%s: needs exactly one of secret, secret_env, secret_file, pem, pem_file", where);
    bool hmac = k->alg == RW_JWT_HS256 || k->alg == RW_JWT_HS384 || k->alg == RW_JWT_HS512;
    if (hmac != (k->secret != NULL))
        return fail(l, material, "%s: %s needs %s", where, rw_jwt_alg_name(k->alg),
                    hmac ? "a secret (secret, secret_env or secret_file)" : "a public key (pem or pem_file)");
    if (b64 && k->secret) {
        /* base64 or base64url, padded or not */
        for (size_t i = 0; i < k->secret_len; i++)
            k->secret[i] = k->secret[i] == '+' ? '-' : k->secret[i] == '/' ? '_' : k->secret[i];
        ssize_t dl = rw_base64url_decode(k->secret, k->secret_len, k->secret, k->secret_len);
        if (dl < 0)
            return fail(l, material, "%s: the secret is not valid base64", where);
        k->secret_len = (size_t)dl;
    }
    /* Load the key once now so a bad one is reported with its line. */
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    if (!ks)
        return oom(l, n);
    int rc = k->secret
                 ? rw_jwt_keyset_add_secret(ks, k->alg, k->kid, k->secret, k->secret_len, err, sizeof(err))
                 : rw_jwt_keyset_add_pem(ks, k->alg, k->kid, k->pem, strlen(k->pem), err, sizeof(err));
    rw_jwt_keyset_free(ks);
    if (rc != 0)
        return fail(l, material, "%s: %s", where, err);
    return 0;
}

static int parse_jwt(loader *l, yaml_node_t *n, const char *where, rw_jwt_cfg *j)
{
    static const char keys[] =
        "from, keys, jwks_file, jwks_url, jwks_ca_file, jwks_refresh, issuer, audience, "
        "required_claims, leeway, max_age, require_exp, claims_to_headers, consumer_claim, "
        "hide_credentials, cache_entries";
    char w[400], iw[420];
    const yaml_node_t *c2h = NULL;

    j->from = RW_FROM_BEARER;
    j->jwks_refresh_ms = 300000;
    j->require_exp = true;
    j->cache_entries = 4096;
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        uint32_t ms = 0;
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "from"))
            rc = parse_cred_from(l, v, w, true, &j->from, &j->from_name);
        else if (!strcmp(key, "keys")) {
            if (is_null(v))
                continue;
            if ((rc = check_list(l, v, w, false)) == 0) {
                j->nkeys = SEQ_LEN(v);
                if (!(j->keys = arena_array(l->arena, j->nkeys ? j->nkeys : 1, sizeof(*j->keys))))
                    return oom(l, v);
                for (size_t i = 0; i < j->nkeys && rc == 0; i++)
                    rc = parse_jwt_key(l, list_item(l, v, i), item_where(iw, sizeof(iw), v, w, i),
                                       &j->keys[i]);
            }
        } else if (!strcmp(key, "jwks_file")) {
            if ((rc = get_string(l, v, w, &j->jwks_file)) == 0 && j->jwks_file &&
                (rc = resolve_path(l, v, w, j->jwks_file, &j->jwks_file)) == 0) {
                char *doc, err[256];
                size_t len;
                if ((rc = read_small_file(l, v, w, j->jwks_file, &doc, &len)) == 0) {
                    rw_jwt_keyset *ks = rw_jwt_keyset_new();
                    int got = ks ? rw_jwt_keyset_add_jwks(ks, doc, len, err, sizeof(err)) : -1;
                    rw_jwt_keyset_free(ks);
                    if (got < 0)
                        rc = fail(l, v, "%s: %s", w, ks ? err : "out of memory");
                    else if (got == 0)
                        rc = fail(l, v, "%s: no usable key in %s", w, j->jwks_file);
                }
            }
        } else if (!strcmp(key, "jwks_url")) {
            if ((rc = get_string(l, v, w, &j->jwks_url)) == 0 && j->jwks_url &&
                strncmp(j->jwks_url, "https://", 8) && strncmp(j->jwks_url, "http://", 7))
                rc = fail(l, v, "%s: '%s' must start with https:// or http://", w, j->jwks_url);
        } else if (!strcmp(key, "jwks_ca_file")) {
            char *doc;
            size_t len;
            if ((rc = get_string(l, v, w, &j->jwks_ca_file)) == 0 && j->jwks_ca_file &&
                (rc = resolve_path(l, v, w, j->jwks_ca_file, &j->jwks_ca_file)) == 0) /* readable now */
                rc = read_small_file(l, v, w, j->jwks_ca_file, &doc, &len);
        } else if (!strcmp(key, "jwks_refresh"))
            rc = get_ms(l, v, w, 1000, &j->jwks_refresh_ms);
        else if (!strcmp(key, "issuer"))
            rc = get_string(l, v, w, &j->issuer);
        else if (!strcmp(key, "audience"))
            rc = get_str_list(l, v, w, &j->audiences, &j->naudiences);
        else if (!strcmp(key, "required_claims"))
            rc = get_str_list(l, v, w, &j->required_claims, &j->nrequired);
        else if (!strcmp(key, "leeway")) {
            if ((rc = get_ms(l, v, w, 0, &ms)) == 0)
                j->leeway_s = ms / 1000;
        } else if (!strcmp(key, "max_age")) {
            if ((rc = get_ms(l, v, w, 1000, &ms)) == 0)
                j->max_age_s = ms / 1000;
        } else if (!strcmp(key, "require_exp"))
            rc = get_bool(l, v, w, &j->require_exp);
        else if (!strcmp(key, "claims_to_headers")) {
            c2h = v;
            if (is_null(v)) { /* explicitly none */
                j->nclaims = 0;
                continue;
            }
            if ((rc = check_map(l, v, w)) == 0) {
                if (!(j->claims_to_headers =
                          arena_array(l->arena, MAP_LEN(v) ? MAP_LEN(v) : 1, sizeof(rw_kv))))
                    return oom(l, v);
                MAP_EACH(v, cp)
                {
                    yaml_node_t *ck = node_at(l, cp->key), *cv = node_at(l, cp->value);
                    rw_kv *kv = &j->claims_to_headers[j->nclaims];
                    wheref(iw, sizeof(iw), "%s.%s", w, scalar_text(ck));
                    if (get_string(l, ck, iw, &kv->name) || get_string(l, cv, iw, &kv->value) ||
                        (kv->value == NULL && fail(l, cv, "%s: expected a header name", iw)) ||
                        check_token(l, cv, iw, "header name", kv->value))
                        return -1;
                    if (reserved_header(kv->value))
                        return fail(l, cv, "%s: %s is set by ringway or the HTTP framing, not by a claim", iw,
                                    kv->value);
                    if (++j->nclaims > RW_MAX_CLAIM_HEADERS)
                        return fail(l, cv, "%s: at most %d claims can be mapped to headers", w,
                                    RW_MAX_CLAIM_HEADERS);
                }
            }
        } else if (!strcmp(key, "consumer_claim"))
            rc = get_string(l, v, w, &j->consumer_claim);
        else if (!strcmp(key, "hide_credentials"))
            rc = get_bool(l, v, w, &j->hide_credentials);
        else if (!strcmp(key, "cache_entries"))
            rc = get_u32(l, v, w, 0, 1u << 20, &j->cache_entries);
        else
            rc = unknown_key(l, k, where, "jwt filter", keys);
        if (rc)
            return -1;
    }
    if (j->nkeys == 0 && !j->jwks_file && !j->jwks_url)
        return fail(l, n, "%s: needs keys, jwks_file or jwks_url", where);
    if (j->jwks_file && j->jwks_url)
        return fail(l, n, "%s: jwks_file and jwks_url are exclusive", where);
    if (c2h == NULL) { /* default: sub -> X-User-ID */
        if (!(j->claims_to_headers = arena_array(l->arena, 1, sizeof(rw_kv))) ||
            !(j->claims_to_headers[0].name = dup_mem(l, n, "sub", 3)) ||
            !(j->claims_to_headers[0].value = dup_mem(l, n, "X-User-ID", 9)))
            return oom(l, n);
        j->nclaims = 1;
    }
    return 0;
}

static int parse_key_auth(loader *l, yaml_node_t *n, const char *where, rw_key_auth_cfg *k)
{
    static const char keys[] = "header, query, hide_credentials";
    char w[400];
    int names = 0;

    k->from = RW_FROM_HEADER;
    if (n != NULL && !is_null(n) && check_map(l, n, where))
        return -1;
    if (n != NULL && !is_null(n)) {
        MAP_EACH(n, pr)
        {
            yaml_node_t *kk = node_at(l, pr->key), *v = node_at(l, pr->value);
            const char *key = scalar_text(kk);
            int rc = 0;
            wheref(w, sizeof(w), "%s.%s", where, key);
            if (!strcmp(key, "header")) {
                names++;
                k->from = RW_FROM_HEADER;
                rc = get_string(l, v, w, &k->name);
                if (rc == 0 && k->name)
                    rc = check_token(l, v, w, "header name", k->name);
            } else if (!strcmp(key, "query")) {
                names++;
                k->from = RW_FROM_QUERY;
                rc = get_string(l, v, w, &k->name);
            } else if (!strcmp(key, "hide_credentials"))
                rc = get_bool(l, v, w, &k->hide_credentials);
            else
                rc = unknown_key(l, kk, where, "key_auth filter", keys);
            if (rc)
                return -1;
        }
    }
    if (names > 1)
        return fail(l, n, "%s: header and query are exclusive", where);
    if (!k->name && !(k->name = dup_mem(l, NULL, k->from == RW_FROM_QUERY ? "apikey" : "X-API-Key",
                                        k->from == RW_FROM_QUERY ? 6 : 9)))
        return -1;
    return 0;
}

static int get_cidr_list(loader *l, yaml_node_t *n, const char *where, rw_cidr **out, size_t *count)
{
    char **strs = NULL;
    char iw[420];
    if (get_str_list(l, n, where, &strs, count))
        return -1;
    if (*count == 0)
        return 0;
    if (!(*out = arena_array(l->arena, *count, sizeof(rw_cidr))))
        return oom(l, n);
    for (size_t i = 0; i < *count; i++)
        if (rw_cidr_parse(strs[i], &(*out)[i]) != 0)
            return fail(l, list_item(l, n, i),
                        "%s: '%s' is not an address or CIDR range (host bits must be 0)",
                        item_where(iw, sizeof(iw), n, where, i), strs[i]);
    return 0;
}

static int parse_acl(loader *l, yaml_node_t *n, const char *where, rw_acl_cfg *a)
{
    static const char keys[] = "allow_groups, deny_groups, allow_ips, deny_ips";
    char w[400];
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "allow_groups"))
            rc = get_str_list(l, v, w, &a->allow_groups, &a->nallow_groups);
        else if (!strcmp(key, "deny_groups"))
            rc = get_str_list(l, v, w, &a->deny_groups, &a->ndeny_groups);
        else if (!strcmp(key, "allow_ips"))
            rc = get_cidr_list(l, v, w, &a->allow_ips, &a->nallow_ips);
        else if (!strcmp(key, "deny_ips"))
            rc = get_cidr_list(l, v, w, &a->deny_ips, &a->ndeny_ips);
        else
            rc = unknown_key(l, k, where, "acl filter", keys);
        if (rc)
            return -1;
    }
    if (!a->nallow_groups && !a->ndeny_groups && !a->nallow_ips && !a->ndeny_ips)
        return fail(l, n, "%s: needs allow_groups, deny_groups, allow_ips or deny_ips", where);
    return 0;
}

/* The period a rate was written with ("100/min" -> 60000). */
static uint32_t rate_window_ms(const char *s)
{
    const char *u = strchr(s, '/');
    if (!u)
        return 1000;
    u++;
    if (*u == 'm')
        return 60000;
    if (*u == 'h')
        return 3600000;
    if (*u == 'd')
        return 86400000;
    return 1000;
}

static int parse_rate_limit(loader *l, yaml_node_t *n, const char *where, rw_rate_limit_cfg *r)
{
    static const char keys[] = "name, key, rate, burst, tier, scope, max_keys, headers";
    static const char *const scopes[] = {"local", "global"};
    char w[400], iw[420];
    const yaml_node_t *rate = NULL, *burst = NULL;

    r->key = RW_RLK_IP;
    r->max_keys = 65536;
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        const char *s = "";
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "name"))
            rc = get_name(l, v, w, &r->name);
        else if (!strcmp(key, "key")) {
            if ((rc = check_list(l, v, w, true)) != 0)
                return -1;
            r->key = 0;
            for (size_t i = 0; i < list_len(v) && rc == 0; i++) {
                yaml_node_t *it = list_item(l, v, i);
                item_where(iw, sizeof(iw), v, w, i);
                if ((rc = str_of(l, it, iw, &s)) != 0)
                    break;
                uint32_t bit = !strcmp(s, "consumer")              ? RW_RLK_CONSUMER
                               : !strcmp(s, "key")                 ? RW_RLK_CRED
                               : !strcmp(s, "ip")                  ? RW_RLK_IP
                               : !strcmp(s, "route")               ? RW_RLK_ROUTE
                               : !strncmp(s, "header:", 7) && s[7] ? RW_RLK_HEADER
                                                                   : 0;
                if (bit == 0)
                    rc =
                        fail(l, it, "%s: unknown key '%s' (expected consumer, key, ip, route or header:NAME)",
                             iw, s);
                else if (r->key & bit)
                    rc = fail(l, it, "%s: '%s' listed twice (one header: per limit)", iw, s);
                else if (bit == RW_RLK_HEADER && !(r->header = dup_mem(l, it, s + 7, strlen(s + 7))))
                    rc = -1;
                r->key |= bit;
            }
        } else if (!strcmp(key, "rate")) {
            rate = v;
            if ((rc = str_of(l, v, w, &s)) == 0) {
                if (rw_parse_rate(s, &r->rate, &r->unlimited) != 0)
                    rc = fail(l, v, "%s: invalid rate '%s' (expected N/s, N/min, N/hour or unlimited)", w, s);
                r->window_ms = rate_window_ms(s);
            }
        } else if (!strcmp(key, "burst")) {
            burst = v;
            rc = get_u32(l, v, w, 1, 1000000000, &r->burst);
        } else if (!strcmp(key, "tier"))
            rc = get_bool(l, v, w, &r->tier);
        else if (!strcmp(key, "scope"))
            rc = get_choice(l, v, w, "scope", scopes, 2, &r->scope);
        else if (!strcmp(key, "max_keys"))
            rc = get_u32(l, v, w, 16, 1u << 24, &r->max_keys);
        else if (!strcmp(key, "headers"))
            rc = get_bool(l, v, w, &r->headers);
        else
            rc = unknown_key(l, k, where, "rate_limit filter", keys);
        if (rc)
            return -1;
    }
    if (!rate && !r->tier)
        return fail(l, n, "%s: needs rate (or tier: true)", where);
    if (r->tier && l->cfg->ntiers == 0)
        return fail(l, n, "%s: tier: true needs a tiers section", where);
    if (rate && !r->unlimited && r->burst == 0) {
        double b = r->rate * (double)r->window_ms / 1000.0;
        r->burst = b < 1 ? 1 : b > 1e9 ? 1000000000u : (uint32_t)(b + 0.5);
    }
    (void)burst;
    return 0;
}

/* A filter list: [{jwt: {...}}, {rate_limit: {...}}, key_auth, ...]. */
static int parse_filters(loader *l, yaml_node_t *n, const char *where, rw_filter_cfg **out, size_t *count)
{
    static const char names[] = "key_auth, jwt, acl, rate_limit";
    char w[300], fw[340];
    char b[64];

    if (is_null(n))
        return 0;
    if (check_list(l, n, where, false))
        return -1;
    size_t len = SEQ_LEN(n);
    rw_filter_cfg *fs = arena_array(l->arena, len ? len : 1, sizeof(*fs));
    if (!fs)
        return oom(l, n);
    int seen = 0;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(l, n, i);
        yaml_node_t *name = it, *body = NULL;
        wheref(w, sizeof(w), "%s[%zu]", where, i);
        if (!it)
            return fail(l, n, "%s: missing entry", w);
        if (it->type == YAML_MAPPING_NODE) {
            if (MAP_LEN(it) != 1)
                return fail(l, it, "%s: expected one filter like {name: {settings}}", w);
            name = node_at(l, it->data.mapping.pairs.start[0].key);
            body = node_at(l, it->data.mapping.pairs.start[0].value);
        } else if (it->type != YAML_SCALAR_NODE || is_null(it)) {
            return fail(l, it, "%s: expected a filter like {name: {settings}}, got %s", w,
                        describe(it, b, sizeof(b)));
        }
        const char *fname = scalar_text(name);
        rw_filter_cfg *f = &fs[i];
        f->line = (int)line_of(it);
        wheref(fw, sizeof(fw), "%s.%s", w, fname);
        int rc;
        if (strcmp(fname, "key_auth") && strcmp(fname, "jwt") && strcmp(fname, "acl") &&
            strcmp(fname, "rate_limit"))
            return fail(l, name, "%s: unknown filter '%s' (expected %s)", w, fname, names);
        if (!strcmp(fname, "key_auth")) {
            f->kind = RW_FILTER_KEY_AUTH;
            rc = parse_key_auth(l, body, fw, &f->u.key_auth); /* no settings: the defaults */
        } else if (!body || is_null(body)) {
            return fail(l, name, "%s: filter '%s' needs settings", w, fname);
        } else if (!strcmp(fname, "jwt")) {
            f->kind = RW_FILTER_JWT;
            rc = parse_jwt(l, body, fw, &f->u.jwt);
        } else if (!strcmp(fname, "acl")) {
            f->kind = RW_FILTER_ACL;
            rc = parse_acl(l, body, fw, &f->u.acl);
        } else if (!strcmp(fname, "rate_limit")) {
            f->kind = RW_FILTER_RATE_LIMIT;
            rc = parse_rate_limit(l, body, fw, &f->u.rate_limit);
        } else {
            return fail(l, name, "%s: unknown filter '%s' (expected %s)", w, fname, names);
        }
        if (rc)
            return -1;
        int bit = 1 << f->kind;
        if ((f->kind == RW_FILTER_JWT || f->kind == RW_FILTER_KEY_AUTH) && (seen & bit))
            return fail(l, it, "%s: a second %s filter in one list", w, fname);
        seen |= bit;
    }
    *out = fs;
    *count = len;
    return 0;
}

/* Names rate-limit tables that have none: "<scope>.rate_limit[<i>]". */
static int name_rate_limits(loader *l, const yaml_node_t *n, rw_filter_cfg *fs, size_t count,
                            const char *owner)
{
    char buf[MAX_NAME_LEN + 64];
    for (size_t i = 0; i < count; i++) {
        rw_rate_limit_cfg *r = &fs[i].u.rate_limit;
        if (fs[i].kind != RW_FILTER_RATE_LIMIT || r->name)
            continue;
        snprintf(buf, sizeof(buf), "%s.rate_limit.%zu", owner, i);
        if (!(r->name = dup_mem(l, n, buf, strlen(buf))))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* services */

/* Splits "host:port" / "[v6]:port", validates and resolves it. */
static int parse_instance_address(loader *l, const yaml_node_t *n, const char *where, rw_instance_cfg *ins)
{
    const char *s = "";
    const char *host, *port_s;
    size_t hlen;
    bool literal6 = false;

    if (str_of(l, n, where, &s))
        return -1;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            goto bad;
        host = s + 1;
        hlen = (size_t)(end - host);
        port_s = end + 2;
        literal6 = true;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return fail(l, n, "%s: address '%s' needs a port (host:port)", where, s);
        host = s;
        hlen = (size_t)(colon - s);
        port_s = colon + 1;
        if (memchr(host, ':', hlen))
            return fail(l, n, "%s: address '%s': write an IPv6 address as [addr]:port", where, s);
    }
    if (hlen == 0 || hlen > 253)
        goto bad;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || (literal6 && c == ':')))
            goto bad;
    }
    size_t plen = strlen(port_s);
    unsigned port = 0;
    if (plen == 0 || plen > 5)
        goto bad_port;
    for (const char *p = port_s; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad_port;
        port = port * 10 + (unsigned)(*p - '0');
    }
    if (port < 1 || port > 65535)
        goto bad_port;

    ins->address = dup_mem(l, n, s, strlen(s));
    ins->host = dup_mem(l, n, host, hlen);
    if (!ins->address || !ins->host)
        return -1;
    ins->port = (uint16_t)port;
    ins->authority = ins->address;

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (literal6 ? AI_NUMERICHOST : 0);
    int rc = getaddrinfo(ins->host, port_s, &hints, &res);
    if (rc != 0 || !res) {
        if (res)
            freeaddrinfo(res);
        return fail(l, n, "%s: cannot resolve '%s': %s", where, ins->host,
                    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    }
    if (res->ai_addrlen > sizeof(ins->addr.ss) || (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
        freeaddrinfo(res);
        return fail(l, n, "%s: '%s' resolved to an unsupported address family", where, ins->host);
    }
    memcpy(&ins->addr.ss, res->ai_addr, res->ai_addrlen);
    ins->addr.len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    rw_sockaddr_format(&ins->addr);
    return 0;

bad:
    return fail(l, n, "%s: invalid address '%s' (expected host:port or [ipv6]:port)", where, s);
bad_port:
    return fail(l, n, "%s: address '%s' has an invalid port (expected 1..65535)", where, s);
}

static int parse_instance(loader *l, yaml_node_t *n, const char *where, rw_instance_cfg *ins)
{
    char w[300];
    const yaml_node_t *addr = NULL;

    ins->weight = 1;
    ins->line = (int)line_of(n);
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) /* shorthand: "10.0.0.1:3001" */
        return parse_instance_address(l, n, where, ins);
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "address")) {
            if (!is_null(v) && parse_instance_address(l, v, w, ins))
                return -1;
            addr = is_null(v) ? NULL : v;
        } else if (!strcmp(key, "weight")) {
            if (get_u32(l, v, w, 1, 1000, &ins->weight))
                return -1;
        } else {
            return unknown_key(l, k, where, "instance", "address, weight");
        }
    }
    if (!addr)
        return fail(l, n, "%s: address is required", where);
    return 0;
}

static int parse_hash_on(loader *l, const yaml_node_t *n, const char *where, rw_service_cfg *svc)
{
    const char *s = "";

    if (str_of(l, n, where, &s))
        return -1;
    if (!strcmp(s, "ip")) {
        svc->hash_on = RW_HASH_IP;
        return 0;
    }
    const char *name;
    if (!strncmp(s, "header:", 7)) {
        svc->hash_on = RW_HASH_HEADER;
        name = s + 7;
    } else if (!strncmp(s, "cookie:", 7)) {
        svc->hash_on = RW_HASH_COOKIE;
        name = s + 7;
    } else {
        return fail(l, n, "%s: unknown hash key '%s' (expected ip, header:NAME or cookie:NAME)", where, s);
    }
    if (check_token(l, n, where, svc->hash_on == RW_HASH_HEADER ? "header name" : "cookie name", name))
        return -1;
    svc->hash_key = dup_mem(l, n, name, strlen(name));
    return svc->hash_key ? 0 : -1;
}

/* One status or range of expect: 200, "200-399" or "2xx". */
static int parse_expect_item(loader *l, const yaml_node_t *n, const char *where, uint16_t *lo, uint16_t *hi)
{
    const char *s = "";
    unsigned a = 0, b = 0;
    int used = 0;

    if (str_of(l, n, where, &s))
        return -1;
    if (strlen(s) == 3 && s[0] >= '1' && s[0] <= '5' && s[1] == 'x' && s[2] == 'x') {
        a = (unsigned)(s[0] - '0') * 100;
        b = a + 99;
    } else if (sscanf(s, "%3u-%3u%n", &a, &b, &used) == 2 && s[used] == '\0') {
        /* a range */
    } else if (sscanf(s, "%3u%n", &a, &used) == 1 && s[used] == '\0') {
        b = a;
    } else {
        return fail(l, n, "%s: invalid status '%s' (expected e.g. 200, 200-399 or 2xx)", where, s);
    }
    if (a < 100 || b > 599 || a > b)
        return fail(l, n, "%s: status range '%s' is outside 100-599 or reversed", where, s);
    *lo = (uint16_t)a;
    *hi = (uint16_t)b;
    return 0;
}

static int parse_health_check(loader *l, yaml_node_t *n, const char *where, rw_health_check_cfg *hc)
{
    static const char keys[] =
        "enabled, type, path, method, host, interval, timeout, healthy, unhealthy, expect, jitter";
    static const char *const types[] = {"http", "tcp"};
    char w[320];
    const yaml_node_t *timeout = NULL;

    hc->enabled = true;
    hc->type = RW_HC_HTTP;
    hc->interval_ms = 5000;
    hc->timeout_ms = 1000;
    hc->healthy = 2;
    hc->unhealthy = 3;
    hc->jitter_pct = 10;
    hc->expect_lo[0] = 200;
    hc->expect_hi[0] = 399;
    hc->nexpect = 1;
    if (is_null(n))
        return 0;
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "enabled")) {
            rc = get_bool(l, v, w, &hc->enabled);
        } else if (!strcmp(key, "type")) {
            rc = get_choice(l, v, w, "type", types, RW_ARRAY_LEN(types), &hc->type);
        } else if (!strcmp(key, "path")) {
            rc = get_string(l, v, w, &hc->path);
            if (rc == 0 && hc->path != NULL && hc->path[0] != '/')
                rc = fail(l, v, "%s: must start with '/'", w);
            for (const char *c = hc->path; rc == 0 && c != NULL && *c; c++)
                if ((unsigned char)*c <= 0x20 || *c == 0x7f)
                    rc = fail(l, v, "%s: control characters and spaces are not allowed", w);
        } else if (!strcmp(key, "method")) {
            static const char *const methods[] = {"GET", "HEAD"};
            int m = 0;
            rc = get_choice(l, v, w, "method", methods, RW_ARRAY_LEN(methods), &m);
            hc->method = (char *)methods[m];
        } else if (!strcmp(key, "host")) {
            rc = get_string(l, v, w, &hc->host);
            if (rc == 0 && hc->host != NULL)
                rc = check_field_value(l, v, w, hc->host);
        } else if (!strcmp(key, "interval")) {
            rc = get_ms(l, v, w, 100, &hc->interval_ms);
        } else if (!strcmp(key, "timeout")) {
            timeout = v;
            rc = get_ms(l, v, w, 10, &hc->timeout_ms);
        } else if (!strcmp(key, "healthy")) {
            rc = get_u32(l, v, w, 1, 100, &hc->healthy);
        } else if (!strcmp(key, "unhealthy")) {
            rc = get_u32(l, v, w, 1, 100, &hc->unhealthy);
        } else if (!strcmp(key, "jitter")) {
            const char *s = "";
            unsigned pct = 0;
            int used = 0;
            rc = str_of(l, v, w, &s);
            if (rc == 0 && (sscanf(s, "%3u%%%n", &pct, &used) != 1 || s[used] != '\0' || pct > 50))
                rc = fail(l, v, "%s: invalid jitter '%s' (expected a share like 10%%, at most 50%%)", w, s);
            hc->jitter_pct = pct;
        } else if (!strcmp(key, "expect")) {
            if ((rc = check_list(l, v, w, true)) != 0)
                return -1;
            size_t len = list_len(v);
            if (len == 0 || len > RW_HC_MAX_EXPECT)
                return fail(l, v, "%s: expected 1 to %d statuses or ranges", w, RW_HC_MAX_EXPECT);
            for (size_t i = 0; i < len && rc == 0; i++) {
                char iw[340];
                yaml_node_t *it = list_item(l, v, i);
                wheref(iw, sizeof(iw), "%s[%zu]", w, i);
                if (!it)
                    return fail(l, v, "%s: missing entry", iw);
                rc = parse_expect_item(l, it, iw, &hc->expect_lo[i], &hc->expect_hi[i]);
            }
            hc->nexpect = (uint32_t)len;
        } else {
            rc = unknown_key(l, k, where, "health_check", keys);
        }
        if (rc)
            return -1;
    }
    if (hc->timeout_ms >= hc->interval_ms)
        return fail(l, timeout ? timeout : n, "%s.timeout: must be shorter than the interval (%ums)", where,
                    hc->interval_ms);
    return 0;
}

/* The failure kinds of outlier.on / retries.on; allowed: RW_FAILON_* bits. */
static int parse_fail_on(loader *l, yaml_node_t *n, const char *where, uint32_t allowed, uint32_t *out)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } kinds[] = {{"connect_failure", RW_FAILON_CONNECT},
                 {"reset", RW_FAILON_RESET},
                 {"timeout", RW_FAILON_TIMEOUT},
                 {"5xx", RW_FAILON_5XX},
                 {"502", RW_FAILON_502},
                 {"503", RW_FAILON_503},
                 {"504", RW_FAILON_504}};
    char iw[340], expected[120] = "";
    size_t off = 0;

    for (size_t j = 0; j < RW_ARRAY_LEN(kinds); j++)
        if ((allowed & kinds[j].bit) && off < sizeof(expected))
            off += (size_t)snprintf(expected + off, sizeof(expected) - off, "%s%s", off ? ", " : "",
                                    kinds[j].name);
    if (is_null(n))
        return 0;
    if (check_list(l, n, where, true))
        return -1;
    uint32_t bits = 0;
    for (size_t i = 0; i < list_len(n); i++) {
        yaml_node_t *it = list_item(l, n, i);
        const char *s = "";
        wheref(iw, sizeof(iw), "%s[%zu]", where, i);
        if (!it)
            return fail(l, n, "%s: missing entry", iw);
        if (str_of(l, it, iw, &s))
            return -1;
        size_t j = 0;
        while (j < RW_ARRAY_LEN(kinds) && (strcmp(s, kinds[j].name) != 0 || !(allowed & kinds[j].bit)))
            j++;
        if (j == RW_ARRAY_LEN(kinds))
            return fail(l, it, "%s: unknown failure '%s' (expected %s)", iw, s, expected);
        bits |= kinds[j].bit;
    }
    *out = bits;
    return 0;
}

static int parse_outlier(loader *l, yaml_node_t *n, const char *where, rw_outlier_cfg *o)
{
    static const char keys[] =
        "enabled, consecutive_failures, base_ejection, max_ejection, max_ejected_percent, on";
    char w[320];
    const yaml_node_t *max = NULL;

    o->enabled = true;
    o->consecutive_failures = 5;
    o->base_ejection_ms = 30000;
    o->max_ejection_ms = 300000;
    o->max_ejected_percent = 50;
    o->on = RW_FAILON_CONNECT | RW_FAILON_RESET | RW_FAILON_TIMEOUT | RW_FAILON_5XX;
    if (is_null(n))
        return 0;
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "enabled"))
            rc = get_bool(l, v, w, &o->enabled);
        else if (!strcmp(key, "consecutive_failures"))
            rc = get_u32(l, v, w, 1, 10000, &o->consecutive_failures);
        else if (!strcmp(key, "base_ejection"))
            rc = get_ms(l, v, w, 100, &o->base_ejection_ms);
        else if (!strcmp(key, "max_ejection")) {
            max = v;
            rc = get_ms(l, v, w, 100, &o->max_ejection_ms);
        } else if (!strcmp(key, "max_ejected_percent"))
            rc = get_u32(l, v, w, 0, 100, &o->max_ejected_percent);
        else if (!strcmp(key, "on"))
            rc = parse_fail_on(
                l, v, w, RW_FAILON_CONNECT | RW_FAILON_RESET | RW_FAILON_TIMEOUT | RW_FAILON_5XX, &o->on);
        else
            rc = unknown_key(l, k, where, "outlier", keys);
        if (rc)
            return -1;
    }
    if (o->max_ejection_ms < o->base_ejection_ms)
        return fail(l, max ? max : n, "%s.max_ejection: must be at least base_ejection (%ums)", where,
                    o->base_ejection_ms);
    return 0;
}

static int parse_retries(loader *l, yaml_node_t *n, const char *where, rw_retries_cfg *rc)
{
    static const char keys[] = "attempts, on, backoff, budget, budget_min, retry_non_idempotent";
    char w[320];

    if (is_null(n))
        return 0;
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc_ = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "attempts")) {
            rc_ = get_u32(l, v, w, 1, RW_MAX_ATTEMPTS, &rc->attempts);
        } else if (!strcmp(key, "on")) {
            rc_ = parse_fail_on(l, v, w,
                                RW_FAILON_CONNECT | RW_FAILON_RESET | RW_FAILON_TIMEOUT | RW_FAILON_502 |
                                    RW_FAILON_503 | RW_FAILON_504,
                                &rc->on);
        } else if (!strcmp(key, "backoff")) {
            rc_ = get_ms(l, v, w, 0, &rc->backoff_ms);
            if (rc_ == 0 && rc->backoff_ms > 60000)
                rc_ = fail(l, v, "%s: at most 60s", w);
        } else if (!strcmp(key, "budget")) {
            const char *s = "";
            unsigned pct = 0;
            int used = 0;
            rc_ = str_of(l, v, w, &s);
            if (rc_ == 0 && (sscanf(s, "%3u%%%n", &pct, &used) != 1 || s[used] != '\0' || pct > 100))
                rc_ = fail(l, v, "%s: invalid budget '%s' (expected a share like 20%%)", w, s);
            rc->budget_pct = pct;
        } else if (!strcmp(key, "budget_min")) {
            rc_ = get_u32(l, v, w, 0, 100000, &rc->budget_min);
        } else if (!strcmp(key, "retry_non_idempotent")) {
            rc_ = get_bool(l, v, w, &rc->non_idempotent);
        } else {
            rc_ = unknown_key(l, k, where, "retries", keys);
        }
        if (rc_)
            return -1;
    }
    return 0;
}

static int parse_discovery(loader *l, yaml_node_t *n, const char *where, rw_discovery_cfg *d)
{
    static const char keys[] = "dns, interval, resolver, weight, redis";
    char w[320];

    d->interval_ms = 5000;
    d->dns_weight = 1;
    if (is_null(n))
        return 0;
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "dns")) {
            const char *s = "";
            if ((rc = str_of(l, v, w, &s)) != 0)
                return -1;
            const char *colon = strrchr(s, ':');
            unsigned port = 0;
            int used = 0;
            if (colon == NULL || colon == s || sscanf(colon + 1, "%5u%n", &port, &used) != 1 ||
                colon[1 + used] != '\0' || port < 1 || port > 65535)
                return fail(l, v, "%s: '%s' must be NAME:PORT (e.g. billing.default.svc.cluster.local:8080)",
                            w, s);
            size_t hlen = (size_t)(colon - s);
            for (size_t i = 0; i < hlen; i++) {
                unsigned char c = (unsigned char)s[i];
                if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
                    return fail(l, v, "%s: '%.*s' is not a DNS name", w, (int)hlen, s);
            }
            if (hlen > 253)
                return fail(l, v, "%s: name too long (at most 253 bytes)", w);
            d->dns_name = dup_mem(l, v, s, hlen);
            if (d->dns_name == NULL)
                return -1;
            d->dns_port = (uint16_t)port;
        } else if (!strcmp(key, "interval")) {
            rc = get_ms(l, v, w, 100, &d->interval_ms);
        } else if (!strcmp(key, "resolver")) {
            rc = get_sockaddr(l, v, w, &d->resolver);
            d->has_resolver = rc == 0;
        } else if (!strcmp(key, "weight")) {
            rc = get_u32(l, v, w, 1, 1000, &d->dns_weight);
        } else if (!strcmp(key, "redis")) {
            rc = get_bool(l, v, w, &d->redis);
            if (rc == 0 && d->redis && l->cfg->redis.url == NULL)
                rc = fail(l, v, "%s: needs the top-level redis: (url)", w);
        } else {
            rc = unknown_key(l, k, where, "discovery", keys);
        }
        if (rc)
            return -1;
    }
    if (d->dns_name == NULL && !d->redis)
        return fail(l, n, "%s: needs dns: NAME:PORT or redis: true", where);
    return 0;
}

static int parse_service(loader *l, yaml_node_t *n, const char *where, rw_service_cfg *svc)
{
    static const char keys[] = "name, lb, hash_on, timeouts, max_conns, max_requests, keepalive, instances, "
                               "discovery, health_check, "
                               "outlier, retries, filters";
    static const char *const policies[] = {"round_robin", "least_conn", "p2c", "hash"};
    char w[300], iw[320];
    const yaml_node_t *hash_on = NULL, *instances = NULL, *discovery = NULL;

    svc->lb = RW_LB_ROUND_ROBIN;
    svc->hash_on = RW_HASH_IP;
    svc->connect_timeout_ms = 5000;
    svc->first_byte_timeout_ms = 60000;
    svc->total_timeout_ms = 0;
    svc->queue_timeout_ms = 0;
    svc->max_conns = 1024;
    svc->keepalive_max_idle = 64;
    svc->keepalive_idle_timeout_ms = 60000;
    svc->retries.attempts = 2;
    svc->retries.on = RW_FAILON_CONNECT;
    svc->retries.budget_pct = 20;
    svc->retries.budget_min = 3;
    svc->line = (int)line_of(n);
    if (check_map(l, n, where))
        return -1;

    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "name"))
            rc = get_name(l, v, w, &svc->name);
        else if (!strcmp(key, "lb"))
            rc = get_choice(l, v, w, "policy", policies, RW_ARRAY_LEN(policies), &svc->lb);
        else if (!strcmp(key, "hash_on")) {
            if (!is_null(v)) {
                hash_on = v;
                rc = parse_hash_on(l, v, w, svc);
            }
        } else if (!strcmp(key, "timeouts")) {
            if (!is_null(v) && (rc = check_map(l, v, w)) == 0) {
                MAP_EACH(v, tp)
                {
                    yaml_node_t *tk = node_at(l, tp->key), *tv = node_at(l, tp->value);
                    const char *tkey = scalar_text(tk);
                    wheref(iw, sizeof(iw), "%s.%s", w, tkey);
                    if (!strcmp(tkey, "connect"))
                        rc = get_ms(l, tv, iw, 1, &svc->connect_timeout_ms);
                    else if (!strcmp(tkey, "first_byte"))
                        rc = get_ms(l, tv, iw, 1, &svc->first_byte_timeout_ms);
                    else if (!strcmp(tkey, "total"))
                        rc = get_ms(l, tv, iw, 0, &svc->total_timeout_ms);
                    else if (!strcmp(tkey, "queue"))
                        rc = get_ms(l, tv, iw, 1, &svc->queue_timeout_ms);
                    else
                        rc = unknown_key(l, tk, w, "timeouts", "connect, first_byte, total, queue");
                    if (rc)
                        break;
                }
            }
        } else if (!strcmp(key, "max_conns")) {
            rc = get_u32(l, v, w, 0, 1000000, &svc->max_conns);
        } else if (!strcmp(key, "keepalive")) {
            if (!is_null(v) && (rc = check_map(l, v, w)) == 0) {
                MAP_EACH(v, kp)
                {
                    yaml_node_t *kk = node_at(l, kp->key), *kv = node_at(l, kp->value);
                    const char *kkey = scalar_text(kk);
                    wheref(iw, sizeof(iw), "%s.%s", w, kkey);
                    if (!strcmp(kkey, "max_idle"))
                        rc = get_u32(l, kv, iw, 0, 100000, &svc->keepalive_max_idle);
                    else if (!strcmp(kkey, "idle_timeout"))
                        rc = get_ms(l, kv, iw, 1, &svc->keepalive_idle_timeout_ms);
                    else
                        rc = unknown_key(l, kk, w, "keepalive", "max_idle, idle_timeout");
                    if (rc)
                        break;
                }
            }
        } else if (!strcmp(key, "instances")) {
            instances = v;
            if (is_null(v))
                continue;
            if (check_list(l, v, w, false))
                return -1;
            size_t len = SEQ_LEN(v);
            svc->instances = arena_array(l->arena, len, sizeof(*svc->instances));
            if (!svc->instances)
                return oom(l, v);
            for (size_t i = 0; i < len && rc == 0; i++) {
                yaml_node_t *it = list_item(l, v, i);
                wheref(iw, sizeof(iw), "%s[%zu]", w, i);
                if (!it)
                    return fail(l, v, "%s: missing entry", iw);
                rc = parse_instance(l, it, iw, &svc->instances[i]);
                for (size_t j = 0; j < i && rc == 0; j++) {
                    if (svc->instances[j].addr.len == svc->instances[i].addr.len &&
                        !memcmp(&svc->instances[j].addr.ss, &svc->instances[i].addr.ss,
                                svc->instances[i].addr.len))
                        rc = fail(l, it, "%s: %s is already instance %zu (%s)", iw, svc->instances[i].address,
                                  j, svc->instances[j].address);
                }
            }
            svc->ninstances = len;
        } else if (!strcmp(key, "health_check")) {
            rc = parse_health_check(l, v, w, &svc->health_check);
        } else if (!strcmp(key, "outlier")) {
            rc = parse_outlier(l, v, w, &svc->outlier);
        } else if (!strcmp(key, "retries")) {
            rc = parse_retries(l, v, w, &svc->retries);
        } else if (!strcmp(key, "discovery")) {
            discovery = v;
            rc = parse_discovery(l, v, w, &svc->discovery);
        } else if (!strcmp(key, "max_requests")) {
            rc = get_u32(l, v, w, 0, 10000000, &svc->max_requests);
        } else if (!strcmp(key, "filters")) {
            rc = parse_filters(l, v, w, &svc->filters, &svc->nfilters);
        } else {
            rc = unknown_key(l, k, where, "service", keys);
        }
        if (rc)
            return -1;
    }
    if (!svc->name)
        return fail(l, n, "%s: name is required", where);
    char owner[MAX_NAME_LEN + 16];
    snprintf(owner, sizeof(owner), "service.%s", svc->name);
    if (name_rate_limits(l, n, svc->filters, svc->nfilters, owner))
        return -1;
    if (hash_on && svc->lb != RW_LB_HASH)
        return fail(l, hash_on, "%s.hash_on: only applies with lb: hash", where);
    if ((!instances || is_null(instances) || svc->ninstances == 0) && (!discovery || is_null(discovery)))
        return fail(l, instances && !is_null(instances) ? instances : n,
                    "%s: needs at least one instance (or discovery:)", where);
    return 0;
}

static int parse_services(loader *l, yaml_node_t *n, strset *names)
{
    rw_config *cfg = l->cfg;
    char w[64];

    if (is_null(n))
        return 0;
    if (check_list(l, n, "services", false))
        return -1;
    size_t len = SEQ_LEN(n);
    cfg->services = arena_array(l->arena, len, sizeof(*cfg->services));
    if (!cfg->services)
        return oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(l, n, i);
        rw_service_cfg *svc = &cfg->services[i];
        wheref(w, sizeof(w), "services[%zu]", i);
        if (!it)
            return fail(l, n, "%s: missing entry", w);
        if (parse_service(l, it, w, svc))
            return -1;
        int old = 0, put = strset_put(names, svc->name, (int)i, &old);
        if (put < 0)
            return oom(l, it);
        if (put == 0)
            return fail(l, it, "%s: duplicate service name '%s' (also services[%d])", w, svc->name, old);
        cfg->nservices = i + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* consumers */

static int check_key(loader *l, const yaml_node_t *n, const char *where, char *key)
{
    if (!strncmp(key, "sha256:", 7)) {
        char *hex = key + 7;
        size_t len = strlen(hex);
        if (len != 64)
            return fail(l, n, "%s: a sha256: key needs 64 hex digits, got %zu characters", where, len);
        for (char *p = hex; *p; p++) {
            if (rw_hexval((unsigned char)*p) < 0)
                return fail(l, n, "%s: a sha256: key needs 64 hex digits", where);
            *p = (char)tolower((unsigned char)*p);
        }
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            return fail(l, n, "%s: a key may contain only visible ASCII characters", where);
    }
    return 0;
}

static int parse_consumer(loader *l, yaml_node_t *n, const char *where, rw_consumer_cfg *c,
                          const yaml_node_t **tier_node, const yaml_node_t **keys_node)
{
    static const char keys[] = "name, id, groups, tier, keys";
    char w[300], iw[320];

    c->tier_index = -1;
    c->line = (int)line_of(n);
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "name"))
            rc = get_name(l, v, w, &c->name);
        else if (!strcmp(key, "id")) {
            rc = get_string(l, v, w, &c->id);
            for (const char *q = c->id; rc == 0 && q && *q; q++) /* forwarded as X-Consumer-ID */
                if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
                    rc = fail(l, v, "%s: an id may contain only visible ASCII characters", w);
        } else if (!strcmp(key, "groups")) {
            rc = get_str_list(l, v, w, &c->groups, &c->ngroups);
            for (size_t i = 0; i < c->ngroups && rc == 0; i++)
                rc = check_name(l, list_item(l, v, i), item_where(iw, sizeof(iw), v, w, i), c->groups[i]);
        } else if (!strcmp(key, "tier")) {
            rc = get_name(l, v, w, &c->tier);
            *tier_node = v;
        } else if (!strcmp(key, "keys")) {
            rc = get_str_list(l, v, w, &c->keys, &c->nkeys);
            for (size_t i = 0; i < c->nkeys && rc == 0; i++)
                rc = check_key(l, list_item(l, v, i), item_where(iw, sizeof(iw), v, w, i), c->keys[i]);
            *keys_node = v;
        } else {
            rc = unknown_key(l, k, where, "consumer", keys);
        }
        if (rc)
            return -1;
    }
    if (!c->name)
        return fail(l, n, "%s: name is required", where);
    if (!c->id)
        c->id = c->name;
    return 0;
}

static int parse_consumers(loader *l, yaml_node_t *n)
{
    rw_config *cfg = l->cfg;
    strset names = {0}, ids = {0}, keys = {0};
    char w[64], kw[96], kiw[128];
    int rc = -1;

    if (is_null(n))
        return 0;
    if (check_list(l, n, "consumers", false))
        return -1;
    size_t len = SEQ_LEN(n);
    cfg->consumers = arena_array(l->arena, len, sizeof(*cfg->consumers));
    if (!cfg->consumers)
        return oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(l, n, i);
        rw_consumer_cfg *c = &cfg->consumers[i];
        const yaml_node_t *tier_node = NULL, *keys_node = NULL;
        int old = 0, put;
        wheref(w, sizeof(w), "consumers[%zu]", i);
        if (!it) {
            fail(l, n, "%s: missing entry", w);
            goto out;
        }
        if (parse_consumer(l, it, w, c, &tier_node, &keys_node))
            goto out;
        if ((put = strset_put(&names, c->name, (int)i, &old)) <= 0) {
            if (put < 0)
                oom(l, it);
            else
                fail(l, it, "%s: duplicate consumer name '%s' (also consumers[%d])", w, c->name, old);
            goto out;
        }
        if ((put = strset_put(&ids, c->id, (int)i, &old)) <= 0) {
            if (put < 0)
                oom(l, it);
            else
                fail(l, it, "%s: duplicate consumer id '%s' (also consumers[%d])", w, c->id, old);
            goto out;
        }
        if (c->tier) {
            for (size_t t = 0; t < cfg->ntiers; t++) {
                if (!strcmp(cfg->tiers[t].name, c->tier))
                    c->tier_index = (int)t;
            }
            if (c->tier_index < 0) {
                fail(l, tier_node, "%s.tier: unknown tier '%s'", w, c->tier);
                goto out;
            }
        }
        for (size_t k = 0; k < c->nkeys; k++) {
            if ((put = strset_put(&keys, c->keys[k], (int)i, &old)) <= 0) {
                const yaml_node_t *kn = list_item(l, (yaml_node_t *)keys_node, k);
                wheref(kw, sizeof(kw), "%s.keys", w);
                item_where(kiw, sizeof(kiw), keys_node, kw, k);
                if (put < 0)
                    oom(l, kn);
                else if ((size_t)old == i)
                    fail(l, kn, "%s: key is listed twice", kiw);
                else
                    fail(l, kn, "%s: key is already used by consumer '%s'", kiw, cfg->consumers[old].name);
                goto out;
            }
        }
        cfg->nconsumers = i + 1;
    }
    rc = 0;
out:
    strset_free(&names);
    strset_free(&ids);
    strset_free(&keys);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* routes */

static int parse_paths(loader *l, yaml_node_t *n, const char *where, rw_route_cfg *rt)
{
    static const char *const kinds[] = {"exact", "prefix", "regex"};
    char w[300], vw[320];

    if (is_null(n))
        return 0;
    if (check_list(l, n, where, false))
        return -1;
    size_t len = SEQ_LEN(n);
    if (len == 0)
        return fail(l, n, "%s: must not be empty (leave it out to match every path)", where);
    rt->paths = arena_array(l->arena, len, sizeof(*rt->paths));
    if (!rt->paths)
        return oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(l, n, i);
        rw_path_cfg *p = &rt->paths[i];
        wheref(w, sizeof(w), "%s[%zu]", where, i);
        if (!it)
            return fail(l, n, "%s: missing entry", w);
        if (check_map(l, it, w))
            return -1;
        if (MAP_LEN(it) != 1)
            return fail(l, it, "%s: expected exactly one of exact, prefix, regex", w);
        yaml_node_t *k = node_at(l, it->data.mapping.pairs.start[0].key);
        yaml_node_t *v = node_at(l, it->data.mapping.pairs.start[0].value);
        const char *key = scalar_text(k);
        size_t kind = 0;
        while (kind < RW_ARRAY_LEN(kinds) && strcmp(key, kinds[kind]) != 0)
            kind++;
        if (kind == RW_ARRAY_LEN(kinds))
            return unknown_key(l, k, w, "path", "exact, prefix or regex");
        wheref(vw, sizeof(vw), "%s.%s", w, key);
        p->kind = (int)kind;
        if (is_null(v))
            return fail(l, v, "%s: expected a string, got nothing", vw);
        if (get_string(l, v, vw, &p->value))
            return -1;
        if (kind == RW_PATH_REGEX) {
            if (compile_regex(l, v, vw, p->value, &p->re))
                return -1;
        } else if (normalise_path(l, v, vw, p->value)) {
            return -1;
        }
        rt->npaths = i + 1;
    }
    return 0;
}

/* headers / query predicates: Name: "v" | {regex: ".."} | {present: true} */
static int parse_kv_matches(loader *l, yaml_node_t *n, const char *where, bool is_header, rw_kv_match **out,
                            size_t *count)
{
    char w[300], vw[320];

    if (is_null(n))
        return 0;
    if (check_map(l, n, where))
        return -1;
    size_t len = MAP_LEN(n);
    rw_kv_match *arr = arena_array(l->arena, len, sizeof(*arr));
    if (!arr)
        return oom(l, n);
    size_t i = 0;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        rw_kv_match *m = &arr[i++];
        wheref(w, sizeof(w), "%s.%s", where, scalar_text(k));
        if (get_string(l, k, w, &m->name))
            return -1;
        if (is_header && check_token(l, k, w, "header name", m->name))
            return -1;
        if (v->type == YAML_MAPPING_NODE) {
            if (check_map(l, v, w))
                return -1;
            if (MAP_LEN(v) != 1)
                return fail(l, v, "%s: expected exactly one of regex, present", w);
            yaml_node_t *mk = node_at(l, v->data.mapping.pairs.start[0].key);
            yaml_node_t *mv = node_at(l, v->data.mapping.pairs.start[0].value);
            wheref(vw, sizeof(vw), "%s.%s", w, scalar_text(mk));
            if (!strcmp(scalar_text(mk), "regex")) {
                m->kind = RW_VALUE_REGEX;
                if (is_null(mv))
                    return fail(l, mv, "%s: expected a string, got nothing", vw);
                if (get_string(l, mv, vw, &m->value) || compile_regex(l, mv, vw, m->value, &m->re))
                    return -1;
            } else if (!strcmp(scalar_text(mk), "present")) {
                bool present = false;
                m->kind = RW_VALUE_PRESENT;
                if (is_null(mv))
                    return fail(l, mv, "%s: expected true, got nothing", vw);
                if (get_bool(l, mv, vw, &present))
                    return -1;
                if (!present)
                    return fail(l, mv, "%s: only 'present: true' is supported", vw);
            } else {
                return unknown_key(l, mk, w, is_header ? "header match" : "query match", "regex or present");
            }
        } else {
            const char *s = "";
            m->kind = RW_VALUE_EXACT;
            if (str_of(l, v, w, &s))
                return -1;
            if (is_header && check_field_value(l, v, w, s))
                return -1;
            m->value = dup_mem(l, v, s, strlen(s));
            if (!m->value)
                return -1;
        }
    }
    *out = arr;
    *count = len;
    return 0;
}

static int parse_respond(loader *l, yaml_node_t *n, const char *where, rw_respond_cfg *r)
{
    char w[300], hw[400];
    const yaml_node_t *status = NULL, *body = NULL;

    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "status")) {
            uint64_t st = 0;
            const char *s = "";
            if (is_null(v))
                continue;
            if (str_of(l, v, w, &s) || get_uint(l, v, w, 0, 999999, &st))
                return -1;
            if (st < 100 || st > 599)
                return fail(l, v, "%s: status %llu is outside 100..599", w, (unsigned long long)st);
            if (st < 200)
                return fail(l, v,
                            "%s: status %llu is informational; a respond route needs a final "
                            "status (200..599)",
                            w, (unsigned long long)st);
            r->status = (int)st;
            status = v;
        } else if (!strcmp(key, "headers")) {
            if (is_null(v))
                continue;
            if (check_map(l, v, w))
                return -1;
            r->headers = arena_array(l->arena, MAP_LEN(v), sizeof(*r->headers));
            if (!r->headers)
                return oom(l, v);
            MAP_EACH(v, hp)
            {
                yaml_node_t *hk = node_at(l, hp->key), *hv = node_at(l, hp->value);
                rw_kv *h = &r->headers[r->nheaders];
                const char *s = "";
                wheref(hw, sizeof(hw), "%s.%s", w, scalar_text(hk));
                if (get_string(l, hk, hw, &h->name) || check_token(l, hk, hw, "header name", h->name))
                    return -1;
                if (!strcasecmp(h->name, "Content-Length") || !strcasecmp(h->name, "Transfer-Encoding") ||
                    !strcasecmp(h->name, "Connection"))
                    return fail(l, hk, "%s: %s is set by ringway", hw, h->name);
                if (str_of(l, hv, hw, &s) || check_field_value(l, hv, hw, s))
                    return -1;
                if (!(h->value = dup_mem(l, hv, s, strlen(s))))
                    return -1;
                r->nheaders++;
            }
        } else if (!strcmp(key, "body")) {
            if (is_null(v))
                continue;
            if (want(l, v, YAML_SCALAR_NODE, w))
                return -1;
            if (v->data.scalar.length > MAX_BODY)
                return fail(l, v, "%s: body is too large (at most 1m)", w);
            /* the body may hold any bytes, NUL included: keep its length */
            r->body = dup_mem(l, v, scalar_text(v), v->data.scalar.length);
            if (!r->body)
                return -1;
            r->body_len = v->data.scalar.length;
            body = v;
        } else {
            return unknown_key(l, k, where, "respond", "status, headers, body");
        }
    }
    if (!status)
        return fail(l, n, "%s: status is required", where);
    if (body && r->body_len > 0 && (r->status == 204 || r->status == 304))
        return fail(l, body, "%s.body: a %d response has no body", where, r->status);
    return 0;
}

static int parse_methods(loader *l, yaml_node_t *n, const char *where, uint32_t *out)
{
    char w[300];
    const char *s = "";

    if (is_null(n))
        return 0;
    if (check_list(l, n, where, true))
        return -1;
    size_t len = list_len(n);
    if (len == 0)
        return fail(l, n, "%s: must not be empty (leave it out to match every method)", where);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(l, n, i);
        int m = RW_METHOD_GET;
        item_where(w, sizeof(w), n, where, i);
        if (!it)
            return fail(l, n, "%s: missing entry", w);
        if (str_of(l, it, w, &s))
            return -1;
        while (m < RW_METHOD__COUNT && strcmp(method_names[m], s) != 0)
            m++;
        if (m == RW_METHOD__COUNT)
            return fail(l, it,
                        "%s: unknown method '%s' (expected GET, HEAD, POST, PUT, DELETE, CONNECT, "
                        "OPTIONS, TRACE, PATCH)",
                        w, s);
        *out |= 1u << m;
    }
    return 0;
}

static int parse_rewrite(loader *l, yaml_node_t *n, const char *where, rw_route_cfg *rt)
{
    char w[300];
    const yaml_node_t *from = NULL, *to = NULL;

    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "from")) {
            if (get_string(l, v, w, &rt->rewrite_from))
                return -1;
            if (rt->rewrite_from && compile_regex(l, v, w, rt->rewrite_from, &rt->rewrite_re))
                return -1;
            from = rt->rewrite_from ? v : NULL;
        } else if (!strcmp(key, "to")) {
            if (get_string(l, v, w, &rt->rewrite_to))
                return -1;
            to = rt->rewrite_to ? v : NULL;
        } else {
            return unknown_key(l, k, where, "rewrite", "from, to");
        }
    }
    if (!from || !to)
        return fail(l, n, "%s: needs both from and to", where);
    /* "$0" is the whole match, "$1".."$9" groups, "$$" a literal '$' */
    for (const char *p = rt->rewrite_to; *p; p++) {
        if (p[0] == '$' && p[1] == '$') {
            p++;
        } else if (p[0] == '$' && p[1] >= '0' && p[1] <= '9') {
            unsigned g = (unsigned)(p[1] - '0');
            if (g > rt->rewrite_re->re_nsub)
                return fail(l, to, "%s.to: $%u does not name a group of the regex (it has %zu)", where, g,
                            rt->rewrite_re->re_nsub);
            p++;
        }
    }
    for (const unsigned char *p = (const unsigned char *)rt->rewrite_to; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f)
            return fail(l, to, "%s.to: must not contain spaces or control characters", where);
    }
    return 0;
}

static int parse_route(loader *l, yaml_node_t *n, size_t index, const char *where, rw_route_cfg *rt,
                       const strset *services)
{
    static const char keys[] = "name, hosts, methods, paths, headers, query, strip_path, "
                               "rewrite, preserve_host, service, respond, filters";
    char w[300], iw[320];
    const yaml_node_t *service = NULL, *strip = NULL, *rewrite = NULL, *preserve = NULL;

    rt->service_index = -1;
    rt->line = (int)line_of(n);
    if (check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc = 0;
        wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "name"))
            rc = get_name(l, v, w, &rt->name);
        else if (!strcmp(key, "hosts")) {
            rc = get_str_list(l, v, w, &rt->hosts, &rt->nhosts);
            if (rc == 0 && !is_null(v) && rt->nhosts == 0)
                rc = fail(l, v, "%s: must not be empty (leave it out to match every host)", w);
            for (size_t i = 0; i < rt->nhosts && rc == 0; i++)
                rc = check_host(l, list_item(l, v, i), item_where(iw, sizeof(iw), v, w, i), rt->hosts[i]);
        } else if (!strcmp(key, "methods"))
            rc = parse_methods(l, v, w, &rt->methods);
        else if (!strcmp(key, "paths"))
            rc = parse_paths(l, v, w, rt);
        else if (!strcmp(key, "headers"))
            rc = parse_kv_matches(l, v, w, true, &rt->headers, &rt->nheaders);
        else if (!strcmp(key, "query"))
            rc = parse_kv_matches(l, v, w, false, &rt->query, &rt->nquery);
        else if (!strcmp(key, "strip_path")) {
            rc = get_string(l, v, w, &rt->strip_path);
            if (rc == 0 && rt->strip_path) {
                strip = v;
                rc = normalise_path(l, v, w, rt->strip_path);
                size_t len = strlen(rt->strip_path);
                if (rc == 0 && rt->strip_path[len - 1] == '/')
                    rc = fail(l, v,
                              "%s: '%s' must not end with '/' (the rest of the path keeps "
                              "its leading '/')",
                              w, rt->strip_path);
            }
        } else if (!strcmp(key, "rewrite")) {
            if (!is_null(v)) {
                rewrite = v;
                rc = parse_rewrite(l, v, w, rt);
            }
        } else if (!strcmp(key, "preserve_host")) {
            rc = get_bool(l, v, w, &rt->preserve_host);
            preserve = rt->preserve_host ? v : NULL;
        } else if (!strcmp(key, "service")) {
            rc = get_name(l, v, w, &rt->service);
            service = rt->service ? v : NULL;
        } else if (!strcmp(key, "respond")) {
            if (!is_null(v)) {
                rt->has_respond = true;
                rc = parse_respond(l, v, w, &rt->respond);
            }
        } else if (!strcmp(key, "filters"))
            rc = parse_filters(l, v, w, &rt->filters, &rt->nfilters);
        else
            rc = unknown_key(l, k, where, "route", keys);
        if (rc)
            return -1;
    }

    if (!rt->name) {
        char buf[32];
        snprintf(buf, sizeof(buf), "route-%zu", index);
        if (!(rt->name = dup_mem(l, n, buf, strlen(buf))))
            return -1;
    }
    char owner[MAX_NAME_LEN + 16];
    snprintf(owner, sizeof(owner), "route.%s", rt->name);
    if (name_rate_limits(l, n, rt->filters, rt->nfilters, owner))
        return -1;
    if (rt->service && rt->has_respond)
        return fail(l, n, "%s: has both service and respond (choose one)", where);
    if (!rt->service && !rt->has_respond)
        return fail(l, n, "%s: needs either service or respond", where);
    if (rt->service) {
        int idx = strset_get(services, rt->service);
        if (idx < 0)
            return fail(l, service, "%s.service: unknown service '%s'", where, rt->service);
        rt->service_index = idx;
    } else {
        const yaml_node_t *bad = strip ? strip : rewrite ? rewrite : preserve;
        const char *what = strip ? "strip_path" : rewrite ? "rewrite" : "preserve_host";
        if (bad)
            return fail(l, bad, "%s.%s: only applies to routes with a service", where, what);
    }
    return 0;
}

static int parse_routes(loader *l, yaml_node_t *n, const strset *services)
{
    rw_config *cfg = l->cfg;
    strset names = {0};
    char w[64];
    int rc = -1;

    if (is_null(n))
        return 0;
    if (check_list(l, n, "routes", false))
        return -1;
    size_t len = SEQ_LEN(n);
    cfg->routes = arena_array(l->arena, len, sizeof(*cfg->routes));
    if (!cfg->routes)
        return oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(l, n, i);
        rw_route_cfg *rt = &cfg->routes[i];
        int old = 0, put;
        wheref(w, sizeof(w), "routes[%zu]", i);
        if (!it) {
            fail(l, n, "%s: missing entry", w);
            goto out;
        }
        if (parse_route(l, it, i, w, rt, services))
            goto out;
        if ((put = strset_put(&names, rt->name, (int)i, &old)) <= 0) {
            if (put < 0)
                oom(l, it);
            else
                fail(l, it, "%s: duplicate route name '%s' (also routes[%d])", w, rt->name, old);
            goto out;
        }
        cfg->nroutes = i + 1;
    }
    rc = 0;
out:
    strset_free(&names);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The document root. */

enum {
    K_LISTEN,
    K_ADMIN,
    K_WORKERS,
    K_IO,
    K_MAX_CONNS,
    K_DRAIN_TIMEOUT,
    K_SHUTDOWN_DELAY,
    K_WATCH_CONFIG,
    K_HTTP,
    K_REDIS,
    K_TIERS,
    K_SERVICES,
    K_CONSUMERS,
    K_ROUTES,
    K_FILTERS,
    K_TRUSTED,
    K_SHARD_KEYS,
    K_REQUEST_ID,
    K_TRACE_CONTEXT,
    K_METRICS_LISTEN,
    K__COUNT
};

static const char *const top_keys[K__COUNT] = {
    "listen",
    "admin",
    "workers",
    "io",
    "max_conns",
    "drain_timeout",
    "shutdown_delay",
    "watch_config",
    "http",
    "redis",
    "tiers",
    "services",
    "consumers",
    "routes",
    "filters",
    "trusted_proxies",
    "rate_limit_shard_keys",
    "request_id",
    "trace_context",
    "metrics_listen",
};

/* admin: "ADDR:PORT", or {address: "ADDR:PORT", token_env: NAME}. */
static int parse_admin(loader *l, yaml_node_t *n)
{
    rw_config *cfg = l->cfg;
    if (n->type == YAML_SCALAR_NODE)
        return get_sockaddr(l, n, "admin", &cfg->admin);
    if (check_map(l, n, "admin"))
        return -1;
    yaml_node_t *addr = NULL;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc = 0;
        if (!strcmp(key, "address")) {
            addr = v;
        } else if (!strcmp(key, "token_env")) {
            rc = get_string(l, v, "admin.token_env", &cfg->admin_token_env);
            if (rc == 0 && cfg->admin_token_env != NULL) {
                const char *t = getenv(cfg->admin_token_env);
                if (t == NULL || strlen(t) < 16)
                    rc = fail(l, v, "admin.token_env: $%s %s (at least 16 characters)", cfg->admin_token_env,
                              t == NULL ? "is not set" : "is too short");
                else if ((cfg->admin_token = dup_mem(l, v, t, strlen(t))) == NULL)
                    rc = -1;
            }
        } else {
            rc = unknown_key(l, k, "admin", "admin", "address, token_env");
        }
        if (rc)
            return -1;
    }
    if (addr == NULL)
        return fail(l, n, "admin: address is required");
    return get_sockaddr(l, addr, "admin.address", &cfg->admin);
}

/* request_id: {header: NAME, enabled: BOOL} */
static int parse_request_id(loader *l, yaml_node_t *n)
{
    rw_request_id_cfg *r = &l->cfg->request_id;
    if (is_null(n))
        return 0;
    if (check_map(l, n, "request_id"))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = node_at(l, pr->key), *v = node_at(l, pr->value);
        const char *key = scalar_text(k);
        int rc;
        if (!strcmp(key, "header")) {
            char *h = NULL;
            rc = get_string(l, v, "request_id.header", &h);
            if (rc == 0 && h != NULL) {
                rc = check_token(l, v, "request_id.header", "header name", h);
                if (rc == 0 && (strlen(h) > 64 || rw_http_is_fixed_hop_by_hop((rw_str){h, strlen(h)}) ||
                                !strcasecmp(h, "host") || !strcasecmp(h, "content-length")))
                    rc = fail(l, v, "request_id.header: '%s' cannot carry the request id", h);
                if (rc == 0) {
                    r->header = h;
                    r->header_len = strlen(h);
                }
            }
        } else if (!strcmp(key, "enabled")) {
            rc = get_bool(l, v, "request_id.enabled", &r->enabled);
        } else {
            rc = unknown_key(l, k, "request_id", "request_id", "header, enabled");
        }
        if (rc)
            return -1;
    }
    return 0;
}

static void set_defaults(rw_config *cfg)
{
    cfg->request_id.header = (char *)"X-Request-Id";
    cfg->request_id.header_len = 12;
    cfg->request_id.enabled = true;
    cfg->trace_context = true;
    cfg->workers = 0;
    cfg->io = RW_IO_AUTO;
    cfg->max_conns = 65536;
    cfg->drain_timeout_ms = 30000;
    cfg->http.client_header_timeout_ms = 10000;
    cfg->http.client_body_timeout_ms = 60000;
    cfg->http.keepalive_timeout_ms = 75000;
    cfg->http.send_timeout_ms = 60000;
    cfg->http.max_header_bytes = 16384;
    cfg->http.max_request_line = 8192;
    cfg->http.max_body_bytes = 10u << 20;
    cfg->http.max_headers = 100;
    cfg->redis.sync_interval_ms = 100;
    cfg->redis.on_failure = RW_REDIS_LOCAL;
    cfg->rate_limit_shard_keys = 16384;
}

static int parse_root(loader *l, yaml_node_t *root)
{
    static const char *const io_modes[] = {"auto", "uring", "epoll"};
    rw_config *cfg = l->cfg;
    yaml_node_t *v[K__COUNT] = {0};
    char expected[320] = "";
    strset services = {0};
    int rc = -1;

    if (root->type != YAML_MAPPING_NODE)
        return fail(l, root, "the top level must be a mapping (listen:, services:, routes:, ...)");
    if (check_map(l, root, ""))
        return -1;
    for (size_t i = 0; i < K__COUNT; i++) {
        strcat(expected, i ? ", " : "");
        strcat(expected, top_keys[i]);
    }
    MAP_EACH(root, pr)
    {
        yaml_node_t *k = node_at(l, pr->key);
        size_t i = 0;
        while (i < K__COUNT && strcmp(top_keys[i], scalar_text(k)) != 0)
            i++;
        if (i == K__COUNT)
            return unknown_key(l, k, "", "", expected);
        v[i] = node_at(l, pr->value);
    }

    /* fixed order, so references (tier, service) resolve as they are read */
    if (v[K_LISTEN] && parse_listen(l, v[K_LISTEN]))
        goto out;
    if (cfg->nlisten == 0) {
        rw_sockaddr *def = arena_alloc(l->arena, sizeof(*def));
        if (!def) {
            oom(l, root);
            goto out;
        }
        rw_parse_sockaddr("0.0.0.0:8080", def);
        cfg->listen = def;
        cfg->nlisten = 1;
    }
    if (v[K_ADMIN] && !is_null(v[K_ADMIN])) {
        if (parse_admin(l, v[K_ADMIN]))
            goto out;
        cfg->has_admin = true;
        for (size_t i = 0; i < cfg->nlisten; i++) {
            if (addr_conflict(&cfg->admin, &cfg->listen[i])) {
                fail(l, v[K_ADMIN], "admin: %s overlaps listen address %s", cfg->admin.text,
                     cfg->listen[i].text);
                goto out;
            }
        }
    }
    if (v[K_METRICS_LISTEN] && !is_null(v[K_METRICS_LISTEN])) {
        if (get_sockaddr(l, v[K_METRICS_LISTEN], "metrics_listen", &cfg->metrics_listen))
            goto out;
        cfg->has_metrics_listen = true;
        for (size_t i = 0; i < cfg->nlisten; i++) {
            if (addr_conflict(&cfg->metrics_listen, &cfg->listen[i]) ||
                (cfg->has_admin && addr_conflict(&cfg->metrics_listen, &cfg->admin))) {
                fail(l, v[K_METRICS_LISTEN], "metrics_listen: %s overlaps a listen or admin address",
                     cfg->metrics_listen.text);
                goto out;
            }
        }
    }
    if (v[K_WORKERS] && !is_null(v[K_WORKERS]) && parse_workers(l, v[K_WORKERS]))
        goto out;
    if (v[K_IO] && get_choice(l, v[K_IO], "io", "io mode", io_modes, 3, &cfg->io))
        goto out;
    if (v[K_MAX_CONNS] && get_u32(l, v[K_MAX_CONNS], "max_conns", 1, 10000000, &cfg->max_conns))
        goto out;
    if (v[K_DRAIN_TIMEOUT] && get_ms(l, v[K_DRAIN_TIMEOUT], "drain_timeout", 0, &cfg->drain_timeout_ms))
        goto out;
    if (v[K_SHUTDOWN_DELAY] && get_ms(l, v[K_SHUTDOWN_DELAY], "shutdown_delay", 0, &cfg->shutdown_delay_ms))
        goto out;
    if (v[K_WATCH_CONFIG] && get_bool(l, v[K_WATCH_CONFIG], "watch_config", &cfg->watch_config))
        goto out;
    if (v[K_REQUEST_ID] && parse_request_id(l, v[K_REQUEST_ID]))
        goto out;
    if (v[K_TRACE_CONTEXT] && get_bool(l, v[K_TRACE_CONTEXT], "trace_context", &cfg->trace_context))
        goto out;
    if (v[K_HTTP] && parse_http(l, v[K_HTTP]))
        goto out;
    if (v[K_REDIS] && parse_redis(l, v[K_REDIS]))
        goto out;
    if (v[K_TIERS] && parse_tiers(l, v[K_TIERS]))
        goto out;
    if (v[K_SERVICES] && parse_services(l, v[K_SERVICES], &services))
        goto out;
    if (v[K_CONSUMERS] && parse_consumers(l, v[K_CONSUMERS]))
        goto out;
    if (v[K_TRUSTED] &&
        get_cidr_list(l, v[K_TRUSTED], "trusted_proxies", &cfg->trusted_proxies, &cfg->ntrusted_proxies))
        goto out;
    if (v[K_SHARD_KEYS] &&
        get_u32(l, v[K_SHARD_KEYS], "rate_limit_shard_keys", 64, 1u << 24, &cfg->rate_limit_shard_keys))
        goto out;
    if (v[K_FILTERS] && (parse_filters(l, v[K_FILTERS], "filters", &cfg->filters, &cfg->nfilters) ||
                         name_rate_limits(l, v[K_FILTERS], cfg->filters, cfg->nfilters, "global")))
        goto out;
    if (v[K_ROUTES] && parse_routes(l, v[K_ROUTES], &services))
        goto out;
    rc = 0;
out:
    strset_free(&services);
    return rc;
}

/* Line (1-based) of byte offset off in text. */
static size_t line_at_offset(const char *text, size_t len, size_t off)
{
    size_t line = 1;
    for (size_t i = 0; i < off && i < len; i++)
        line += text[i] == '\n';
    return line;
}

static int yaml_failure(loader *l, const yaml_parser_t *p, const char *text, size_t len)
{
    const char *problem = p->problem ? p->problem : "invalid document";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return fail_line(l, 1, "out of memory while parsing YAML");
    case YAML_READER_ERROR:
        return fail_line(l, line_at_offset(text, len, p->problem_offset), "YAML syntax error: %s", problem);
    default:
        if (p->context)
            return fail_line(l, p->problem_mark.line + 1, "YAML syntax error: %s %s (line %zu)", problem,
                             p->context, p->context_mark.line + 1);
        return fail_line(l, p->problem_mark.line + 1, "YAML syntax error: %s", problem);
    }
}

int rw_config_load_string(const char *yaml, size_t len, const char *name, rw_config **out, char *err,
                          size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool parser_ok = false, doc_ok = false;
    rw_arena *arena = NULL;
    loader l = {.name = name ? name : "<string>", .err = err, .errlen = errlen};
    int rc = -1;

    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return fail_line(&l, 1, "no place to store the config");
    *out = NULL;
    if (!yaml)
        len = 0;
    if (len > MAX_FILE_SIZE)
        return fail_line(&l, 1, "configuration is too large (at most 16m)");

    arena = calloc(1, sizeof(*arena));
    if (!arena)
        return fail_line(&l, 1, "out of memory");
    l.arena = arena;
    if (!yaml_parser_initialize(&parser)) {
        fail_line(&l, 1, "out of memory");
        goto out;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_failure(&l, &parser, yaml, len);
        goto out;
    }
    doc_ok = true;
    l.doc = &doc;

    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || is_null(root)) {
        fail_line(&l, root ? line_of(root) : 1, "empty configuration");
        goto out;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_failure(&l, &parser, yaml, len);
        goto out;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    size_t extra_line = extra_root ? line_of(extra_root) : 0;
    yaml_document_delete(&extra);
    if (extra_root) {
        fail_line(&l, extra_line, "only one YAML document is allowed");
        goto out;
    }

    rw_config *cfg = arena_alloc(arena, sizeof(*cfg));
    if (!cfg || !(cfg->source = dup_mem(&l, root, l.name, strlen(l.name)))) {
        fail_line(&l, 1, "out of memory");
        goto out;
    }
    cfg->arena = arena;
    l.cfg = cfg;
    set_defaults(cfg);
    if (parse_root(&l, root) != 0)
        goto out;
    *out = cfg;
    arena = NULL; /* owned by *out now */
    rc = 0;
out:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    arena_destroy(arena);
    if (rc != 0 && !l.failed)
        fail_line(&l, 1, "invalid configuration");
    return rc;
}

int rw_config_load_file(const char *path, rw_config **out, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc;

    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!path) {
        if (err && errlen)
            snprintf(err, errlen, "no configuration file given");
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    const char *why = NULL;
    if (fstat(fd, &st) == -1)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_size > (off_t)MAX_FILE_SIZE)
        why = "too large (at most 16m)";
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, why);
        close(fd);
        return -1;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size + 1 - len);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            if (err && errlen)
                snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            close(fd);
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > (size_t)st.st_size) { /* grew while we read */
            if (err && errlen)
                snprintf(err, errlen, "%s: changed while being read", path);
            close(fd);
            free(buf);
            return -1;
        }
    }
    close(fd);
    rc = rw_config_load_string(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}

void rw_config_free(rw_config *cfg)
{
    if (cfg)
        arena_destroy(cfg->arena);
}
