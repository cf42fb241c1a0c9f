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
    unsigned long work; /* nodes visited so far (the work budget) */
} rw_cf_loader;

/* A temporary string -> int hash set (malloc'd; freed before load returns). */
typedef struct rw_cf_strset {
    const char **keys;
    int *vals;
    size_t cap;
    size_t n;
} rw_cf_strset;

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
/* A list (or single string) of addresses or CIDR ranges (config_filters.c). */
int rw__cf_get_cidr_list(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_cidr **out, size_t *count);
/* services: a list; their names go into names -> index (config_services.c). */
int rw__cf_parse_services(rw_cf_loader *l, yaml_node_t *n, rw_cf_strset *names);
/* routes: a list, after services (config_routes.c). */
int rw__cf_parse_routes(rw_cf_loader *l, yaml_node_t *n, const rw_cf_strset *services);

#endif
