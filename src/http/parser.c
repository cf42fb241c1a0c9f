/* parser.c - strict, zero-copy, incremental HTTP/1.1 head parser (RFC 9112).
 *
 * Every call parses buf from its first byte: the caller appends what it
 * received and calls again with the whole buffer. Complete lines are checked
 * as soon as they arrive, so bad input is refused without waiting for the end
 * of the head, and a partial head that already breaks a limit is refused at
 * once (a client cannot hold a connection open by trickling bytes).
 *
 * Lifetime: every rw_str stored in the result points into buf, except the path
 * of an absolute-form target that has none ("http://h" or "http://h?q"), which
 * points at a static "/". Nothing is allocated or copied.
 *
 * Policy decisions (documented in http.h too):
 *  - only CRLF ends a line; bare LF, bare CR, NUL and other controls are 400;
 *  - duplicate Content-Length (separate lines or a "5, 5" list) is accepted
 *    when every value is the same number, otherwise 400 (502 for responses);
 *  - Transfer-Encoding in a request: final coding not "chunked", or "chunked"
 *    twice -> 400; "chunked" last but other codings too -> 501; with
 *    Content-Length, or in HTTP/1.0 -> 400. Responses: anything but exactly
 *    one "chunked" (HTTP/1.1) is -502.
 */
#include "ringway/http.h"

#include <string.h>

/* Character classes, one bit each. */
enum {
    CC_TCHAR = 1,  /* token: ALPHA DIGIT ! # $ % & ' * + - . ^ _ ` | ~ */
    CC_VALUE = 2,  /* field value byte: VCHAR, obs-text (0x80-0xFF), SP, HTAB */
    CC_TARGET = 4, /* request-target byte: VCHAR (0x21-0x7E) except '#' */
    CC_AUTH = 8,   /* authority byte: ALPHA DIGIT - . _ ~ ! $ & ' ( ) * + , ; = : [ ] % */
};

/* clang-format off */
static const uint8_t cc[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x0f, 0x06, 0x03, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0e, 0x0f, 0x0f, 0x0e, 0x0f, 0x0f, 0x06,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0e, 0x06, 0x0e, 0x06, 0x06,
    0x06, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x06, 0x0e, 0x07, 0x0f,
    0x07, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x06, 0x07, 0x06, 0x0f, 0x00,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
};
/* clang-format on */

#define IS(c, cls) (cc[(unsigned char)(c)] & (cls))
#define IS_WS(c) ((c) == ' ' || (c) == '\t')
#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)

/* Largest Content-Length accepted: it must fit in an off_t / int64_t. */
#define MAX_CONTENT_LENGTH ((uint64_t)INT64_MAX)

static const char slash[] = "/";

/* State shared by the request and response parsers while reading fields. */
struct head {
    const char *buf;
    size_t len;
    size_t max_head;    /* max_header_bytes */
    size_t max_headers; /* clamped to RW_HTTP_MAX_HEADERS */
    bool response;
    uint32_t flags; /* RW_HF_* */
    uint64_t cl;    /* Content-Length, valid with RW_HF_HAS_CL */
    rw_str host;    /* Host value, valid with RW_HF_HAS_HOST */
    /* Transfer-Encoding codings, across every TE line in order */
    unsigned te_codings;
    bool te_last_chunked;
    bool te_chunked_not_last;
    bool te_other;
};

void rw_http_limits_default(rw_http_limits *lim)
{
    lim->max_request_line = 8192;
    lim->max_header_bytes = 16384;
    lim->max_headers = RW_HTTP_MAX_HEADERS;
}

/* Case-insensitive compare of a token against a lower-case literal made of
 * letters and '-'. (c | 0x20) maps upper to lower case; no other token byte
 * maps onto a letter or '-', so this is exact for token input. */
static inline bool tok_is(const char *p, size_t n, const char *lit, size_t litlen)
{
    if (n != litlen)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((char)(p[i] | 0x20) != lit[i])
            return false;
    return true;
}
#define TOK_IS(p, n, lit) tok_is((p), (n), (lit), sizeof(lit) - 1)

/* Calls fn on each non-empty element of a comma-separated list, OWS trimmed
 * (RFC 9110 5.6.1: empty elements are ignored). Stops at the first non-zero. */
