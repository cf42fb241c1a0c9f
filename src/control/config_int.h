/* config_int.h - private: what the configuration loader's files share. The
 * loader (config_yaml.c) owns the arena, the libyaml node helpers, error
 * reporting and the work budget; config_routes.c, config_services.c,
 * config_filters.c and config.c each read their sections of the document
 * with them. Every helper that fails has written "file:line: message" into
 * the loader and returns -1 (the first error wins); none of them allocates
 * outside the arena, except the temporary rw_cf_strset. */
#ifndef RINGWAY_CONFIG_INT_H
#define RINGWAY_CONFIG_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "ringway/common.h"
#include "ringway/config.h"

#define MAX_BODY (1u << 20)
#define MAX_NAME_LEN 128
#define MAX_FILE_SIZE (16u << 20)

#define SEQ_LEN(n) ((size_t)((n)->data.sequence.items.top - (n)->data.sequence.items.start))
#define MAP_LEN(n) ((size_t)((n)->data.mapping.pairs.top - (n)->data.mapping.pairs.start))
#define MAP_EACH(n, pr)                                                                                      \
    for (yaml_node_pair_t *pr = (n)->data.mapping.pairs.start; pr < (n)->data.mapping.pairs.top; pr++)

/* The config's memory: zeroed chunks and the compiled regexes, freed at once. */
typedef struct rw_arena rw_arena;

/* A temporary string -> int hash set (malloc'd; freed before load returns). */
typedef struct rw_cf_strset {
    const char **keys;
    int *vals;
    size_t cap;
    size_t n;
} rw_cf_strset;

/* One load in progress. The document and the arena belong to
 * rw_config_load_string; cfg lives in the arena. */
typedef struct rw_cf_loader {
    const char *name; /* file name for messages */
    yaml_document_t *doc;
    rw_arena *arena;
    rw_config *cfg;
    char *err;
    size_t errlen;
    bool failed;
    unsigned long work;    /* nodes visited so far (the work budget) */
    rw_cf_strset services; /* service name -> index, for the routes */
} rw_cf_loader;

/* ---- arena and string set (config_yaml.c) ---- */

/* A new empty arena, or NULL when out of memory. */
rw_arena *rw__cf_arena_new(void);
/* Zeroed memory that lives as long as the arena, or NULL. */
void *rw__cf_alloc(rw_arena *a, size_t n);
/* Zeroed room for count elements of size bytes, or NULL (also on overflow). */
void *rw__cf_array(rw_arena *a, size_t count, size_t size);
/* Frees the arena, its memory and its regexes; NULL is allowed. */
void rw__cf_arena_destroy(rw_arena *a);
/* Inserts key -> val: 1 inserted, 0 already there (its value in *old), -1 out
 * of memory. The set borrows key. */
int rw__cf_strset_put(rw_cf_strset *s, const char *key, int val, int *old);
/* The value stored for key, or -1 when it is not in the set. */
int rw__cf_strset_get(const rw_cf_strset *s, const char *key);
/* Frees the set's tables and empties it. */
void rw__cf_strset_free(rw_cf_strset *s);

/* ---- errors and nodes (config_yaml.c) ---- */

/* Records "name:line: message" (the first error only) and returns -1. */
__attribute__((format(printf, 3, 4))) int rw__cf_fail_line(rw_cf_loader *l, size_t line, const char *fmt,
                                                           ...);
/* Same, at the line of node n. */
__attribute__((format(printf, 3, 4))) int rw__cf_fail(rw_cf_loader *l, const yaml_node_t *n, const char *fmt,
                                                      ...);
/* "out of memory" at n; returns -1. */
int rw__cf_oom(rw_cf_loader *l, const yaml_node_t *n);
/* The 1-based line a node starts on (1 for NULL). */
size_t rw__cf_line_of(const yaml_node_t *n);
/* Formats a path like "routes[3].paths[0]" into buf and returns buf. */
__attribute__((format(printf, 3, 4))) const char *rw__cf_wheref(char *buf, size_t cap, const char *fmt, ...);
/* The node of a document index (NULL when there is none). */
yaml_node_t *rw__cf_node_at(rw_cf_loader *l, int index);
/* A scalar node's text. */
const char *rw__cf_scalar_text(const yaml_node_t *n);
/* True for a missing node or a plain scalar spelled like YAML's null. */
bool rw__cf_is_null(const yaml_node_t *n);
/* Describes a node for "expected X, got Y" messages ("a list", "'5'"). */
const char *rw__cf_describe(const yaml_node_t *n, char *buf, size_t cap);
/* Fails unless n has the given type (a scalar must not be null). */
int rw__cf_want(rw_cf_loader *l, const yaml_node_t *n, yaml_node_type_t type, const char *where);
/* Borrows a scalar's text; rejects other node kinds and embedded NUL bytes. */
int rw__cf_str_of(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char **out);
/* Copies len bytes of s into the arena, NUL-terminated; NULL (error recorded) when out of memory. */
char *rw__cf_dup_mem(rw_cf_loader *l, const yaml_node_t *n, const char *s, size_t len);

