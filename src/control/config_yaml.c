/* config_yaml.c - the configuration loader's machinery: the arena the
 * config lives in, libyaml node helpers, "file:line: message" error
 * reporting, the work budget that bounds alias fan-out, the readers of scalar
 * values and lists shared by every section, and the mapping walker that reads
 * a mapping by its key table (rw__cf_map_parse). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "ringway/common.h"

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

struct rw_arena {
    arena_chunk *chunks; /* head is the chunk small allocations bump in */
    arena_regex *regexes;
};

rw_arena *rw__cf_arena_new(void)
{
    return calloc(1, sizeof(rw_arena));
}

void *rw__cf_alloc(rw_arena *a, size_t n)
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

void *rw__cf_array(rw_arena *a, size_t count, size_t size)
{
    if (count != 0 && size > SIZE_MAX / 4 / count)
        return NULL;
    return rw__cf_alloc(a, count * size);
}

void rw__cf_arena_destroy(rw_arena *a)
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
static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Inserts key -> val. Returns 1 when inserted, 0 when key was there (its value
 * in *old), -1 when out of memory. The set borrows key. */
int rw__cf_strset_put(rw_cf_strset *s, const char *key, int val, int *old)
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
int rw__cf_strset_get(const rw_cf_strset *s, const char *key)
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

