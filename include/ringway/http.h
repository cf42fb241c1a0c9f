/* http.h - zero-copy, incremental HTTP/1.1 message-head parser (RFC 9112),
 * a validating chunked-body scanner and a URL-authority parser (for the
 * control side's clients). The parser never copies or allocates:
 * every rw_str it returns points into the caller's buffer, which must outlive
 * the parsed struct (one exception: see rw_http_request.path). Strict by
 * design against request smuggling.
 *
 * Framing policy (what the proxy can rely on after a successful parse):
 *  - lines end with CRLF only; bare CR/LF, NUL and other controls (HTAB is
 *    allowed in values), obs-fold and whitespace before ':' are rejected;
 *  - request-target bytes are 0x21-0x7E except '#' (no fragments); Host must
 *    appear exactly once in HTTP/1.1 (at most once in 1.0) with authority
 *    characters only; absolute-form accepts the http and https schemes only;
 *  - Content-Length: 1*DIGIT, at most INT64_MAX. Several Content-Length lines
 *    or a list ("5, 5") are accepted only when all values are the same
 *    number; content_length holds it. Anything else is 400 / 502;
 *  - Transfer-Encoding with Content-Length is 400 / 502; in requests the
 *    final coding must be "chunked" and appear once (else 400), other codings
 *    before it give 501, and HTTP/1.0 requests with Transfer-Encoding are 400;
 *    responses accept exactly "chunked" (case-insensitive) from HTTP/1.1 only;
 *  - Framing headers are hop-by-hop: the proxy must not forward the received
 *    Transfer-Encoding / Content-Length lines blindly but write its own from
 *    body and content_length. */
#ifndef RINGWAY_HTTP_H
#define RINGWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringway/common.h"

#define RW_HTTP_MAX_HEADERS 100

enum rw_http_method {
    RW_METHOD_OTHER = 0, /* a syntactically valid token we do not know: answered 501 by the parser */
    RW_METHOD_GET,
    RW_METHOD_HEAD,
    RW_METHOD_POST,
    RW_METHOD_PUT,
    RW_METHOD_DELETE,
    RW_METHOD_CONNECT,
    RW_METHOD_OPTIONS,
    RW_METHOD_TRACE,
    RW_METHOD_PATCH,
    RW_METHOD__COUNT
};

/* How the body after a head is delimited. */
enum rw_http_body {
    RW_BODY_NONE = 0,   /* no body at all */
    RW_BODY_LENGTH,     /* exactly content_length bytes */
    RW_BODY_CHUNKED,    /* chunked transfer coding: use rw_chunked */
    RW_BODY_UNTIL_CLOSE /* responses only: body runs until the upstream closes */
};

typedef struct rw_http_header {
    rw_str name;  /* as received (case preserved) */
    rw_str value; /* leading/trailing OWS removed */
} rw_http_header;

/* Flags set on a parsed head for headers the proxy treats specially. */
enum {
    RW_HF_CONN_CLOSE = 1u << 0,      /* Connection: close */
    RW_HF_CONN_KEEPALIVE = 1u << 1,  /* Connection: keep-alive */
    RW_HF_CONN_UPGRADE = 1u << 2,    /* Connection: upgrade */
    RW_HF_EXPECT_CONTINUE = 1u << 3, /* Expect: 100-continue */
    RW_HF_HAS_HOST = 1u << 4,
    RW_HF_HAS_TE = 1u << 5,     /* Transfer-Encoding present */
    RW_HF_HAS_CL = 1u << 6,     /* Content-Length present */
    RW_HF_CONN_OTHER = 1u << 7, /* Connection names a token other than close/keep-alive/upgrade */
};

/* Limits applied while parsing; exceeding one yields the matching status. */
typedef struct rw_http_limits {
    size_t max_request_line; /* default 8192: 414 beyond */
    size_t max_header_bytes; /* whole head incl. request line, default 16384: 431 beyond */
    size_t max_headers;      /* count, <= RW_HTTP_MAX_HEADERS, 431 beyond */
} rw_http_limits;

/* Fills lim with the defaults above. */
void rw_http_limits_default(rw_http_limits *lim);

