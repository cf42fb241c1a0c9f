/* json.c - strict, allocation-free JSON scanner (RFC 8259); see json.h.
 *
 * Validation is a recursive descent bounded by the depth limit (at most
 * RW_JSON_DEPTH_CAP frames). The duplicate-name check remembers the names of
 * the objects open along the current path in a fixed table on the stack, each
 * with a hash of its unescaped bytes, and compares names in full only when the
 * hashes agree. Reading values afterwards (members, iteration) skips over
 * validated text with a bracket counter, never leaving the value's bytes. */
#include "json.h"

#include <string.h>

#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)
#define IS_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

/* ---- strings: one decoded byte at a time ---- */

/* Reads the content of a JSON string, unescaped, byte by byte. */
struct sdec {
    const char *p, *end; /* next raw byte; end of the text it may read */
    uint8_t buf[4];      /* UTF-8 of the last \u escape */
    unsigned n, i;       /* buf[i..n) not handed out yet */
};

enum { SDEC_END = -1, SDEC_BAD = -2 };

/* q points at the opening quote. */
static void sdec_init(struct sdec *d, const char *q, const char *end)
{
    d->p = q + 1;
    d->end = end;
    d->n = d->i = 0;
}

static bool hex4(const char *p, const char *end, unsigned *out)
{
    if (end - p < 4)
        return false;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = (unsigned char)p[k], lc = c | 0x20;
        unsigned d;
        if (IS_DIGIT(c))
            d = c - '0';
        else if (lc >= 'a' && lc <= 'f')
            d = lc - 'a' + 10;
        else
            return false;
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

static unsigned utf8_put(uint8_t *b, unsigned cp)
{
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    b[0] = (uint8_t)(0xf0 | cp >> 18);
    b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    b[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* \uXXXX, d->p just after the 'u'. A high surrogate must be followed by a
 * \u low surrogate; a lone surrogate of either kind is refused. */
static bool sdec_unicode(struct sdec *d)
{
    unsigned cp, lo;
    if (!hex4(d->p, d->end, &cp))
        return false;
    d->p += 4;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return false;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u' || !hex4(d->p + 2, d->end, &lo) ||
            lo < 0xdc00 || lo > 0xdfff)
            return false;
        d->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    d->n = utf8_put(d->buf, cp);
    d->i = 0;
    return true;
}

/* The escape after a backslash, into d->buf. */
static bool sdec_escape(struct sdec *d)
{
    if (d->p >= d->end)
        return false;
    uint8_t b;
    switch (*d->p++) {
    case '"':
        b = '"';
        break;
    case '\\':
        b = '\\';
        break;
    case '/':
        b = '/';
        break;
    case 'b':
        b = '\b';
        break;
    case 'f':
        b = '\f';
        break;
    case 'n':
        b = '\n';
        break;
    case 'r':
        b = '\r';
        break;
    case 't':
        b = '\t';
        break;
    case 'u':
        return sdec_unicode(d);
    default:
        return false;
    }
    d->buf[0] = b;
    d->n = 1;
    d->i = 0;
    return true;
}

/* The next decoded byte, SDEC_END after the closing quote (d->p then points
 * past it), or SDEC_BAD on a raw control byte, a bad escape or no end. */
static int sdec_next(struct sdec *d)
{
    if (d->i < d->n)
        return d->buf[d->i++];
    if (d->p >= d->end)
        return SDEC_BAD;
    unsigned char c = (unsigned char)*d->p++;
    if (c == '"')
        return SDEC_END;
    if (c < 0x20)
        return SDEC_BAD;
    if (c != '\\')
        return c;
    if (!sdec_escape(d))
        return SDEC_BAD;
    return d->buf[d->i++];
}

/* Two string literals (at their opening quotes) equal once unescaped. */
static bool str_equal(const char *a, const char *b, const char *end)
{
    struct sdec da, db;
    sdec_init(&da, a, end);
    sdec_init(&db, b, end);
    for (;;) {
        int ca = sdec_next(&da), cb = sdec_next(&db);
        if (ca != cb)
            return false;
        if (ca < 0)
            return ca == SDEC_END;
    }
}

/* ---- validation ---- */

struct name_slot {
    const char *p; /* opening quote */
    uint32_t hash; /* FNV-1a of the unescaped bytes */
};

struct parser {
    const char *p, *end;
    unsigned depth, max_depth;
    size_t nnames; /* names[0..nnames): members of the objects open now */
    struct name_slot names[RW_JSON_MAX_OPEN_MEMBERS];
};

static bool parse_value(struct parser *ps, rw_json_val *v);

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && IS_WS(*ps->p))
        ps->p++;
}