/* ---- scalar values (config_yaml.c): a null value leaves *out unchanged ---- */

/* A non-empty string, copied into the arena. */
int rw__cf_get_string(rw_cf_loader *l, const yaml_node_t *n, const char *where, char **out);
/* Checks a name of a service, route, consumer, group or tier. */
int rw__cf_check_name(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *s);
/* A string that is a valid name (rw__cf_check_name). */
int rw__cf_get_name(rw_cf_loader *l, const yaml_node_t *n, const char *where, char **out);
/* A whole number in min..max. */
int rw__cf_get_uint(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint64_t min, uint64_t max,
                    uint64_t *out);
/* A whole number in min..max that fits uint32_t. */
int rw__cf_get_u32(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint32_t min, uint32_t max,
                   uint32_t *out);
/* true/True/TRUE or false/False/FALSE. */
int rw__cf_get_bool(rw_cf_loader *l, const yaml_node_t *n, const char *where, bool *out);
/* A duration in milliseconds that fits uint32_t and is at least min_ms. */
int rw__cf_get_ms(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint32_t min_ms, uint32_t *out);
/* A size in bytes in min..max. */
int rw__cf_get_size(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint64_t min, uint64_t max,
                    uint64_t *out);
/* One of count words (its index in *out); what names the kind ("policy"). */
int rw__cf_get_choice(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *what,
                      const char *const *names, size_t count, int *out);
/* An HTTP token (a header or cookie name); what names it in messages. */
int rw__cf_check_token(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *what,
                       const char *s);
/* A header value we would send or compare: no control characters. */
int rw__cf_check_field_value(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *s);
/* Compiles src (REG_EXTENDED) into the arena; rw_config_free regfrees it. */
int rw__cf_compile_regex(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *src,
                         regex_t **out);

/* ---- mappings and lists (config_yaml.c) ---- */

/* Checks n is a mapping whose keys are distinct, non-empty strings (and
 * spends its size from the work budget). */
int rw__cf_check_map(rw_cf_loader *l, const yaml_node_t *n, const char *where);
/* "where: unknown key 'k' in ctx (expected ...)" (at top level when where is ""). */
int rw__cf_unknown_key(rw_cf_loader *l, const yaml_node_t *k, const char *where, const char *ctx,
                       const char *expected);
/* Checks n is a list (or, with scalar_ok, one string standing for a list of one). */
int rw__cf_check_list(rw_cf_loader *l, const yaml_node_t *n, const char *where, bool scalar_ok);
/* Entries of a list checked by rw__cf_check_list. */
size_t rw__cf_list_len(const yaml_node_t *n);
/* Entry i of such a list (NULL when the document lacks it). */
yaml_node_t *rw__cf_list_item(rw_cf_loader *l, yaml_node_t *n, size_t i);
/* "where[i]" for a list, "where" for a single string; returns buf. */
const char *rw__cf_item_where(char *buf, size_t cap, const yaml_node_t *list, const char *where, size_t i);
/* A list (or single string) of strings, into an arena array. */
int rw__cf_get_str_list(rw_cf_loader *l, yaml_node_t *n, const char *where, char ***out, size_t *count);

/* ---- mapping tables (config_yaml.c) ----
 * Each mapping of the schema is one rw_cf_map: its keys, each once, with the
 * parser that reads the value into the struct, the field's offset and its
 * default. rw__cf_map_parse walks a mapping in document order (an unknown key
 * is reported where it stands, listing the table's keys), then checks the
 * required keys, reads the RW_CF_LATE keys and runs the map's check.
 * rw__cf_map_defaults writes the defaults (nested maps included). A new key
 * is a row, plus a parser when none of the rw__cf_key_* ones fits. */