/* A parsed request head. All slices borrow from the parsed buffer. */
typedef struct rw_http_request {
    int method; /* enum rw_http_method */
    rw_str method_str;
    rw_str target;           /* request-target as sent (origin-form, absolute-form, authority-form or "*") */
    rw_str path;             /* path part of the target (for absolute-form: after the authority), not
                                normalised; a static "/" for an absolute-form target without a path
                                ("http://h?q"), "*" for asterisk-form, empty for CONNECT (authority-form) */
    rw_str query;            /* after '?', without it; len 0 if none */
    int minor;               /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    rw_str host;             /* Host header value (or authority of absolute-/authority-form, which wins
                                over Host per RFC 9112 3.2.2); len 0 when HTTP/1.0 sends no Host */
    uint32_t flags;          /* RW_HF_* */
    int body;                /* enum rw_http_body: NONE, LENGTH (also for "Content-Length: 0") or CHUNKED */
    uint64_t content_length; /* valid when flags has RW_HF_HAS_CL */
    bool keep_alive;         /* connection may persist after this exchange (version + Connection) */
    size_t head_len;         /* bytes of the head including the final CRLFCRLF */
    size_t nheaders;
    rw_http_header headers[RW_HTTP_MAX_HEADERS];
} rw_http_request;

/* A parsed response head. */
typedef struct rw_http_response {
    int status; /* 100..599 (other codes are rejected with -502) */
    rw_str reason;
    int minor;
    uint32_t flags;
    int body; /* enum rw_http_body, computed with the request method (HEAD, CONNECT) and status (1xx, 204,
                 304) */
    uint64_t content_length; /* valid when flags has RW_HF_HAS_CL (also for HEAD / 304, where body is NONE) */
    bool keep_alive;         /* upstream connection may be reused after the body */
    size_t head_len;
    size_t nheaders;
    rw_http_header headers[RW_HTTP_MAX_HEADERS];
} rw_http_response;

/* Parse results other than a head length (> 0). */
enum {
    RW_HTTP_INCOMPLETE = 0, /* need more bytes; call again with the whole buffer */
};

/* Parses a request head from buf[0..len). Returns head length (> 0) on success,
 * RW_HTTP_INCOMPLETE when more bytes are needed (and limits are not yet
 * exceeded), or a negative HTTP status (-400, -414, -431, -501, -505)
 * saying how to reject the request (then close the connection after the
 * answer). Call again with the whole buffer when more bytes arrive; complete
 * lines are checked at once, so errors and exceeded limits are reported
 * before the head is complete. Leading empty lines (RFC 9112 2.2) are skipped
 * and counted in head_len. lim may be NULL for the defaults. The request-line
 * limit excludes its CRLF; max_header_bytes covers head_len. On failure only
 * method/method_str (for -501) are meaningful in *req. */
ssize_t rw_http_parse_request(const char *buf, size_t len, const rw_http_limits *lim, rw_http_request *req);

/* Parses a response head; req_method is the method of the request it answers.
 * Returns head length (> 0), RW_HTTP_INCOMPLETE, or -502 for an invalid response
 * (syntax, framing or an exceeded limit). Status line: "HTTP/1.0" or "HTTP/1.1",
 * SP, 3 digits, then SP and an optional reason, or nothing. 1xx responses are
 * returned like any other (body NONE): parse again after them. lim may be NULL. */
ssize_t rw_http_parse_response(const char *buf, size_t len, const rw_http_limits *lim, int req_method,
                               rw_http_response *resp);

/* Returns true when name is a hop-by-hop header that a proxy must not forward
 * (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
 * Upgrade), or is one of the tokens listed in any Connection header among
 * headers[0..nheaders) (comma-separated, case-insensitive). Content-Length and
 * Host are never made hop-by-hop by a Connection token (that would let a peer
 * strip the framing of a body that is still forwarded). A client can name any
 * other header there; add the proxy's own headers after filtering. */
bool rw_http_is_hop_by_hop(rw_str name, const rw_http_header *headers, size_t nheaders);

/* Returns true when name is one of the fixed hop-by-hop fields (Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade). */
bool rw_http_is_fixed_hop_by_hop(rw_str name);

/* Whether a connection stays open after a response, and what the response
 * says about it: the one persistence rule for every response ringway writes
 * (proxied, its own errors, canned answers, the admin port). An HTTP/1.1
 * client keeps the connection unless told otherwise; an HTTP/1.0 client only
 * when it asked for keep-alive and is told "Connection: keep-alive", else it
 * waits for a close that must come. */
