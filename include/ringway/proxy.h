/* proxy.h - the HTTP/1 reverse proxy as a worker handler: what each worker
 * runs on its client connections (src/proxy/). main hands it to the server
 * (rw_server_opts.handler); nothing in src/core includes this header. */
#ifndef RINGWAY_PROXY_H
#define RINGWAY_PROXY_H

#include "ringway/filters.h"
#include "ringway/http.h"
#include "ringway/route.h"
#include "ringway/worker.h"

/* The proxy's rw_worker_handler (static storage). */
extern const rw_worker_handler rw_proxy_handler;

/* ---- the heads the proxy writes (heads.c): pure functions ---- */

#define RW_REQID_MAX 128      /* a client's request id is kept up to this length */
#define RW_TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */

/* True when v may be kept as a request id: 1..RW_REQID_MAX characters from
 * [A-Za-z0-9._:-] (UUIDs, ULIDs, most tracing ids). */
bool rw_reqid_valid(rw_str v);

/* Parses a W3C traceparent (Trace Context level 1): version 00 exactly, or a
 * later version's first four fields; lower-case hex only; neither the trace
 * id nor the parent id all zeros; version ff invalid. On success fills
 * trace_id (16 bytes) and flags. */
bool rw_traceparent_parse(rw_str v, uint8_t trace_id[16], uint8_t *flags);
/* Writes "00-TRACE-SPAN-FLAGS" (RW_TRACEPARENT_LEN bytes, no NUL) into out. */
void rw_traceparent_format(const uint8_t trace_id[16], uint64_t span, uint8_t flags, char *out);

/* What the upstream request head is made of. Everything is borrowed. */
typedef struct rw_reqhead {
    const rw_http_request *rq; /* the client's request */
    const rw_route_cfg *rt;    /* its route (target rewriting, preserve_host) */
    const char *path;          /* the normalised path */
    size_t path_len;
    rw_str upstream_host; /* the instance's host:port, the Host unless preserve_host */
    rw_str peer;          /* the client's address, appended to X-Forwarded-For */
    rw_str reqid_header;  /* the request id's header name (empty: ids are off) */
    rw_str reqid;         /* its value */
    rw_str traceparent;   /* traceparent to send (empty: trace_context off) */
    bool drop_tracestate; /* the client's trace was restarted: its tracestate goes too */
    int body;             /* enum rw_http_body of the forwarded request body */
    bool upgrade;         /* pass a WebSocket upgrade on */
    bool https;           /* the client came over TLS: X-Forwarded-Proto https */
    /* The client's verified certificate (mTLS listener), sent as
     * X-Client-Cert-Subject/-SAN/-Sha256; empty sha256: none. Client-sent
     * X-Client-Cert-* headers are always dropped. */
    rw_str cert_subject, cert_san, cert_sha256;
    const rw_filters *flt; /* with fres: identity headers stripped and added */
    int route;
    const rw_filter_result *fres; /* NULL when no filter ran */
} rw_reqhead;

/* Writes the request head for the upstream into out[0..cap): method and
 * target, Host, the client's end-to-end headers (hop-by-hop, framing and
 * identity fields dropped), the filters' headers, X-Forwarded-*, Via, the
 * request id, traceparent, the framing line. Returns its length, or -1 when it does
 * not fit; *host_off and *host_len locate the Host value (a retry on another
 * instance rewrites it). */
ssize_t rw_proxy_request_head(const rw_reqhead *in, char *out, size_t cap, uint32_t *host_off,
                              uint32_t *host_len);

/* What the client's response head is made of. Everything is borrowed. */
typedef struct rw_resphead {
    const rw_http_response *rs; /* the upstream's response */
    rw_str extra;               /* header lines to add (RateLimit-*), each with its CRLF */
    rw_str reqid_header;        /* the request id's header name (empty: not returned) */
    rw_str reqid;               /* its value (replaces an upstream's field of that name) */
    int minor;                  /* the client's HTTP minor version */
    int body;                   /* enum rw_http_body of the response (UNTIL_CLOSE for a tunnel) */
    bool tunnel;                /* a 101 for a WebSocket: Connection: upgrade */
    bool keep;                  /* the client connection may persist (request and state allow it) */
    bool req_done;              /* the request body was read in full */
    rw_str hsts;                /* a Strict-Transport-Security line with its CRLF, replacing the
                                   upstream's (route.hsts on TLS), or empty */
} rw_resphead;

/* Writes the response head for the client into out[0..cap) and decides:
 * *persist (enum rw_persist, by rw_http_persist: a close-delimited body or
 * an unread request body closes) and *dechunk (a chunked body for an
 * HTTP/1.0 client goes as data only, delimited by the close). Returns its
 * length, or -1 when it does not fit. */
ssize_t rw_proxy_response_head(const rw_resphead *in, char *out, size_t cap, int *persist, bool *dechunk);

#endif
