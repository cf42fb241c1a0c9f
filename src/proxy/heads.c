/* heads.c - the message heads the proxy writes, as pure functions of what
 * was parsed and decided: the request head sent upstream and the response
 * head sent to the client (rw_proxy_request_head, rw_proxy_response_head).
 * No I/O, no connection state: unit-tested on their own
 * (tests/unit/test_heads.c). */
#include "ringway/filters.h"
#include "ringway/http.h"
#include "ringway/proxy.h"

/* Appends to a bounded output buffer; sets ok false on overflow. */
typedef struct outbuf {
    char *p;
    uint32_t len, cap;
    bool ok;
} outbuf;

static inline void out_put(outbuf *o, const char *s, size_t n)
{
    if (n == 0)
        return; /* s may be NULL then (an empty rw_str) */
    if (RW_UNLIKELY(o->len + n > o->cap)) {
        o->ok = false;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += (uint32_t)n;
}

#define OUT_LIT(o, lit) out_put((o), (lit), sizeof(lit) - 1)
#define OUT_STR(o, s) out_put((o), (s).p, (s).len)

/* "name: value" and its CRLF. */
static inline void out_field(outbuf *o, rw_str name, rw_str value)
{
    out_put(o, name.p, name.len);
    out_put(o, ": ", 2);
    out_put(o, value.p, value.len);
    out_put(o, "\r\n", 2);
}

static void out_uint(outbuf *o, uint64_t v)
{
    char tmp[24];
    int i = (int)sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    out_put(o, tmp + i, sizeof(tmp) - (size_t)i);
}

/* The field names a message's Connection header(s) list beyond the fixed
 * hop-by-hop set, gathered once per message rather than once per field. */
typedef struct conn_tokens {
    rw_str tok[8];
    int n;
    bool overflow; /* more than fit: ask rw_http_is_hop_by_hop */
} conn_tokens;

static void conn_tokens_collect(conn_tokens *ct, const rw_http_header *hs, size_t n)
{
    ct->n = 0;
    ct->overflow = false;
    for (size_t i = 0; i < n; i++) {
        if (hs[i].name.len != 10 || !rw_str_ieq(hs[i].name, "connection"))
            continue;
        const char *p = hs[i].value.p, *end = p + hs[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *t = p;
            while (p < end && *p != ',')
                p++;
            const char *e = p;
            while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            rw_str tok = {t, (size_t)(e - t)};
            if (tok.len == 0 || rw_str_ieq(tok, "close") || rw_http_is_fixed_hop_by_hop(tok))
                continue; /* keep-alive, upgrade, ...: already hop-by-hop */
            if (ct->n == (int)RW_ARRAY_LEN(ct->tok)) {
                ct->overflow = true;
                return;
            }
            ct->tok[ct->n++] = tok;
        }
    }
}

static bool is_hop(rw_str name, const conn_tokens *ct, const rw_http_header *hs, size_t n)
{
    if (rw_http_is_fixed_hop_by_hop(name))
        return true;
    if (ct->overflow)
        return rw_http_is_hop_by_hop(name, hs, n);
    for (int i = 0; i < ct->n; i++) {
        if (rw_str_ieq_str(name, ct->tok[i]))
            /* A Connection token never strips framing or routing fields. */
            return !rw_str_ieq(name, "content-length") && !rw_str_ieq(name, "host");
    }
    return false;
}

static bool is_skipped_request_header(rw_str name)
{
    if (name.len >= 14 && rw_ascii_ieq(name.p, "x-client-cert-", 14))
        return true; /* ringway-owned: the mTLS identity of the client */
    switch (name.len) {
    case 4:
        return rw_str_ieq(name, "host");
    case 6:
        return rw_str_ieq(name, "expect");
    case 14: /* re-emitted from the parsed value: "005" or "5, 5" never pass through */
        return rw_str_ieq(name, "content-length");
    case 13: /* identity headers only ringway sets (filters) */
        return rw_str_ieq_dash(name, RW_STR("x-consumer-id"));
    case 19:
        return rw_str_ieq_dash(name, RW_STR("x-consumer-username"));
    case 9: /* RFC 7239: we do not vouch for what the client claims */
        return rw_str_ieq(name, "forwarded") || rw_str_ieq(name, "x-real-ip");
    case 15:
        return rw_str_ieq(name, "x-forwarded-for");
    case 16:
        return rw_str_ieq(name, "x-forwarded-host") || rw_str_ieq(name, "x-forwarded-port");
    case 17:
        return rw_str_ieq(name, "x-forwarded-proto") || rw_str_ieq_dash(name, RW_STR("x-consumer-groups"));
    case 18:
        return rw_str_ieq(name, "x-forwarded-prefix");
    default:
        return false;
    }
}

ssize_t rw_proxy_request_head(const rw_reqhead *in, char *out, size_t cap, uint32_t *host_off,
                              uint32_t *host_len)
{
    const rw_http_request *rq = in->rq;
    const rw_filter_result *fres = in->fres;
    outbuf o = {out, 0, (uint32_t)RW_MIN(cap, (size_t)UINT32_MAX), true};
    OUT_STR(&o, rq->method_str);
    OUT_LIT(&o, " ");
    if (o.ok) {
        rw_str q = fres != NULL && fres->query_set ? fres->query : rq->query;
        ssize_t t = rw_route_upstream_target(in->rt, in->path, in->path_len, q, o.p + o.len, o.cap - o.len);
        if (t < 0)
            return -1;
        o.len += (uint32_t)t;
    }
    /* We speak HTTP/1.1 upstream whatever the client speaks (RFC 9110 2.5);
     * a chunked answer to an HTTP/1.0 client is de-chunked on the way back. */
    OUT_LIT(&o, " HTTP/1.1\r\nHost: ");
    *host_off = o.len;
    if (in->rt->preserve_host && rq->host.len > 0)
        OUT_STR(&o, rq->host);
    else
        OUT_STR(&o, in->upstream_host); /* host:port as configured */
    *host_len = o.len - *host_off;
    OUT_LIT(&o, "\r\n");
    const rw_http_header *xff = NULL;
    conn_tokens ct = {.n = 0};
    if (rq->flags & RW_HF_CONN_OTHER) /* else Connection names nothing beyond the fixed set */
        conn_tokens_collect(&ct, rq->headers, rq->nheaders);
    for (size_t i = 0; i < rq->nheaders; i++) {
        const rw_http_header *h = &rq->headers[i];
        if (in->reqid_header.len > 0 && rw_str_ieq_str(h->name, in->reqid_header))
            continue; /* ours to set */
        if (h->name.len == 11 && in->traceparent.len > 0 && rw_str_ieq(h->name, "traceparent"))
            continue; /* ours to set: a new parent id */
        if (h->name.len == 10 && in->drop_tracestate && rw_str_ieq(h->name, "tracestate"))
            continue; /* belongs to the trace that was not continued */
        if (is_skipped_request_header(h->name)) {
            if (h->name.len == 15 && xff == NULL)
                xff = h;
            continue;
        }
        if (is_hop(h->name, &ct, rq->headers, rq->nheaders))
            continue;
        if (fres != NULL && rw_filters_strip(in->flt, in->route, h->name))
            continue; /* identity headers are ours to set; hidden credentials */
        out_field(&o, h->name, h->value);
    }
    for (uint32_t i = 0; fres != NULL && i < fres->nadd; i++) {
        out_field(&o, fres->add[i].name, fres->add[i].value);
    }
    OUT_LIT(&o, "X-Forwarded-For: ");
    if (xff != NULL) {
        /* Every X-Forwarded-For line, in order, then the peer. */
        for (size_t i = 0; i < rq->nheaders; i++) {
            const rw_http_header *h = &rq->headers[i];
            if (h->name.len == 15 && rw_str_ieq(h->name, "x-forwarded-for")) {
                OUT_STR(&o, h->value);
                OUT_LIT(&o, ", ");
            }
        }
    }
    OUT_STR(&o, in->peer);
    if (in->https)
        OUT_LIT(&o, "\r\nX-Forwarded-Proto: https\r\n");
    else
        OUT_LIT(&o, "\r\nX-Forwarded-Proto: http\r\n");
    if (rq->host.len > 0)
        out_field(&o, RW_STR("X-Forwarded-Host"), rq->host);
    if (in->cert_sha256.len > 0) {
        out_field(&o, RW_STR("X-Client-Cert-Subject"), in->cert_subject);
        if (in->cert_san.len > 0)
            out_field(&o, RW_STR("X-Client-Cert-SAN"), in->cert_san);
        out_field(&o, RW_STR("X-Client-Cert-Sha256"), in->cert_sha256);
    }
    OUT_LIT(&o, "Via: 1.1 ringway\r\n");
    if (in->reqid_header.len > 0)
        out_field(&o, in->reqid_header, in->reqid);
    if (in->traceparent.len > 0)
        out_field(&o, RW_STR("traceparent"), in->traceparent);
    if (in->body == RW_BODY_CHUNKED) {
        OUT_LIT(&o, "Transfer-Encoding: chunked\r\n");
    } else if (rq->flags & RW_HF_HAS_CL) {
        OUT_LIT(&o, "Content-Length: ");
        out_uint(&o, rq->content_length);
        OUT_LIT(&o, "\r\n");
    }
    if (in->upgrade) {
        /* Upgrade is hop-by-hop: pass the client's wish on explicitly. */
        const rw_http_header *up = rw_http_find_header(rq->headers, rq->nheaders, "upgrade");
        OUT_LIT(&o, "Connection: upgrade\r\nUpgrade: ");
        if (up != NULL)
            OUT_STR(&o, up->value);
        OUT_LIT(&o, "\r\n");
    }
    OUT_LIT(&o, "\r\n");
    return o.ok ? (ssize_t)o.len : -1;
}

ssize_t rw_proxy_response_head(const rw_resphead *in, char *out, size_t cap, int *persist, bool *dechunk)
{
    const rw_http_response *rs = in->rs;
    outbuf o = {out, 0, (uint32_t)RW_MIN(cap, (size_t)UINT32_MAX), true};
    *dechunk = false;
    OUT_LIT(&o, "HTTP/1.1 ");
    out_uint(&o, (uint64_t)rs->status);
    OUT_LIT(&o, " ");
    OUT_STR(&o, rs->reason);
    OUT_LIT(&o, "\r\n");
    conn_tokens ct = {.n = 0};
    if (rs->flags & RW_HF_CONN_OTHER)
        conn_tokens_collect(&ct, rs->headers, rs->nheaders);
    for (size_t i = 0; i < rs->nheaders; i++) {
        const rw_http_header *h = &rs->headers[i];
        if (is_hop(h->name, &ct, rs->headers, rs->nheaders) ||
            (h->name.len == 14 && rw_str_ieq(h->name, "content-length")) ||
            (in->reqid_header.len > 0 && rw_str_ieq_str(h->name, in->reqid_header)) ||
            (in->hsts.len > 0 && h->name.len == 25 && rw_str_ieq(h->name, "strict-transport-security")))
            continue;
        out_field(&o, h->name, h->value);
    }
    OUT_LIT(&o, "Via: 1.1 ringway\r\n");
    if (in->reqid_header.len > 0)
        out_field(&o, in->reqid_header, in->reqid);
    OUT_STR(&o, in->extra);
    OUT_STR(&o, in->hsts);
    bool keep = in->keep;
    if (in->body == RW_BODY_CHUNKED && in->minor == 0) {
        *dechunk = true; /* an HTTP/1.0 client: data only, delimited by close */
        keep = false;
    } else if (in->body == RW_BODY_CHUNKED) {
        OUT_LIT(&o, "Transfer-Encoding: chunked\r\n");
    } else if (rs->flags & RW_HF_HAS_CL) {
        OUT_LIT(&o, "Content-Length: "); /* the parsed value, one canonical line */
        out_uint(&o, rs->content_length);
        OUT_LIT(&o, "\r\n");
    }
    if (in->tunnel) {
        const rw_http_header *up = rw_http_find_header(rs->headers, rs->nheaders, "upgrade");
        OUT_LIT(&o, "Connection: upgrade\r\n");
        if (up != NULL)
            out_field(&o, RW_STR("Upgrade"), up->value);
        OUT_LIT(&o, "\r\n");
        *persist = RW_PERSIST_KEEP; /* the connection becomes the tunnel */
        return o.ok ? (ssize_t)o.len : -1;
    }
    /* A body delimited by the upstream's close, or a request body the
     * upstream did not wait for, leaves the client connection unusable. */
    if (in->body == RW_BODY_UNTIL_CLOSE || !in->req_done)
        keep = false;
    *persist = rw_http_persist(keep, in->minor);
    OUT_STR(&o, rw_http_persist_line(*persist));
    OUT_LIT(&o, "\r\n");
    return o.ok ? (ssize_t)o.len : -1;
}

/* ---- request ids and trace context ---- */

bool rw_reqid_valid(rw_str v)
{
    if (v.len == 0 || v.len > RW_REQID_MAX)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        char ch = v.p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '-' ||
              ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

/* n lower-case hex digits at p into out (n / 2 bytes); false on anything else. */
static bool lower_hex(const char *p, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i += 2) {
        int hi = rw_hexval(p[i]), lo = rw_hexval(p[i + 1]);
        if (hi < 0 || lo < 0 || (p[i] >= 'A' && p[i] <= 'F') || (p[i + 1] >= 'A' && p[i + 1] <= 'F'))
            return false;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

bool rw_traceparent_parse(rw_str v, uint8_t trace_id[16], uint8_t *flags)
{
    uint8_t version, parent[8];
    if (v.len < RW_TRACEPARENT_LEN || v.p[2] != '-' || v.p[35] != '-' || v.p[52] != '-')
        return false;
    if (!lower_hex(v.p, 2, &version) || version == 0xff)
        return false;
    if (version == 0 && v.len != RW_TRACEPARENT_LEN)
        return false;
    if (version > 0 && v.len > RW_TRACEPARENT_LEN && v.p[RW_TRACEPARENT_LEN] != '-')
        return false; /* a later version may add fields, after a dash */
    if (!lower_hex(v.p + 3, 32, trace_id) || !lower_hex(v.p + 36, 16, parent) ||
        !lower_hex(v.p + 53, 2, flags))
        return false;
    return !all_zero(trace_id, 16) && !all_zero(parent, 8);
}

/* Two lower-case hex digits per byte value. */
#define H4(b)                                                                                                \
    {                                                                                                        \
        "0123456789abcdef"[(b) >> 4], "0123456789abcdef"[(b)&15]                                             \
    }
#define R16(h)                                                                                               \
    H4(h + 0), H4(h + 1), H4(h + 2), H4(h + 3), H4(h + 4), H4(h + 5), H4(h + 6), H4(h + 7), H4(h + 8),       \
        H4(h + 9), H4(h + 10), H4(h + 11), H4(h + 12), H4(h + 13), H4(h + 14), H4(h + 15)
static const char hex2[256][2] = {R16(0x00), R16(0x10), R16(0x20), R16(0x30), R16(0x40), R16(0x50),
                                  R16(0x60), R16(0x70), R16(0x80), R16(0x90), R16(0xa0), R16(0xb0),
                                  R16(0xc0), R16(0xd0), R16(0xe0), R16(0xf0)};
#undef R16
#undef H4

void rw_traceparent_format(const uint8_t trace_id[16], uint64_t span, uint8_t flags, char *out)
{
    memcpy(out, "00-", 3);
    for (int i = 0; i < 16; i++)
        memcpy(out + 3 + 2 * i, hex2[trace_id[i]], 2);
    out[35] = '-';
    for (int i = 0; i < 8; i++)
        memcpy(out + 36 + 2 * i, hex2[(span >> (56 - 8 * i)) & 0xff], 2);
    out[52] = '-';
    memcpy(out + 53, hex2[flags], 2);
}