#define RW_CF_MAX_KEYS 32

typedef struct rw_cf_key rw_cf_key;
typedef struct rw_cf_map rw_cf_map;

/* Reads value v of a key into obj, the struct the table describes; where is
 * "section.key". v may be a null node: the parsers leave the field as it is. */
typedef int (*rw_cf_parse_fn)(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                              void *obj);
/* Checks a map once all its keys are read; seen[i] is the value node of
 * keys[i] (NULL when absent). */
typedef int (*rw_cf_check_fn)(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                              yaml_node_t *const *seen);

enum rw_cf_type {
    RW_CF_T_NONE = 0,
    RW_CF_T_U32,
    RW_CF_T_U64,
    RW_CF_T_BOOL,
    RW_CF_T_INT,
    RW_CF_T_STR,
    RW_CF_T_MAP
};

enum rw_cf_flags {
    RW_CF_REQUIRED = 1u << 0, /* "where: KEY is required" unless given a non-null value */
    RW_CF_LATE = 1u << 1,     /* read after the other keys were checked and read */
};

struct rw_cf_key {
    const char *name;
    rw_cf_parse_fn parse; /* NULL: only recorded in seen (the check reads it) */
    size_t offset;        /* of the field, or of the nested struct (RW_CF_T_MAP) */
    size_t count;         /* lists: offset of their size_t count */
    uint8_t type;         /* enum rw_cf_type: the field's type, for the default */
    uint8_t flags;        /* enum rw_cf_flags */
    uint64_t min, max;    /* numbers, sizes and durations (ms) */
    uint64_t def;         /* default of a number, bool or choice */
    const char *def_str;  /* default of a string (static storage), or NULL */
    const void *arg;      /* parser's extra: a rw_cf_choice, or the nested rw_cf_map */
};

/* The words a choice key accepts (index = value); what names them in errors. */
typedef struct rw_cf_choice {
    const char *what;
    const char *const *names;
    size_t count;
} rw_cf_choice;

struct rw_cf_map {
    const char *what; /* "service": the unknown-key message says "in service" */
    const rw_cf_key *keys;
    size_t nkeys;         /* at most RW_CF_MAX_KEYS */
    const uint8_t *order; /* the root: every key is checked first, then read in this order */
    rw_cf_check_fn check; /* or NULL */
    bool one_of;          /* exactly one of the keys, like {exact: /a} */
};

/* The number of rows of a key table; fails to compile past RW_CF_MAX_KEYS. */
#define RW_CF_NKEYS(keys)                                                                                    \
    (RW_ARRAY_LEN(keys) + 0 * sizeof(char[RW_ARRAY_LEN(keys) <= RW_CF_MAX_KEYS ? 1 : -1]))
#define RW_CF_MAP_OF(what, keys, check)                                                                      \
    {                                                                                                        \
        what, keys, RW_CF_NKEYS(keys), NULL, check, false                                                    \
    }
#define RW_CF_ONE_OF(what, keys)                                                                             \
    {                                                                                                        \
        what, keys, RW_CF_NKEYS(keys), NULL, NULL, true                                                      \
    }

/* Fails to compile unless field f of struct st has type T. */
#define RW_CF_TYPED(st, f, T) (0 * sizeof((T *){&((st *)0)->f}))
#define RW_CF_OFF(st, f, T) (offsetof(st, f) + RW_CF_TYPED(st, f, T))

/* Rows for the common kinds of value. */
#define RW_CF_U32(n, st, f, lo, hi, d)                                                                       \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_u32, .offset = RW_CF_OFF(st, f, uint32_t), .type = RW_CF_T_U32,       \
        .min = lo, .max = hi, .def = d                                                                       \
    }
#define RW_CF_MS(n, st, f, lo, d)                                                                            \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_ms, .offset = RW_CF_OFF(st, f, uint32_t), .type = RW_CF_T_U32,        \
        .min = lo, .def = d                                                                                  \
    }
#define RW_CF_SIZE(n, st, f, lo, hi, d)                                                                      \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_size, .offset = RW_CF_OFF(st, f, uint64_t), .type = RW_CF_T_U64,      \
        .min = lo, .max = hi, .def = d                                                                       \
    }
#define RW_CF_BOOL(n, st, f, d)                                                                              \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_bool, .offset = RW_CF_OFF(st, f, bool), .type = RW_CF_T_BOOL,         \
        .def = d                                                                                             \
    }