typedef int (*list_fn)(struct head *h, const char *p, size_t n);

static int for_each_element(struct head *h, rw_str v, list_fn fn)
{
    const char *p = v.p, *end = v.p + v.len;
    while (p < end) {
        while (p < end && (IS_WS(*p) || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && IS_WS(e[-1]))
            e--;
        if (e > s) {
            int rc = fn(h, s, (size_t)(e - s));
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int connection_token(struct head *h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS(p[i], CC_TCHAR))
            return -400;
    if (TOK_IS(p, n, "close"))
        h->flags |= RW_HF_CONN_CLOSE;
    else if (TOK_IS(p, n, "keep-alive"))
        h->flags |= RW_HF_CONN_KEEPALIVE;
    else if (TOK_IS(p, n, "upgrade"))
        h->flags |= RW_HF_CONN_UPGRADE;
    else
        h->flags |= RW_HF_CONN_OTHER; /* names another hop-by-hop field */
    return 0;
}

static int te_coding(struct head *h, const char *p, size_t n)
{
    if (h->te_last_chunked)
        h->te_chunked_not_last = true;
    h->te_codings++;
    if (TOK_IS(p, n, "chunked")) {
        h->te_last_chunked = true;
    } else {
        h->te_last_chunked = false;
        h->te_other = true;
    }
    return 0;
}

/* Content-Length = 1#DIGIT list; every element must be the same number, also
 * across several Content-Length lines. Empty elements are refused here. */
static int parse_content_length(struct head *h, rw_str v)
{
    const char *p = v.p, *end = v.p + v.len;
    for (;;) {
        const char *d = p;
        uint64_t n = 0;
        while (p < end && IS_DIGIT(*p)) {
            unsigned dig = (unsigned)(*p - '0');
            if (n > (MAX_CONTENT_LENGTH - dig) / 10)
                return -400;
            n = n * 10 + dig;
            p++;
        }
        if (p == d)
            return -400;
        if (h->flags & RW_HF_HAS_CL) {
            if (n != h->cl)
                return -400;
        } else {
            h->cl = n;
            h->flags |= RW_HF_HAS_CL;
        }
        while (p < end && IS_WS(*p))
            p++;
        if (p == end)
            return 0;
        if (*p != ',')
            return -400;
        p++;
        while (p < end && IS_WS(*p))
            p++;
    }
}

/* Looks at the fields whose meaning the parser or the proxy needs. */
static int special_header(struct head *h, rw_str name, rw_str value)
{
    const char *n = name.p;
    switch (name.len) {
    case 4:
        if (!h->response && TOK_IS(n, 4, "host")) {
            if (h->flags & RW_HF_HAS_HOST)
                return -400; /* RFC 9112 3.2: more than one Host */
            for (size_t i = 0; i < value.len; i++)
                if (!IS(value.p[i], CC_AUTH))
                    return -400;
            h->flags |= RW_HF_HAS_HOST;
            h->host = value;
        }
        break;
    case 6:
        if (!h->response && TOK_IS(n, 6, "expect") && TOK_IS(value.p, value.len, "100-continue"))
            h->flags |= RW_HF_EXPECT_CONTINUE;
        break;
    case 10:
        if (TOK_IS(n, 10, "connection"))
            return for_each_element(h, value, connection_token);
        break;
    case 14:
        if (TOK_IS(n, 14, "content-length"))
            return parse_content_length(h, value);
        break;
    case 17:
        if (TOK_IS(n, 17, "transfer-encoding")) {
            h->flags |= RW_HF_HAS_TE;
            return for_each_element(h, value, te_coding);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Parses one field line [p, eol), eol pointing at its CR. */
static int parse_field_line(struct head *h, const char *p, const char *eol, rw_http_header *out)
{
    const char *s = p;
    while (p < eol && IS(*p, CC_TCHAR))
        p++;
    /* Empty name, obs-fold (line starting with SP/HTAB), whitespace before
     * the colon, a bad name byte or no colon at all: all refused. */
    if (p == s || p == eol || *p != ':')
        return -400;
    out->name = (rw_str){s, (size_t)(p - s)};
    p++;
    while (p < eol && IS_WS(*p))
        p++;
    s = p;
    /* Validate eight bytes at a time: a block with no byte below 0x20 and no
     * DEL is fine as it is (obs-text, 0x80 and up, is allowed); only blocks
     * with a control byte (HTAB is the one allowed) take the byte loop. */
    while (eol - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
        uint64_t ctl = (v - ones * 0x20) & ~v & highs;
        uint64_t x = v ^ (ones * 0x7f);
        uint64_t del = (x - ones) & ~x & highs;
        if (ctl | del)
            break;
        p += 8;
    }
    for (; p < eol; p++)
        if (!(cc[(unsigned char)*p] & CC_VALUE))
            return -400;  /* CR, LF, NUL, DEL or another control */
    const char *ve = eol; /* trim trailing OWS */
    while (ve > s && IS_WS(ve[-1]))
        ve--;
    out->value = (rw_str){s, (size_t)(ve - s)};
    return special_header(h, out->name, out->value);
}

/* Reads field lines from p up to and including the empty line. Returns the
 * head length, 0 when more bytes are needed, or a negative status. */
static ssize_t parse_fields(struct head *h, const char *p, rw_http_header *hdrs, size_t *nhdrs)
{
    const char *buf = h->buf, *end = buf + h->len;
    size_t n = 0;
    ssize_t rc = 0;
    for (;;) {
        const char *lf = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        if (!lf) {
            rc = h->len >= h->max_head ? -431 : RW_HTTP_INCOMPLETE;
            break;
        }
        size_t line_end = (size_t)(lf + 1 - buf);
        if (line_end > h->max_head) {
            rc = -431;
            break;
        }
        if (lf == p || lf[-1] != '\r') {
            rc = -400; /* bare LF */
            break;
        }
        if (lf - 1 == p) {
            rc = (ssize_t)line_end; /* the empty line ends the head */
            break;
        }
        if (n == h->max_headers) {
            rc = -431;
            break;
        }
        rc = parse_field_line(h, p, lf - 1, &hdrs[n]);
        if (rc)
            break;
        n++;
        p = lf + 1;
    }
    *nhdrs = n;
    return rc;
}

static void head_init(struct head *h, const char *buf, size_t len, const rw_http_limits *lim, bool response)
{
    memset(h, 0, sizeof(*h));
    h->buf = buf;
    h->len = len;
    h->max_head = lim->max_header_bytes;
    h->max_headers = RW_MIN(lim->max_headers, (size_t)RW_HTTP_MAX_HEADERS);
    h->response = response;
}

/* Finds the start line beginning at p. Returns 1 with *eol at its CR, 0 when
 * incomplete, or a negative status (-414 / -431 / -400).
 *
 * When a line breaks both limits (possible after many leading empty lines),
 * the status is that of the limit the byte stream crossed first, so the
 * answer does not depend on how the bytes were split into reads. */
static int start_line(const struct head *h, const char *p, size_t max_line, const char **eol)
{
    const char *buf = h->buf, *end = buf + h->len;
    size_t avail = (size_t)(end - p);
    const char *lf = avail ? memchr(p, '\n', avail) : NULL;
    size_t content, line_bytes;
    if (lf) {
        content = (size_t)(lf - p) - (lf > p && lf[-1] == '\r');
        line_bytes = (size_t)(lf + 1 - buf);
    } else {
        content = avail - (avail && p[avail - 1] == '\r');
        line_bytes = h->len; /* the head is longer still */
    }
    bool over_line = content > max_line;
    bool over_head = lf ? line_bytes > h->max_head : line_bytes >= h->max_head;
    if (over_line && over_head) {
        /* Buffer length at which the line limit became visible: one byte past
         * max_line, or two when that byte is a CR (it might start CRLF). */
        size_t seen = (size_t)(p - buf) + max_line + 1 + (p[max_line] == '\r');
        return seen <= h->max_head ? -414 : -431;
    }
    if (over_line)
        return -414;
    if (over_head)
        return -431;
    if (!lf)
        return 0;
    if (lf == p || lf[-1] != '\r')
        return -400;
    *eol = lf - 1;
    return 1;
}

/* ---- requests ---- */

static int lookup_method(const char *p, size_t n)
{
    switch (n) {
    case 3:
        if (!memcmp(p, "GET", 3))
            return RW_METHOD_GET;
        if (!memcmp(p, "PUT", 3))
            return RW_METHOD_PUT;
        break;
    case 4:
        if (!memcmp(p, "POST", 4))
            return RW_METHOD_POST;
        if (!memcmp(p, "HEAD", 4))
            return RW_METHOD_HEAD;
        break;
    case 5:
        if (!memcmp(p, "PATCH", 5))
            return RW_METHOD_PATCH;
        if (!memcmp(p, "TRACE", 5))
            return RW_METHOD_TRACE;
        break;
    case 6:
        if (!memcmp(p, "DELETE", 6))
            return RW_METHOD_DELETE;
        break;
    case 7:
        if (!memcmp(p, "OPTIONS", 7))
            return RW_METHOD_OPTIONS;
        if (!memcmp(p, "CONNECT", 7))
            return RW_METHOD_CONNECT;
        break;
    default:
        break;
    }
    return RW_METHOD_OTHER;
}

static void split_path_query(rw_http_request *req, const char *p, const char *end)
{
    const char *q = memchr(p, '?', (size_t)(end - p));
    if (q) {
        req->path = (rw_str){p, (size_t)(q - p)};
        req->query = (rw_str){q + 1, (size_t)(end - q - 1)};
    } else {
        req->path = (rw_str){p, (size_t)(end - p)};
        req->query = (rw_str){end, 0};
    }
}

static bool all_auth(const char *p, const char *end)
{
    for (; p < end; p++)
        if (!IS(*p, CC_AUTH))
            return false;
    return true;
}

/* Classifies the request-target (RFC 9112 3.2) against the method. */
static int parse_target(rw_http_request *req)
{
    const char *p = req->target.p, *end = p + req->target.len;
    bool connect = req->method == RW_METHOD_CONNECT;

    if (*p == '/') { /* origin-form */
        if (connect)
            return -400;
        split_path_query(req, p, end);
        return 0;
    }
    if (req->target.len == 1 && *p == '*') { /* asterisk-form */
        if (req->method != RW_METHOD_OPTIONS)
            return -400;
        req->path = req->target;
        return 0;
    }
    if (connect) { /* authority-form: host ":" port, port 1..5 digits */
        const char *colon = NULL;
        for (const char *s = p; s < end; s++)
            if (*s == ':')
                colon = s;
        if (!colon || colon == p || end - colon - 1 < 1 || end - colon - 1 > 5)
            return -400;
        for (const char *s = colon + 1; s < end; s++)
            if (!IS_DIGIT(*s))
                return -400;
        if (!all_auth(p, colon))
            return -400;
        req->host = req->target;
        req->path = (rw_str){p, 0};
        req->query = (rw_str){end, 0};
        return 0;
    }
    /* absolute-form: only the http and https schemes, no userinfo */
    const char *s = p;
    while (s < end && *s != ':')
        s++;
    size_t slen = (size_t)(s - p);
    if (!(TOK_IS(p, slen, "http") || TOK_IS(p, slen, "https")) || end - s < 3 || s[1] != '/' || s[2] != '/')
        return -400;
    const char *auth = s + 3, *a = auth;
    while (a < end && *a != '/' && *a != '?')
        a++;
    if (a == auth || !all_auth(auth, a))
        return -400;
    req->host = (rw_str){auth, (size_t)(a - auth)};
    if (a < end && *a == '/') {
        split_path_query(req, a, end);
    } else { /* empty path: "/" (RFC 9112 3.2.1), query after a '?' if any */
        req->path = (rw_str){slash, 1};
        req->query = a < end ? (rw_str){a + 1, (size_t)(end - a - 1)} : (rw_str){end, 0};
    }
    return 0;
}

/* request-line = method SP request-target SP HTTP-version, [p, eol). */
static int parse_request_line(rw_http_request *req, const char *p, const char *eol)
{
    const char *s = p;
    while (p < eol && IS(*p, CC_TCHAR))
        p++;
    if (p == s || p == eol || *p != ' ')
        return -400;
    req->method_str = (rw_str){s, (size_t)(p - s)};
    s = ++p;
    while (p < eol && IS(*p, CC_TARGET))
        p++;
    if (p == s || p == eol || *p != ' ')
        return -400;
    req->target = (rw_str){s, (size_t)(p - s)};
    p++;
    if (eol - p != 8 || memcmp(p, "HTTP/", 5) != 0 || !IS_DIGIT(p[5]) || p[6] != '.' || !IS_DIGIT(p[7]))
        return -400;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return -505;
    req->minor = p[7] - '0';
    req->method = lookup_method(req->method_str.p, req->method_str.len);
    if (req->method == RW_METHOD_OTHER)
        return -501;
    return parse_target(req);
}

static int finish_request(const struct head *h, rw_http_request *req)
{
    req->flags = h->flags;
    if (h->flags & RW_HF_HAS_HOST) {
        if (req->host.p == NULL) /* absolute/authority-form authority wins (RFC 9112 3.2.2) */
            req->host = h->host;
    } else if (req->minor == 1) {
        return -400;
    }
    if (h->flags & RW_HF_HAS_TE) {
        if (req->minor == 0 || (h->flags & RW_HF_HAS_CL))
            return -400;
        if (h->te_codings == 0 || !h->te_last_chunked || h->te_chunked_not_last)
            return -400;
        if (h->te_other)
            return -501;
        req->body = RW_BODY_CHUNKED;
    } else if (h->flags & RW_HF_HAS_CL) {
        req->body = RW_BODY_LENGTH;
        req->content_length = h->cl;
    }
    if (h->flags & RW_HF_CONN_CLOSE)
        req->keep_alive = false;
    else
        req->keep_alive = req->minor == 1 || (h->flags & RW_HF_CONN_KEEPALIVE);
    return 0;
}

ssize_t rw_http_parse_request(const char *buf, size_t len, const rw_http_limits *lim, rw_http_request *req)
{
    rw_http_limits dflt;
    if (!lim) {
        rw_http_limits_default(&dflt);
        lim = &dflt;
    }
    /* Reset everything but the header array (filled up to nheaders). */
    memset(req, 0, offsetof(rw_http_request, headers));

    struct head h;
    head_init(&h, buf, len, lim, false);

    /* RFC 9112 2.2: ignore empty lines before the request-line; they count
     * towards head_len and max_header_bytes. */
    const char *p = buf, *end = buf + len;
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;

    const char *eol = NULL;
    int rc = start_line(&h, p, lim->max_request_line, &eol);
    if (rc <= 0)
        return rc;
    rc = parse_request_line(req, p, eol);
    if (rc)
        return rc;
    ssize_t n = parse_fields(&h, eol + 2, req->headers, &req->nheaders);
    if (n <= 0)
        return n;
    rc = finish_request(&h, req);
    if (rc)
        return rc;
    req->head_len = (size_t)n;
    return n;
}

/* ---- responses ---- */

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ], [p, eol); the
 * SP after the code may be missing when the reason is empty. */
static bool parse_status_line(rw_http_response *resp, const char *p, const char *eol)
{
    if (eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return false;
    resp->minor = p[7] - '0';
    p += 9;
    if (p[0] < '1' || p[0] > '5' || !IS_DIGIT(p[1]) || !IS_DIGIT(p[2]))
        return false;
    resp->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    p += 3;
    if (p == eol) {
        resp->reason = (rw_str){p, 0};
        return true;
    }
    if (*p++ != ' ')
        return false;
    resp->reason = (rw_str){p, (size_t)(eol - p)};
    for (; p < eol; p++)
        if (!IS(*p, CC_VALUE))
            return false;
    return true;
}

static int finish_response(const struct head *h, rw_http_response *resp, int req_method)
{
    resp->flags = h->flags;
    if (h->flags & RW_HF_HAS_TE) {
        /* Only exactly "chunked" in an HTTP/1.1 response, never with CL. */
        if (resp->minor == 0 || (h->flags & RW_HF_HAS_CL) || h->te_codings != 1 || h->te_other)
            return -502;
    }
    if (h->flags & RW_HF_HAS_CL)
        resp->content_length = h->cl;
    if (h->flags & RW_HF_CONN_CLOSE)
        resp->keep_alive = false;
    else
        resp->keep_alive = resp->minor == 1 || (h->flags & RW_HF_CONN_KEEPALIVE);

    int st = resp->status;
    if (req_method == RW_METHOD_HEAD || st < 200 || st == 204 || st == 304 ||
        (req_method == RW_METHOD_CONNECT && st < 300)) {
        resp->body = RW_BODY_NONE;
    } else if (h->flags & RW_HF_HAS_TE) {
        resp->body = RW_BODY_CHUNKED;
    } else if (h->flags & RW_HF_HAS_CL) {
        resp->body = RW_BODY_LENGTH;
    } else {
        resp->body = RW_BODY_UNTIL_CLOSE;
        resp->keep_alive = false;
    }
    return 0;
}

ssize_t rw_http_parse_response(const char *buf, size_t len, const rw_http_limits *lim, int req_method,
                               rw_http_response *resp)
{
    rw_http_limits dflt;
    if (!lim) {
        rw_http_limits_default(&dflt);
        lim = &dflt;
    }
    memset(resp, 0, offsetof(rw_http_response, headers));

    struct head h;
    head_init(&h, buf, len, lim, true);

    /* No leading empty lines for responses: a stray CRLF is faulty framing. */
    const char *eol = NULL;
    int rc = start_line(&h, buf, lim->max_request_line, &eol);
    if (rc < 0)
        return -502;
    if (rc == 0)
        return RW_HTTP_INCOMPLETE;
    if (!parse_status_line(resp, buf, eol))
        return -502;
    ssize_t n = parse_fields(&h, eol + 2, resp->headers, &resp->nheaders);
    if (n < 0)
        return -502;
    if (n == 0)
        return RW_HTTP_INCOMPLETE;
    if (finish_response(&h, resp, req_method))
        return -502;
    resp->head_len = (size_t)n;
    return n;
}

/* ---- hop-by-hop ---- */

static bool ci_eq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if ((unsigned)(x - 'A') < 26u)
            x |= 0x20;
        if ((unsigned)(y - 'A') < 26u)
            y |= 0x20;
        if (x != y)
            return false;
    }
    return true;
}

bool rw_http_is_fixed_hop_by_hop(rw_str n)
{
    switch (n.len) {
    case 2:
        return ci_eq(n.p, n.len, "te", 2);
    case 7:
        return ci_eq(n.p, n.len, "trailer", 7) || ci_eq(n.p, n.len, "upgrade", 7);
    case 10:
        return ci_eq(n.p, n.len, "connection", 10) || ci_eq(n.p, n.len, "keep-alive", 10);
    case 16:
        return ci_eq(n.p, n.len, "proxy-connection", 16);
    case 17:
        return ci_eq(n.p, n.len, "transfer-encoding", 17);
    default:
        return false;
    }
}

bool rw_http_is_hop_by_hop(rw_str name, const rw_http_header *headers, size_t nheaders)
{
    if (rw_http_is_fixed_hop_by_hop(name))
        return true;
    /* A Connection token must not strip the framing or routing of the
     * message: "Connection: content-length" would otherwise let a client (or
     * upstream) remove the length of a body the proxy still forwards. */
    if (ci_eq(name.p, name.len, "content-length", 14) || ci_eq(name.p, name.len, "host", 4))
        return false;
    for (size_t i = 0; i < nheaders; i++) {
        const rw_http_header *hd = &headers[i];
        if (!ci_eq(hd->name.p, hd->name.len, "connection", 10))
            continue;
        const char *p = hd->value.p, *end = p + hd->value.len;
        while (p < end) {
            while (p < end && (IS_WS(*p) || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',')
                p++;
            const char *e = p;
            while (e > s && IS_WS(e[-1]))
                e--;
            if (e > s && ci_eq(s, (size_t)(e - s), name.p, name.len))
                return true;
        }
    }
    return false;
}

const rw_http_header *rw_http_find_header(const rw_http_header *headers, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (rw_str_ieq(headers[i].name, name))
            return &headers[i];
    return NULL;
}