void rw__cf_strset_free(rw_cf_strset *s)
{
    free(s->keys);
    free(s->vals);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------------ */
/* Errors and node helpers. */

#define WORK_MAX 2000000u /* nodes visited; bounds alias fan-out */
#define MAX_LIST 100000u  /* entries in any one list or mapping */
#define MAX_REGEX_LEN 4096

static void errorv(rw_cf_loader *l, size_t line, const char *fmt, va_list ap)
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

__attribute__((format(printf, 3, 4))) int rw__cf_fail_line(rw_cf_loader *l, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errorv(l, line, fmt, ap);
    va_end(ap);
    return -1;
}

size_t rw__cf_line_of(const yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 1;
}

__attribute__((format(printf, 3, 4))) int rw__cf_fail(rw_cf_loader *l, const yaml_node_t *n, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    errorv(l, rw__cf_line_of(n), fmt, ap);
    va_end(ap);
    return -1;
}

int rw__cf_oom(rw_cf_loader *l, const yaml_node_t *n)
{
    return rw__cf_fail(l, n, "out of memory");
}

/* Formats a path like "routes[3].paths[0]" into buf. */
__attribute__((format(printf, 3, 4))) const char *rw__cf_wheref(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return buf;
}

yaml_node_t *rw__cf_node_at(rw_cf_loader *l, int index)
{
    return yaml_document_get_node(l->doc, index);
}

const char *rw__cf_scalar_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain scalar spelled like YAML's null ("", "~", "null"): "not set". */
bool rw__cf_is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = rw__cf_scalar_text(n);
    return n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Describes a node for "expected X, got Y" messages. */
const char *rw__cf_describe(const yaml_node_t *n, char *buf, size_t cap)
{
    if (rw__cf_is_null(n))
        return "nothing";
    switch (n->type) {
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SCALAR_NODE: {
        size_t len = n->data.scalar.length;
        int shown = len > 40 ? 40 : (int)len;
        snprintf(buf, cap, "'%.*s%s'", shown, rw__cf_scalar_text(n), len > 40 ? "..." : "");
        return buf;
    }
    default:
        return "nothing";
    }
}

int rw__cf_want(rw_cf_loader *l, const yaml_node_t *n, yaml_node_type_t type, const char *where)
{
    char b[64];
    const char *what = type == YAML_MAPPING_NODE    ? "a mapping"
                       : type == YAML_SEQUENCE_NODE ? "a list"
                                                    : "a string";

    if (n->type == type && (type != YAML_SCALAR_NODE || !rw__cf_is_null(n)))
        return 0;
    return rw__cf_fail(l, n, "%s: expected %s, got %s", where, what, rw__cf_describe(n, b, sizeof(b)));
}

static int spend(rw_cf_loader *l, const yaml_node_t *n, size_t units)
{
    if (units > MAX_LIST)
        return rw__cf_fail(l, n, "too many entries (%zu; at most %u)", units, MAX_LIST);
    l->work += units + 1;
    if (l->work > WORK_MAX)
        return rw__cf_fail(l, n, "configuration too large (too many nodes, or aliases expanding too far)");
    return 0;
}

/* Borrows a scalar's text; rejects other node kinds and embedded NUL bytes. */
int rw__cf_str_of(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char **out)
{
    if (rw__cf_want(l, n, YAML_SCALAR_NODE, where))
        return -1;
    if (strlen(rw__cf_scalar_text(n)) != n->data.scalar.length)
        return rw__cf_fail(l, n, "%s: contains a NUL byte", where);
    *out = rw__cf_scalar_text(n);
    return 0;
}

char *rw__cf_dup_mem(rw_cf_loader *l, const yaml_node_t *n, const char *s, size_t len)
{
    char *p = rw__cf_alloc(l->arena, len + 1);
    if (!p) {
        rw__cf_oom(l, n);
        return NULL;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* Copies a string value into the arena. A null value leaves *out unchanged. */
int rw__cf_get_string(rw_cf_loader *l, const yaml_node_t *n, const char *where, char **out)
{
    const char *s = "";

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (*s == '\0')
        return rw__cf_fail(l, n, "%s: must not be empty", where);
    char *p = rw__cf_dup_mem(l, n, s, strlen(s));
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
int rw__cf_check_name(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > MAX_NAME_LEN)
        return rw__cf_fail(l, n, "%s: a name must have 1 to %d characters", where, MAX_NAME_LEN);
    for (size_t i = 0; i < len; i++) {
        if (!name_char((unsigned char)s[i]))
            return rw__cf_fail(l, n, "%s: invalid name '%s' (use letters, digits, '-', '_' and '.')", where,
                               s);
    }
    return 0;
}

int rw__cf_get_name(rw_cf_loader *l, const yaml_node_t *n, const char *where, char **out)
{
    if (rw__cf_get_string(l, n, where, out))
        return -1;
    return *out ? rw__cf_check_name(l, n, where, *out) : 0;
}

int rw__cf_get_uint(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    const char *s = "";
    uint64_t v = 0;
    char b[64];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (*s == '\0' || strlen(s) > 19)
        goto bad;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max)
        return rw__cf_fail(l, n, "%s: %s is out of range (%llu..%llu)", where, s, (unsigned long long)min,
                           (unsigned long long)max);
    *out = v;
    return 0;
bad:
    return rw__cf_fail(l, n, "%s: expected a whole number, got %s", where, rw__cf_describe(n, b, sizeof(b)));
}

int rw__cf_get_u32(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint32_t min, uint32_t max,
                   uint32_t *out)
{
    uint64_t v = *out;
    if (rw__cf_get_uint(l, n, where, min, max, &v))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int rw__cf_get_bool(rw_cf_loader *l, const yaml_node_t *n, const char *where, bool *out)
{
    const char *s = "";
    char b[64];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return rw__cf_fail(l, n, "%s: expected true or false, got %s", where,
                           rw__cf_describe(n, b, sizeof(b)));
    return 0;
}

/* A duration in milliseconds that must fit uint32_t and be at least min_ms. */
int rw__cf_get_ms(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint32_t min_ms, uint32_t *out)
{
    const char *s = "";
    uint64_t v;

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (rw_parse_duration_ms(s, &v) != 0)
        return rw__cf_fail(l, n, "%s: invalid duration '%s' (expected e.g. 250ms, 10s, 5m, 1h)", where, s);
    if (v > UINT32_MAX)
        return rw__cf_fail(l, n, "%s: duration '%s' is too long (at most 1193h)", where, s);
    if (v < min_ms)
        return rw__cf_fail(l, n, "%s: duration '%s' is too short (at least %ums)", where, s, min_ms);
    *out = (uint32_t)v;
    return 0;
}

int rw__cf_get_size(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    const char *s = "";
    uint64_t v;

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (rw_parse_size(s, &v) != 0)
        return rw__cf_fail(l, n, "%s: invalid size '%s' (expected e.g. 512, 16k, 10m, 1g)", where, s);
    if (v < min || v > max)
        return rw__cf_fail(l, n, "%s: size '%s' is out of range (%llu..%llu bytes)", where, s,
                           (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

/* One of a fixed set of words; what names the kind ("policy", "mode"). */
int rw__cf_get_choice(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *what,
                      const char *const *names, size_t count, int *out)
{
    const char *s = "";
    char expected[160] = "";
    size_t off = 0;

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_str_of(l, n, where, &s))
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
    return rw__cf_fail(l, n, "%s: unknown %s '%s' (expected %s)", where, what, s, expected);
}

/* Checks n is a mapping whose keys are distinct, non-empty strings. */
int rw__cf_check_map(rw_cf_loader *l, const yaml_node_t *n, const char *where)
{
    if (rw__cf_want(l, n, YAML_MAPPING_NODE, where) || spend(l, n, MAP_LEN(n)))
        return -1;

    size_t count = MAP_LEN(n);
    rw_cf_strset seen = {0};
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const yaml_node_t *k = rw__cf_node_at(l, n->data.mapping.pairs.start[i].key);
        const char *s = "";
        char b[64];
        if (!k || k->type != YAML_SCALAR_NODE || rw__cf_is_null(k)) {
            rc = rw__cf_fail(l, k ? k : n, "%s%skeys must be strings, got %s", where, *where ? ": " : "",
                             k ? rw__cf_describe(k, b, sizeof(b)) : "nothing");
            break;
        }
        if (rw__cf_str_of(l, k, *where ? where : "top-level key", &s)) {
            rc = -1;
            break;
        }
        if (*s == '\0') {
            rc = rw__cf_fail(l, k, "%s%skeys must not be empty", where, *where ? ": " : "");
            break;
        }
        if (count <= 16) {
            for (size_t j = 0; j < i; j++) {
                const yaml_node_t *o = rw__cf_node_at(l, n->data.mapping.pairs.start[j].key);
                if (strcmp(rw__cf_scalar_text(o), s) == 0) {
                    rc = rw__cf_fail(l, k, "%s%sduplicate key '%s'", where, *where ? ": " : "", s);
                    break;
                }
            }
        } else {
            int put = rw__cf_strset_put(&seen, s, 0, NULL);
            if (put < 0)
                rc = rw__cf_oom(l, k);
            else if (put == 0)
                rc = rw__cf_fail(l, k, "%s%sduplicate key '%s'", where, *where ? ": " : "", s);
        }
    }
    rw__cf_strset_free(&seen);
    return rc;
}

int rw__cf_unknown_key(rw_cf_loader *l, const yaml_node_t *k, const char *where, const char *ctx,
                       const char *expected)
{
    if (*where == '\0')
        return rw__cf_fail(l, k, "unknown key '%s' at top level (expected %s)", rw__cf_scalar_text(k),
                           expected);
    return rw__cf_fail(l, k, "%s: unknown key '%s' in %s (expected %s)", where, rw__cf_scalar_text(k), ctx,
                       expected);
}

/* A list of strings may also be written as one string: "x" means ["x"]. */
int rw__cf_check_list(rw_cf_loader *l, const yaml_node_t *n, const char *where, bool scalar_ok)
{
    char b[64];

    if (n->type == YAML_SEQUENCE_NODE)
        return spend(l, n, SEQ_LEN(n));
    if (scalar_ok && n->type == YAML_SCALAR_NODE && !rw__cf_is_null(n))
        return 0;
    return rw__cf_fail(l, n, "%s: expected a list, got %s", where, rw__cf_describe(n, b, sizeof(b)));
}

size_t rw__cf_list_len(const yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE ? SEQ_LEN(n) : 1;
}

yaml_node_t *rw__cf_list_item(rw_cf_loader *l, yaml_node_t *n, size_t i)
{
    return n->type == YAML_SEQUENCE_NODE ? rw__cf_node_at(l, n->data.sequence.items.start[i]) : n;
}

const char *rw__cf_item_where(char *buf, size_t cap, const yaml_node_t *list, const char *where, size_t i)
{
    if (list->type != YAML_SEQUENCE_NODE)
        return rw__cf_wheref(buf, cap, "%s", where);
    return rw__cf_wheref(buf, cap, "%s[%zu]", where, i);
}

/* Reads a list (or single string) of strings into an arena array. */
int rw__cf_get_str_list(rw_cf_loader *l, yaml_node_t *n, const char *where, char ***out, size_t *count)
{
    char w[256];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, where, true))
        return -1;
    size_t len = rw__cf_list_len(n);
    char **arr = rw__cf_array(l->arena, len, sizeof(*arr));
    if (!arr)
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        rw__cf_item_where(w, sizeof(w), n, where, i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", w);
        if (rw__cf_is_null(it))
            return rw__cf_fail(l, it, "%s: expected a string, got nothing", w);
        if (rw__cf_get_string(l, it, w, &arr[i]))
            return -1;
    }
    *out = arr;
    *count = len;
    return 0;
}

int rw__cf_compile_regex(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *src,
                         regex_t **out)
{
    if (strlen(src) > MAX_REGEX_LEN)
        return rw__cf_fail(l, n, "%s: regex is too long (at most %d characters)", where, MAX_REGEX_LEN);
    regex_t *re = rw__cf_alloc(l->arena, sizeof(*re));
    arena_regex *node = rw__cf_alloc(l->arena, sizeof(*node));
    if (!re || !node)
        return rw__cf_oom(l, n);
    int rc = regcomp(re, src, REG_EXTENDED);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        return rw__cf_fail(l, n, "%s: invalid regex '%s': %s", where, src, msg);
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

int rw__cf_check_token(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *what,
                       const char *s)
{
    if (*s == '\0')
        return rw__cf_fail(l, n, "%s: %s must not be empty", where, what);
    for (const char *p = s; *p; p++) {
        if (!is_tchar((unsigned char)*p))
            return rw__cf_fail(l, n, "%s: invalid %s '%s'", where, what, s);
    }
    return 0;
}

/* A header value we would send or compare: visible ASCII, space, tab, obs-text. */
int rw__cf_check_field_value(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return rw__cf_fail(l, n, "%s: header value contains a control character", where);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Mapping tables. */

int rw__cf_key_u32(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    return rw__cf_get_u32(l, v, where, (uint32_t)key->min, (uint32_t)key->max,
                          RW_CF_FIELD(obj, key, uint32_t));
}

int rw__cf_key_ms(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    return rw__cf_get_ms(l, v, where, (uint32_t)key->min, RW_CF_FIELD(obj, key, uint32_t));
}

int rw__cf_key_size(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    return rw__cf_get_size(l, v, where, key->min, key->max, RW_CF_FIELD(obj, key, uint64_t));
}

int rw__cf_key_bool(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    return rw__cf_get_bool(l, v, where, RW_CF_FIELD(obj, key, bool));
}

int rw__cf_key_choice(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    const rw_cf_choice *c = key->arg;
    return rw__cf_get_choice(l, v, where, c->what, c->names, c->count, RW_CF_FIELD(obj, key, int));
}

int rw__cf_key_string(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    return rw__cf_get_string(l, v, where, RW_CF_FIELD(obj, key, char *));
}

int rw__cf_key_name(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    return rw__cf_get_name(l, v, where, RW_CF_FIELD(obj, key, char *));
}

int rw__cf_key_str_list(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    size_t *count = (size_t *)(void *)((char *)obj + key->count);
    return rw__cf_get_str_list(l, v, where, RW_CF_FIELD(obj, key, char **), count);
}

int rw__cf_key_map(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    if (rw__cf_is_null(v))
        return 0;
    return rw__cf_map_parse(l, key->arg, v, where, (char *)obj + key->offset, NULL);
}

yaml_node_t *rw__cf_seen(const rw_cf_map *m, yaml_node_t *const *seen, const char *name)
{
    for (size_t i = 0; i < m->nkeys; i++) {
        if (strcmp(m->keys[i].name, name) == 0)
            return seen[i];
    }
    return NULL;
}

void rw__cf_map_defaults(const rw_cf_map *m, void *obj)
{
    for (size_t i = 0; i < m->nkeys; i++) {
        const rw_cf_key *k = &m->keys[i];
        switch (k->type) {
        case RW_CF_T_U32:
            *RW_CF_FIELD(obj, k, uint32_t) = (uint32_t)k->def;
            break;
        case RW_CF_T_U64:
            *RW_CF_FIELD(obj, k, uint64_t) = k->def;
            break;
        case RW_CF_T_BOOL:
            *RW_CF_FIELD(obj, k, bool) = k->def != 0;
            break;
        case RW_CF_T_INT:
            *RW_CF_FIELD(obj, k, int) = (int)k->def;
            break;
        case RW_CF_T_STR:
            if (k->def_str)
                *RW_CF_FIELD(obj, k, char *) = (char *)k->def_str; /* static: never freed */
            break;
        case RW_CF_T_MAP:
            rw__cf_map_defaults(k->arg, (char *)obj + k->offset);
            break;
        default:
            break;
        }
    }
}

/* The table's keys as the messages list them: "a, b, c" (last_sep ", "), or
 * "a, b or c" (last_sep " or "). */
static const char *key_names(const rw_cf_map *m, const char *last_sep, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < m->nkeys && off < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == m->nkeys ? last_sep : ", ";
        int w = snprintf(buf + off, cap - off, "%s%s", sep, m->keys[i].name);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return buf;
}

static int read_key(rw_cf_loader *l, const rw_cf_key *k, yaml_node_t *v, const char *where, void *obj)
{
    char w[512];

    if (!k->parse)
        return 0;
    if (*where)
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, k->name);
    else
        rw__cf_wheref(w, sizeof(w), "%s", k->name);
    return k->parse(l, v, w, k, obj);
}

int rw__cf_map_parse(rw_cf_loader *l, const rw_cf_map *m, yaml_node_t *n, const char *where, void *obj,
                     yaml_node_t **seen)
{
    yaml_node_t *local[RW_CF_MAX_KEYS];
    char expected[512];

    if (!seen)
        seen = local;
    for (size_t i = 0; i < m->nkeys && i < RW_CF_MAX_KEYS; i++)
        seen[i] = NULL;
    if (rw__cf_check_map(l, n, where))
        return -1;
    if (m->one_of && MAP_LEN(n) != 1)
        return rw__cf_fail(l, n, "%s: expected exactly one of %s", where,
                           key_names(m, ", ", expected, sizeof(expected)));
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *name = rw__cf_scalar_text(k);
        size_t i = 0;
        while (i < m->nkeys && strcmp(m->keys[i].name, name) != 0)
            i++;
        if (i == m->nkeys)
            return rw__cf_unknown_key(l, k, where, m->what,
                                      key_names(m, m->one_of ? " or " : ", ", expected, sizeof(expected)));
        seen[i] = v;
        if (!m->order && !(m->keys[i].flags & RW_CF_LATE) && read_key(l, &m->keys[i], v, where, obj))
            return -1;
    }
    for (size_t i = 0; m->order && i < m->nkeys; i++) {
        size_t k = m->order[i];
        if (seen[k] && read_key(l, &m->keys[k], seen[k], where, obj))
            return -1;
    }
    for (size_t i = 0; i < m->nkeys; i++) {
        if ((m->keys[i].flags & RW_CF_REQUIRED) && (!seen[i] || rw__cf_is_null(seen[i])))
            return rw__cf_fail(l, n, "%s: %s is required", where, m->keys[i].name);
    }
    for (size_t i = 0; i < m->nkeys; i++) {
        if ((m->keys[i].flags & RW_CF_LATE) && seen[i] && read_key(l, &m->keys[i], seen[i], where, obj))
            return -1;
    }
    return m->check ? m->check(l, n, where, obj, seen) : 0;
}
