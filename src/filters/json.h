/* json.h - a strict, allocation-free JSON scanner (RFC 8259) for the JWT
 * filter and JWKS documents.
 *
 * rw__json_parse validates a whole document once: one value, whitespace
 * around it, nesting no deeper than asked, no raw control bytes or bad escapes
 * in strings (lone surrogates included), strict number grammar, and no object
 * with the same member name twice (names compared after unescaping, so that
 * {"a":1,"\u0061":2} is refused: two parsers must never read a different "a").
 * The other functions read values of a document that rw__json_parse accepted;
 * they stay inside the value's bytes whatever they are given, but only
 * validated input gets meaningful answers.
 *
 * Lifetime: every rw_json_val points into the document; nothing is copied or
 * allocated. Private to src/filters. */
#ifndef RINGWAY_FILTERS_JSON_H
#define RINGWAY_FILTERS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum rw_json_type {
    RW_JSON_INVALID = 0,
    RW_JSON_OBJECT,
    RW_JSON_ARRAY,
    RW_JSON_STRING,
    RW_JSON_NUMBER,
    RW_JSON_TRUE,
    RW_JSON_FALSE,
    RW_JSON_NULL,
};

/* A value of a validated document: its type and its bytes as written (a
 * string's bytes include its quotes). */
typedef struct rw_json_val {
    int type; /* enum rw_json_type */
    const char *p;
    size_t len;
} rw_json_val;

/* Members open at once along one nesting path (their names are remembered for
 * the duplicate check); a document with more is refused. */
#define RW_JSON_MAX_OPEN_MEMBERS 512
/* rw__json_parse never nests deeper than this, whatever max_depth says. */
#define RW_JSON_DEPTH_CAP 64

/* Validates doc[0..len) with at most max_depth nested arrays/objects (a
 * top-level object is depth 1). Fills root and returns true when valid. */
bool rw__json_parse(const char *doc, size_t len, unsigned max_depth, rw_json_val *root);

/* Finds the member called name[0..name_len) (compared with the unescaped
 * member name) of object obj. Returns false when obj is not an object or has
 * no such member. */
bool rw__json_member(const rw_json_val *obj, const char *name, size_t name_len, rw_json_val *out);

/* Walks the elements of an array or the members of an object. */
typedef struct rw_json_iter {
    const char *p, *end; /* next byte; the container's closing bracket */
    bool object;
} rw_json_iter;

/* Starts a walk over container (an empty walk when it is not one). */
void rw__json_iter_init(rw_json_iter *it, const rw_json_val *container);
/* Next element (array) or member (object: its name, a string value, goes in
 * *name when name is not NULL). Returns false at the end. */
bool rw__json_iter_next(rw_json_iter *it, rw_json_val *name, rw_json_val *val);

/* Unescapes string value v into buf and NUL-terminates it (the text may
 * itself hold NUL bytes from \u0000). Returns the length without the
 * terminator, or -1 when v is not a string or buf (cap bytes) is too small. */
ssize_t rw__json_string(const rw_json_val *v, char *buf, size_t cap);
/* True when string value v, unescaped, is exactly s[0..n). */
bool rw__json_string_eq(const rw_json_val *v, const char *s, size_t n);
/* The integer part (truncated toward zero) of number value v: 1700000000,
 * 1.7e9 and 1700000000.9 all give 1700000000. False when v is not a number or
 * the integer part does not fit in an int64_t. */
bool rw__json_int(const rw_json_val *v, int64_t *out);

#endif