#define RW_CF_CHOICE(n, st, f, choice, d)                                                                    \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_choice, .offset = RW_CF_OFF(st, f, int), .type = RW_CF_T_INT,         \
        .def = d, .arg = &(choice)                                                                           \
    }
#define RW_CF_STRING(n, st, f)                                                                               \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_string, .offset = RW_CF_OFF(st, f, char *), .type = RW_CF_T_STR       \
    }
#define RW_CF_NAME(n, st, f, flags_)                                                                         \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_name, .offset = RW_CF_OFF(st, f, char *), .type = RW_CF_T_STR,        \
        .flags = flags_                                                                                      \
    }
#define RW_CF_STR_LIST(n, st, f, cnt)                                                                        \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_str_list, .offset = RW_CF_OFF(st, f, char **),                        \
        .count = RW_CF_OFF(st, cnt, size_t)                                                                  \
    }
/* A nested mapping whose fields live in the struct at offset off (0: this one). */
#define RW_CF_SUBMAP(n, off, map)                                                                            \
    {                                                                                                        \
        .name = n, .parse = rw__cf_key_map, .offset = off, .type = RW_CF_T_MAP, .arg = &(map)                \
    }
/* A key with its own parser; T is the field's type (the default, if any, is d). */
#define RW_CF_CUSTOM(n, fn, st, f, T, type_, d, flags_)                                                      \
    {                                                                                                        \
        .name = n, .parse = fn, .offset = RW_CF_OFF(st, f, T), .type = type_, .flags = flags_, .def = d      \
    }

/* Reads mapping n by table m into obj (see above); seen, when not NULL, gets
 * the value node of each key (room for m->nkeys). */
int rw__cf_map_parse(rw_cf_loader *l, const rw_cf_map *m, yaml_node_t *n, const char *where, void *obj,
                     yaml_node_t **seen);
/* The value node map_parse saw for the key called name (NULL when absent). */
yaml_node_t *rw__cf_seen(const rw_cf_map *m, yaml_node_t *const *seen, const char *name);
/* Writes the defaults of m's keys into obj, nested maps included. */
void rw__cf_map_defaults(const rw_cf_map *m, void *obj);
/* The generic parsers the row macros name. */
int rw__cf_key_u32(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
int rw__cf_key_ms(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
int rw__cf_key_size(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
int rw__cf_key_bool(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
int rw__cf_key_choice(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
int rw__cf_key_string(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
int rw__cf_key_name(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
int rw__cf_key_str_list(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
/* A nested mapping (key->arg) over the struct at key->offset; null: nothing. */
int rw__cf_key_map(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj);
/* The field a row describes. */
#define RW_CF_FIELD(obj, key, T) ((T *)(void *)((char *)(obj) + (key)->offset))

/* A file path from the config, in the arena: a relative path is taken from
 * the config file's directory (config_jwt.c). */
int rw__cf_resolve_path(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *path,
                        char **out);
/* ---- sections ---- */

/* tiers: {name: {rate: "N/period"}} (config_filters.c). */
int rw__cf_parse_tiers(rw_cf_loader *l, yaml_node_t *n);
/* consumers: a list, after tiers (config_filters.c). */
int rw__cf_parse_consumers(rw_cf_loader *l, yaml_node_t *n);
/* A filter list (top level, service or route) into an arena array (config_filters.c). */
int rw__cf_parse_filters(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg **out,
                         size_t *count);
/* Names the rate-limit tables that have no name "<owner>.rate_limit.<i>" (config_filters.c). */
int rw__cf_name_rate_limits(rw_cf_loader *l, const yaml_node_t *n, rw_filter_cfg *fs, size_t count,
                            const char *owner);
/* A jwt filter's settings into f->u.jwt (config_jwt.c). */
int rw__cf_parse_jwt(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg *f);
/* A list (or single string) of addresses or CIDR ranges (config_filters.c). */
int rw__cf_get_cidr_list(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_cidr **out, size_t *count);
/* services: a list; their names go into names -> index (config_services.c). */
int rw__cf_parse_services(rw_cf_loader *l, yaml_node_t *n, rw_cf_strset *names);
/* routes: a list, after services (config_routes.c). */
int rw__cf_parse_routes(rw_cf_loader *l, yaml_node_t *n);

#endif