/* At the opening quote; leaves ps->p after the closing one. */
static bool parse_string(struct parser *ps, uint32_t *hash)
{
    struct sdec d;
    uint32_t h = 2166136261u;
    int c;
    sdec_init(&d, ps->p, ps->end);
    while ((c = sdec_next(&d)) >= 0)
        h = (h ^ (uint32_t)c) * 16777619u;
    if (c != SDEC_END)
        return false;
    ps->p = d.p;
    *hash = h;
    return true;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(struct parser *ps)
{
    const char *p = ps->p, *e = ps->end;
    if (p < e && *p == '-')
        p++;
    if (p >= e || !IS_DIGIT(*p))
        return false;
    if (*p++ != '0')
        while (p < e && IS_DIGIT(*p))
            p++;
    if (p < e && *p == '.') {
        if (++p >= e || !IS_DIGIT(*p))
            return false;
        while (p < e && IS_DIGIT(*p))
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !IS_DIGIT(*p))
            return false;
        while (p < e && IS_DIGIT(*p))
            p++;
    }
    ps->p = p;
    return true;
}

static bool parse_literal(struct parser *ps, const char *lit, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return false;
    ps->p += n;
    return true;
}

/* After the value or member just read: ',' (more follow) or the closing
 * bracket. Returns 1 for more, 0 at the end, -1 on anything else. */
static int after_item(struct parser *ps, char close)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return -1;
    char c = *ps->p++;
    if (c == ',')
        return 1;
    return c == close ? 0 : -1;
}

/* At '[' or '{': counts the level (the caller uncounts it once closed) and
 * checks for an empty container. Returns 1 when items follow, 0 when empty
 * (and closed), -1 when too deep. */
static int open_container(struct parser *ps, char close)
{
    if (++ps->depth > ps->max_depth)
        return -1;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    return 1;
}

static bool parse_array(struct parser *ps)
{
    int rc = open_container(ps, ']');
    while (rc == 1) {
        rw_json_val v;
        if (!parse_value(ps, &v))
            return false;
        rc = after_item(ps, ']');
    }
    if (rc < 0)
        return false;
    ps->depth--;
    return true;
}

/* Records the member name at q (hash h) of the object whose names start at
 * names[first]; false when it is a duplicate or the table is full. */
static bool add_name(struct parser *ps, size_t first, const char *q, uint32_t h)
{
    for (size_t i = first; i < ps->nnames; i++)
        if (ps->names[i].hash == h && str_equal(ps->names[i].p, q, ps->end))
            return false;
    if (ps->nnames == RW_JSON_MAX_OPEN_MEMBERS)
        return false;
    ps->names[ps->nnames].p = q;
    ps->names[ps->nnames].hash = h;
    ps->nnames++;
    return true;
}

static bool parse_member(struct parser *ps, size_t first)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"')
        return false;
    const char *q = ps->p;
    uint32_t h;
    if (!parse_string(ps, &h) || !add_name(ps, first, q, h))
        return false;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':')
        return false;
    ps->p++;
    rw_json_val v;
    return parse_value(ps, &v);
}

static bool parse_object(struct parser *ps)
{
    size_t first = ps->nnames;
    int rc = open_container(ps, '}');
    while (rc == 1) {
        if (!parse_member(ps, first))
            return false;
        rc = after_item(ps, '}');
    }
    if (rc < 0)
        return false;
    ps->depth--;
    ps->nnames = first;
    return true;
}