enum rw_persist {
    RW_PERSIST_KEEP = 0, /* HTTP/1.1 keep-alive: no Connection line */
    RW_PERSIST_KEEP_10,  /* HTTP/1.0 keep-alive: "Connection: keep-alive" */
    RW_PERSIST_CLOSE,    /* "Connection: close", then the connection closes */
    RW_PERSIST__COUNT
};

/* The persistence of a response: keep is whether the connection may stay
 * open (the request allows it, see rw_http_request.keep_alive, and nothing
 * forces a close); minor is the request's HTTP minor version. */
static inline int rw_http_persist(bool keep, int minor)
{
    return !keep ? RW_PERSIST_CLOSE : minor == 0 ? RW_PERSIST_KEEP_10 : RW_PERSIST_KEEP;
}

/* The header line (with its CRLF) a response carries for a persistence mode;
 * empty for RW_PERSIST_KEEP. Static storage. */
rw_str rw_http_persist_line(int mode);

/* The first of headers[0..n) named name (case-insensitive), or NULL. */
const rw_http_header *rw_http_find_header(const rw_http_header *headers, size_t n, const char *name);

/* Returns the standard reason phrase for status (a static string), or "Unknown". */
const char *rw_http_reason(int status);

/* Incremental validator for a chunked body that is forwarded unchanged. The
 * caller owns it; it holds no pointer into the data, so input may be split at
 * any byte. A zero-filled struct is a valid initial state. */
typedef struct rw_chunked {
    int state;
    uint64_t remaining; /* bytes left in the current chunk's data */
    uint32_t line_len;  /* bytes seen of the current size/trailer line */
    uint32_t trailer_bytes;
} rw_chunked;

/* Resets the scanner for a new body. */
void rw_chunked_init(rw_chunked *c);

/* Scans buf[0..len) as the next bytes of a chunked body. Returns the number of
 * bytes that belong to the body (<= len; fewer only when the body ended inside
 * buf, with *done set), or -1 for malformed framing (bad hex size, more than 16
 * hex digits or a size over 2^62, bad extension, missing CRLF, bare LF/CR, size
 * line over 4096 bytes, trailer section over 16384 bytes). Errors are sticky.
 * After the end, further calls return 0 with *done set. done may be NULL. */
ssize_t rw_chunked_scan(rw_chunked *c, const char *buf, size_t len, bool *done);

/* rw_chunked_scan for a body forwarded without its trailer section: also
 * sets *keep to how many of the returned bytes to forward (those before the
 * trailer fields: everything up to and including the last-chunk line). The
 * rest are trailer fields and the final CRLF; once *done, the forwarder ends
 * the body with "\r\n" itself. done and keep must not be NULL. */
ssize_t rw_chunked_scan_drop_trailers(rw_chunked *c, const char *buf, size_t len, bool *done, size_t *keep);

/* Decodes buf[0..len) in place as the next bytes of a chunked body, with the
 * same validation as rw_chunked_scan: the chunk data found is moved to the
 * front of buf and *data_len says how much there is (framing, extensions and
 * trailers are dropped). Returns the bytes consumed (as rw_chunked_scan) or
 * -1 for malformed framing. done may be NULL. */
ssize_t rw_chunked_decode(rw_chunked *c, char *buf, size_t len, bool *done, size_t *data_len);

/* The authority of a URL, [userinfo@]host[:port] (src/http/authority.c). The
 * caller owns it; userinfo and end point into the parsed string, which must
 * outlive them. */
typedef struct rw_authority {
    const char *userinfo; /* undecoded, up to the last '@'; NULL when absent */
    size_t userinfo_len;
    const char *end; /* the first byte after the authority: '/', '?', '#' or the NUL */
    char host[256];  /* a name, an IPv4 address, or an IPv6 address without brackets */
    uint16_t port;   /* the caller's default when absent */
    bool ipv6;       /* written in brackets */
    bool zone;       /* the IPv6 address has a zone id ("fe80::1%eth0") */
    bool ip_literal; /* an IPv4 or IPv6 address, not a name */
} rw_authority;

/* Parses the authority at the start of s (after "scheme://"): host, [IPv6],
 * port (1..65535, default_port when absent), userinfo split off at the last
 * '@'. 0, or -1 with a reason in err that names no URL (callers prefix it). */
int rw_authority_parse(const char *s, uint16_t default_port, rw_authority *out, char *err, size_t errlen);

#endif