static bool parse_value(struct parser *ps, rw_json_val *v)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return false;
    const char *start = ps->p;
    uint32_t h;
    bool ok;
    switch (*ps->p) {
    case '{':
        v->type = RW_JSON_OBJECT;
        ok = parse_object(ps);
        break;
    case '[':
        v->type = RW_JSON_ARRAY;
        ok = parse_array(ps);
        break;
    case '"':
        v->type = RW_JSON_STRING;
        ok = parse_string(ps, &h);
        break;
    case 't':
        v->type = RW_JSON_TRUE;
        ok = parse_literal(ps, "true", 4);
        break;
    case 'f':
        v->type = RW_JSON_FALSE;
        ok = parse_literal(ps, "false", 5);
        break;
    case 'n':
        v->type = RW_JSON_NULL;
        ok = parse_literal(ps, "null", 4);
        break;
    default:
        v->type = RW_JSON_NUMBER;
        ok = parse_number(ps);
        break;
    }
    v->p = start;
    v->len = (size_t)(ps->p - start);
    return ok;
}

bool rw__json_parse(const char *doc, size_t len, unsigned max_depth, rw_json_val *root)
{
    struct parser ps;
    if (!doc)
        return false;
    ps.p = doc;
    ps.end = doc + len;
    ps.depth = 0;
    ps.max_depth = max_depth < RW_JSON_DEPTH_CAP ? max_depth : RW_JSON_DEPTH_CAP;
    ps.nnames = 0;
    if (!parse_value(&ps, root))
        return false;
    skip_ws(&ps);
    return ps.p == ps.end;
}

/* ---- reading validated values ---- */

static const char *skip_ws_in(const char *p, const char *end)
{
    while (p < end && IS_WS(*p))
        p++;
    return p;
}

/* Past the string literal whose opening quote is at p (end when unclosed). */
static const char *skip_string(const char *p, const char *end)
{
    p++;
    while (p < end) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\' && end - p < 2)
            return end;
        p += *p == '\\' ? 2 : 1;
    }
    return end;
}

/* Past the container at p: counts brackets outside strings. */
static const char *skip_container(const char *p, const char *end)
{
    size_t depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p = skip_string(p, end);
            continue;
        }
        p++;
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return p;
    }
    return end;
}

/* Reads the value at p (no leading whitespace) into v; returns its end. */
static const char *scan_value(const char *p, const char *end, rw_json_val *v)
{
    const char *q = p;
    v->p = p;
    v->type = RW_JSON_INVALID;
    if (p < end) {
        switch (*p) {
        case '{':
            v->type = RW_JSON_OBJECT;
            q = skip_container(p, end);
            break;
        case '[':
            v->type = RW_JSON_ARRAY;
            q = skip_container(p, end);
            break;
        case '"':
            v->type = RW_JSON_STRING;
            q = skip_string(p, end);
            break;
        case 't':
            v->type = RW_JSON_TRUE;
            break;
        case 'f':
            v->type = RW_JSON_FALSE;
            break;
        case 'n':
            v->type = RW_JSON_NULL;
            break;
        default:
            v->type = RW_JSON_NUMBER;
            break;
        }
        if (q == p) /* a literal or a number: up to the next delimiter */
            while (q < end && !IS_WS(*q) && *q != ',' && *q != ']' && *q != '}')
                q++;
    }
    v->len = (size_t)(q - p);
    return q;
}

void rw__json_iter_init(rw_json_iter *it, const rw_json_val *c)
{
    bool container = c && (c->type == RW_JSON_OBJECT || c->type == RW_JSON_ARRAY) && c->len >= 2;
    it->p = container ? c->p + 1 : NULL;
    it->end = container ? c->p + c->len - 1 : NULL;
    it->object = container && c->type == RW_JSON_OBJECT;
}

bool rw__json_iter_next(rw_json_iter *it, rw_json_val *name, rw_json_val *val)
{
    const char *p = skip_ws_in(it->p, it->end), *end = it->end;
    if (p < end && *p == ',')
        p = skip_ws_in(p + 1, end);
    if (p >= end)
        goto done;
    if (it->object) {
        rw_json_val nm;
        if (*p != '"')
            goto done;
        p = skip_ws_in(scan_value(p, end, &nm), end);
        if (p >= end || *p != ':')
            goto done;
        p = skip_ws_in(p + 1, end);
        if (name)
            *name = nm;
    }
    p = scan_value(p, end, val);
    if (val->len == 0)
        goto done;
    it->p = p;
    return true;
done:
    it->p = it->end;
    return false;
}

bool rw__json_member(const rw_json_val *obj, const char *name, size_t name_len, rw_json_val *out)
{
    rw_json_iter it;
    rw_json_val nm, v;
    if (!obj || obj->type != RW_JSON_OBJECT)
        return false;
    rw__json_iter_init(&it, obj);
    while (rw__json_iter_next(&it, &nm, &v)) {
        if (rw__json_string_eq(&nm, name, name_len)) {
            *out = v;
            return true;
        }
    }
    return false;
}

ssize_t rw__json_string(const rw_json_val *v, char *buf, size_t cap)
{
    struct sdec d;
    size_t n = 0;
    int c;
    if (!v || v->type != RW_JSON_STRING || v->len < 2 || cap == 0)
        return -1;
    sdec_init(&d, v->p, v->p + v->len);
    while ((c = sdec_next(&d)) >= 0) {
        if (n + 1 >= cap)
            return -1;
        buf[n++] = (char)c;
    }
    if (c != SDEC_END)
        return -1;
    buf[n] = '\0';
    return (ssize_t)n;
}

bool rw__json_string_eq(const rw_json_val *v, const char *s, size_t n)
{
    struct sdec d;
    if (!v || v->type != RW_JSON_STRING || v->len < 2)
        return false;
    sdec_init(&d, v->p, v->p + v->len);
    for (size_t i = 0; i < n; i++)
        if (sdec_next(&d) != (unsigned char)s[i])
            return false;
    return sdec_next(&d) == SDEC_END;
}

/* ---- numbers ---- */

/* The digits of a number with the decimal point dropped: digit i of
 * int_len + frac_len, where the fraction starts after the '.'. */
struct digits {
    const char *intp, *fracp;
    size_t int_len, frac_len;
};

static unsigned digit_at(const struct digits *dg, size_t i)
{
    if (i < dg->int_len)
        return (unsigned)(dg->intp[i] - '0');
    i -= dg->int_len;
    return i < dg->frac_len ? (unsigned)(dg->fracp[i] - '0') : 0;
}

/* The exponent after 'e', saturated well past any int64 (a larger one cannot
 * change the answer: out of range, or zero). */
static long parse_exponent(const char *p, const char *end)
{
    bool neg = false;
    long e = 0;
    if (p < end && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    while (p < end && IS_DIGIT(*p)) {
        if (e < 100000)
            e = e * 10 + (*p - '0');
        p++;
    }
    return neg ? -e : e;
}

bool rw__json_int(const rw_json_val *v, int64_t *out)
{
    if (!v || v->type != RW_JSON_NUMBER || v->len == 0)
        return false;
    const char *p = v->p, *end = v->p + v->len;
    bool neg = *p == '-';
    struct digits dg = {0};
    long exp = 0;
    p += neg;
    dg.intp = p;
    while (p < end && IS_DIGIT(*p))
        p++;
    dg.int_len = (size_t)(p - dg.intp);
    if (p < end && *p == '.') {
        dg.fracp = ++p;
        while (p < end && IS_DIGIT(*p))
            p++;
        dg.frac_len = (size_t)(p - dg.fracp);
    }
    if (p < end && (*p == 'e' || *p == 'E'))
        exp = parse_exponent(p + 1, end);
    /* integer part: the first int_len + exp digits */
    long whole = (long)dg.int_len + exp;
    size_t ndig = dg.int_len + dg.frac_len;
    uint64_t n = 0;
    for (long i = 0; i < whole; i++) {
        if ((size_t)i >= ndig && n == 0)
            break; /* only zeros from here */
        unsigned d = digit_at(&dg, (size_t)i);
        if (n > ((uint64_t)INT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = neg ? -(int64_t)n : (int64_t)n;
    return true;
}
