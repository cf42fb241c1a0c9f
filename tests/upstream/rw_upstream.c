/* rw_upstream.c - a scripted HTTP/1.1 upstream for ringway's integration tests.
 *
 * Thread per connection, blocking I/O, its own small parser: it is a test tool,
 * not a server. Every response carries X-Upstream: NAME and X-Upstream-Conn: N
 * (the serial of the connection it was sent on) so tests can see which instance
 * answered and whether the proxy reused a pooled connection.
 *
 * Usage: rw_upstream --listen 127.0.0.1:PORT [--name NAME] [--idle-timeout MS]
 *   PORT 0 picks an ephemeral port; "PORT <n>" is printed on stdout once listening.
 *   --idle-timeout MS closes a keep-alive connection that stays idle for MS.
 *   --status N answers every request but /stats* and /healthz* with status N
 *   and an empty body (a broken instance for outlier tests).
 *
 * Endpoints (by path prefix; the query is ignored unless said otherwise):
 *   /echo            200, body = the request head as received (request line and
 *                    headers with their CRLFs, then the blank line), then the
 *                    request body (chunked request bodies are decoded)
 *   /echo-body       200, body = the request body only
 *   /trailers        200, body = the trailer lines of the chunked request body
 *                    (each with its CRLF; empty when there were none)
 *   /sum             200, body = {"bytes":N,"fnv1a":"<16 hex>"} of the request body
 *   /bytes/N         N bytes of the pattern (rw_pattern below), Content-Length
 *   /chunked/N       N pattern bytes, chunked in ~4k chunks, with a trailer
 *   /close/N         N pattern bytes, no Content-Length, Connection: close
 *   /drip/N/MS       chunked: N chunks "chunk <i>\n", MS milliseconds apart
 *   /status/NNN      that status, empty body (none at all for 1xx/204/304);
 *                    ?reason=TEXT sets the reason phrase
 *   /set-headers?K=V&K2=V2   200 with those response headers (values %-decoded)
 *   /delay/MS        sleep MS, then 200 "ok"
 *   /early-hints     a 103 Early Hints interim response, then 200 "ok"
 *   /drop            close without responding
 *   /half            send a partial response head, then close
 *   /truncate/N      promise N pattern bytes (Content-Length), send N/2, close
 *   /stats           {"connections":C,"requests":R,"completed":B,"accepted":A,
 *                    "tunnel_bytes":T,"health":H}:
 *                    C counts the connections that carried at least one request
 *                    other than /stats*, R those requests (counted once the head
 *                    is read), B those whose body was read in full, A every
 *                    accepted connection, T the bytes received on /upgrade
 *                    tunnels
 *   /stats/reset     zeroes the counters
 *   /healthz         200 "ok", or 503 "failing" after /healthz/fail (until
 *                    /healthz/ok); counted in /stats "health", not in the
 *                    other counters
 *   /continue        like /echo-body (every endpoint answers Expect: 100-continue
 *                    with "100 Continue" before reading the body)
 *   /upgrade         with Connection: upgrade (a token, any case) and Upgrade: P:
 *                    "101 Switching Protocols" (Connection: Upgrade, Upgrade: P),
 *                    then the connection is a tunnel: every byte received is
 *                    sent back with ASCII letters uppercased (bytes that came
 *                    right behind the request head included); on the client's
 *                    half-close it sends "BYE\n", shuts its write side down and
 *                    closes. ?hello=TEXT sends TEXT in the same write as the
 *                    101 (bytes from the upstream right behind the head).
 *                    ?shut-first=1: no echo; right after the 101 (and hello) it
 *                    shuts its write side down, then reads (and counts) until
 *                    EOF and closes: the upstream half-closes first.
 *                    ?as=P names P in the 101 instead of the requested protocol.
 *                    Without those headers: 426, body "upgrade required\n"
 *   /upgrade-head    200, body = the request head as received (like /echo, so a
 *                    test can see which upgrade headers reached the upstream)
 *   anything else    200, body "NAME <method> <target>\n"
 * HEAD gets the same head as GET and no body. Keep-alive and pipelining follow
 * HTTP/1.1 (HTTP/1.0 only with Connection: keep-alive). SIGTERM exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (1u << 20)
#define IO_CHUNK 65536

static const char *g_name = "upstream";
static int g_idle_timeout_ms; /* 0 = never */
static atomic_long g_accepted;
static atomic_long g_connections;
static atomic_long g_requests;
static atomic_long g_completed;
static atomic_long g_serial;
static atomic_long g_tunnel_bytes;
static int g_status;             /* --status N: every other request gets N */
static atomic_long g_health;     /* GET /healthz requests (health probes) */
static atomic_int g_health_fail; /* /healthz answers 503 while set */

/* The deterministic body pattern: byte i of every generated body. The
 * integration harness has the same function (h_pattern_byte). */
static inline unsigned char rw_pattern(uint64_t i)
{
    return (unsigned char)((uint32_t)(i * 2654435761u) >> 24);
}

typedef struct conn {
    int fd;
    long serial;
    bool counted; /* counted in g_connections */
    char *buf;    /* received, not yet consumed bytes: buf[off..len) */
    size_t off, len, cap;
    char trailers[8192]; /* the last chunked request body's trailer lines, CRLF-joined */
    size_t trailers_len;
} conn;

typedef struct request {
    char *head; /* copy of the raw head, NUL-terminated */
    size_t head_len;
    char method[32];
    char *target; /* points into a private copy */
    char *path;
    char *query; /* NULL when none */
    int minor;
    bool keep_alive;
    bool expect_continue;
    bool chunked;
    bool has_cl;
    bool conn_upgrade; /* Connection: upgrade */
    bool has_upgrade;  /* an Upgrade header (its value in upgrade) */
    char upgrade[256];
    uint64_t content_length;
    char *tbuf; /* storage for target/path/query */
} request;

static void die(const char *what)
{
    fprintf(stderr, "rw_upstream: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ---- low-level I/O ----------------------------------------------------- */

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sendf(int fd, const char *fmt, ...)
{
    char tmp[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    return send_all(fd, tmp, (size_t)n);
}

/* Reads more bytes into the connection buffer. Returns bytes read, 0 on EOF,
 * -1 on error, -2 when idle_ms passed with nothing to read. */
static ssize_t fill(conn *c, int idle_ms)
{
    if (c->off > 0 && c->off == c->len)
        c->off = c->len = 0;
    if (c->len == c->cap) {
        if (c->off > 0) {
            memmove(c->buf, c->buf + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        } else {
            size_t ncap = c->cap * 2;
            char *nb = realloc(c->buf, ncap);
            if (!nb)
                return -1;
            c->buf = nb;
            c->cap = ncap;
        }
    }
    if (idle_ms > 0) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr;
        do
            pr = poll(&pfd, 1, idle_ms);
        while (pr == -1 && errno == EINTR);
        if (pr == 0)
            return -2;
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r == -1 && errno == EINTR)
            continue;
        if (r > 0)
            c->len += (size_t)r;
        return r;
    }
}

static size_t avail(const conn *c)
{
    return c->len - c->off;
}

/* Reads exactly n bytes into out (out may be NULL to discard; the bytes are
 * then passed to sink if given). Returns 0 or -1. */
typedef void (*sink_fn)(void *ctx, const char *p, size_t n);

static int read_exact(conn *c, uint64_t n, sink_fn sink, void *ctx)
{
    while (n > 0) {
        if (avail(c) == 0) {
            ssize_t r = fill(c, 0);
            if (r <= 0)
                return -1;
        }
        size_t take = avail(c) < n ? avail(c) : (size_t)n;
        if (sink)
            sink(ctx, c->buf + c->off, take);
        c->off += take;
        n -= take;
    }
    return 0;
}

/* Reads one CRLF- (or LF-) terminated line; returns a malloc'd copy without the
 * terminator, or NULL on EOF/error/over-long line. */
static char *read_line(conn *c)
{
    for (;;) {
        char *s = c->buf + c->off;
        char *nl = memchr(s, '\n', avail(c));
        if (nl) {
            size_t n = (size_t)(nl - s);
            c->off += n + 1;
            if (n > 0 && s[n - 1] == '\r')
                n--;
            char *line = malloc(n + 1);
            if (!line)
                return NULL;
            memcpy(line, s, n);
            line[n] = '\0';
            return line;
        }
        if (avail(c) > 65536)
            return NULL;
        if (fill(c, 0) <= 0)
            return NULL;
    }
}

/* ---- body sinks --------------------------------------------------------- */

typedef struct membuf {
    char *p;
    size_t len, cap;
} membuf;

static void mb_append(membuf *m, const char *p, size_t n)
{
    if (m->len + n + 1 > m->cap) {
        size_t ncap = m->cap ? m->cap : 4096;
        while (ncap < m->len + n + 1)
            ncap *= 2;
        char *np = realloc(m->p, ncap);
        if (!np) {
            fprintf(stderr, "rw_upstream: out of memory\n");
            exit(2);
        }
        m->p = np;
        m->cap = ncap;
    }
    memcpy(m->p + m->len, p, n);
    m->len += n;
    m->p[m->len] = '\0';
}

static void sink_mem(void *ctx, const char *p, size_t n)
{
    mb_append(ctx, p, n);
}

typedef struct sum {
    uint64_t bytes;
    uint64_t fnv;
} sum;

static void sink_sum(void *ctx, const char *p, size_t n)
{
    sum *s = ctx;
    uint64_t h = s->fnv;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    s->fnv = h;
    s->bytes += n;
}

/* Reads the request body (Content-Length or chunked, decoded) into sink. */
static int read_body(conn *c, const request *rq, sink_fn sink, void *ctx)
{
    c->trailers_len = 0;
    if (rq->chunked) {
        for (;;) {
            char *line = read_line(c);
            if (!line)
                return -1;
            char *end;
            errno = 0;
            unsigned long long sz = strtoull(line, &end, 16);
            bool bad = end == line || errno != 0;
            free(line);
            if (bad)
                return -1;
            if (sz == 0)
                break;
            if (read_exact(c, sz, sink, ctx) == -1)
                return -1;
            line = read_line(c); /* the CRLF after the data */
            if (!line)
                return -1;
            bad = line[0] != '\0';
            free(line);
            if (bad)
                return -1;
        }
        for (;;) { /* trailers up to the empty line (kept for /trailers) */
            char *line = read_line(c);
            if (!line)
                return -1;
            bool empty = line[0] == '\0';
            size_t ll = strlen(line);
            if (!empty && c->trailers_len + ll + 2 < sizeof(c->trailers)) {
                memcpy(c->trailers + c->trailers_len, line, ll);
                memcpy(c->trailers + c->trailers_len + ll, "\r\n", 2);
                c->trailers_len += ll + 2;
            }
            free(line);
            if (empty)
                return 0;
        }
    }
    if (rq->has_cl)
        return read_exact(c, rq->content_length, sink, ctx);
    return 0;
}

/* ---- request head ------------------------------------------------------- */

static void request_free(request *rq)
{
    free(rq->head);
    free(rq->tbuf);
    memset(rq, 0, sizeof *rq);
}

static bool token_in_list(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
            return true;
    }
    return false;
}

/* Reads and parses one request head. Returns 1 on success, 0 on a clean EOF
 * or idle timeout before any byte, -1 on error (connection is then closed). */
static int read_head(conn *c, request *rq)
{
    memset(rq, 0, sizeof *rq);
    size_t scanned = 0;
    for (;;) {
        /* skip leading empty lines (RFC 9112 2.2) */
        while (avail(c) >= 2 && c->buf[c->off] == '\r' && c->buf[c->off + 1] == '\n')
            c->off += 2;
        while (avail(c) >= 1 && c->buf[c->off] == '\n')
            c->off += 1;
        char *s = c->buf + c->off;
        size_t n = avail(c);
        char *end = NULL;
        size_t from = scanned > 3 ? scanned - 3 : 0;
        for (size_t i = from; i + 3 < n; i++)
            if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n') {
                end = s + i + 4;
                break;
            }
        if (end) {
            rq->head_len = (size_t)(end - s);
            break;
        }
        scanned = n;
        if (n > HEAD_MAX)
            return -1;
        ssize_t r = fill(c, n == 0 ? g_idle_timeout_ms : 0);
        if (r == -2 || (r == 0 && n == 0))
            return 0;
        if (r <= 0)
            return -1;
    }
    rq->head = malloc(rq->head_len + 1);
    if (!rq->head)
        return -1;
    memcpy(rq->head, c->buf + c->off, rq->head_len);
    rq->head[rq->head_len] = '\0';
    c->off += rq->head_len;

    /* request line */
    char *line_end = strstr(rq->head, "\r\n");
    size_t ll = (size_t)(line_end - rq->head);
    rq->tbuf = malloc(ll + 1);
    if (!rq->tbuf)
        return -1;
    memcpy(rq->tbuf, rq->head, ll);
    rq->tbuf[ll] = '\0';
    char *sp1 = strchr(rq->tbuf, ' ');
    if (!sp1)
        return -1;
    *sp1 = '\0';
    snprintf(rq->method, sizeof rq->method, "%s", rq->tbuf);
    char *tgt = sp1 + 1;
    char *sp2 = strrchr(tgt, ' ');
    if (!sp2)
        return -1;
    *sp2 = '\0';
    const char *ver = sp2 + 1;
    if (strncmp(ver, "HTTP/1.", 7) != 0)
        return -1;
    rq->minor = ver[7] == '0' ? 0 : 1;
    /* keep the whole target, then split path and query in a second copy */
    size_t tl = strlen(tgt);
    char *both = malloc(2 * tl + 2);
    if (!both)
        return -1;
    memcpy(both, tgt, tl + 1);
    memcpy(both + tl + 1, tgt, tl + 1);
    free(rq->tbuf);
    rq->tbuf = both;
    rq->target = both;
    rq->path = both + tl + 1;
    char *q = strchr(rq->path, '?');
    if (q) {
        *q = '\0';
        rq->query = q + 1;
    }
    if (strncmp(rq->path, "http://", 7) == 0) { /* absolute-form: keep the path */
        char *slash = strchr(rq->path + 7, '/');
        rq->path = slash ? slash : (char *)"/";
    }

    /* headers */
    bool conn_close = false, conn_keep = false;
    char *h = line_end + 2;
    while (h < rq->head + rq->head_len - 2) {
        char *e = strstr(h, "\r\n");
        if (!e)
            break;
        char *colon = memchr(h, ':', (size_t)(e - h));
        if (colon) {
            size_t nl = (size_t)(colon - h);
            char *v = colon + 1;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            char val[4096];
            size_t vl = (size_t)(e - v);
            if (vl >= sizeof val)
                vl = sizeof val - 1;
            memcpy(val, v, vl);
            val[vl] = '\0';
            while (vl > 0 && (val[vl - 1] == ' ' || val[vl - 1] == '\t'))
                val[--vl] = '\0';
            if (nl == 14 && strncasecmp(h, "Content-Length", 14) == 0) {
                rq->has_cl = true;
                rq->content_length = strtoull(val, NULL, 10);
            } else if (nl == 17 && strncasecmp(h, "Transfer-Encoding", 17) == 0) {
                if (token_in_list(val, "chunked"))
                    rq->chunked = true;
            } else if (nl == 10 && strncasecmp(h, "Connection", 10) == 0) {
                if (token_in_list(val, "close"))
                    conn_close = true;
                if (token_in_list(val, "keep-alive"))
                    conn_keep = true;
                if (token_in_list(val, "upgrade"))
                    rq->conn_upgrade = true;
            } else if (nl == 7 && strncasecmp(h, "Upgrade", 7) == 0) {
                rq->has_upgrade = true;
                size_t ul = vl < sizeof rq->upgrade ? vl : sizeof rq->upgrade - 1;
                memcpy(rq->upgrade, val, ul);
                rq->upgrade[ul] = '\0';
            } else if (nl == 6 && strncasecmp(h, "Expect", 6) == 0) {
                if (strcasecmp(val, "100-continue") == 0)
                    rq->expect_continue = true;
            }
        }
        h = e + 2;
    }
    rq->keep_alive = rq->minor >= 1 ? !conn_close : (conn_keep && !conn_close);
    return 1;
}

/* ---- responses ---------------------------------------------------------- */

static const char *reason_for(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 418:
        return "I'm a teapot";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Whatever";
    }
}

/* Sends a whole response head: the status line, the standard headers, extra
 * (CRLF-terminated header lines, or ""), Connection: close when the connection
 * ends after this response, and the blank line. */
static int send_head_start(conn *c, const request *rq, int status, const char *reason, const char *extra)
{
    return sendf(c->fd, "HTTP/1.1 %d %s\r\nX-Upstream: %s\r\nX-Upstream-Conn: %ld\r\n%s%s\r\n", status,
                 reason ? reason : reason_for(status), g_name, c->serial, extra,
                 rq->keep_alive ? "" : "Connection: close\r\n");
}

static bool is_head(const request *rq)
{
    return strcmp(rq->method, "HEAD") == 0;
}

static int send_simple(conn *c, const request *rq, int status, const char *ctype, const char *body,
                       size_t blen)
{
    char extra[256];
    snprintf(extra, sizeof extra, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, blen);
    if (send_head_start(c, rq, status, NULL, extra) == -1)
        return -1;
    if (!is_head(rq) && blen > 0 && send_all(c->fd, body, blen) == -1)
        return -1;
    return 0;
}

static void fill_pattern(char *buf, uint64_t start, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)rw_pattern(start + i);
}

static int send_pattern(int fd, uint64_t n)
{
    char *buf = malloc(IO_CHUNK);
    if (!buf)
        return -1;
    uint64_t done = 0;
    int rc = 0;
    while (done < n) {
        size_t k = n - done < IO_CHUNK ? (size_t)(n - done) : IO_CHUNK;
        fill_pattern(buf, done, k);
        if (send_all(fd, buf, k) == -1) {
            rc = -1;
            break;
        }
        done += k;
    }
    free(buf);
    return rc;
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s in place ('+' becomes a space). */
static void url_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else if (*p == '+') {
            *o++ = ' ';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* Finds query parameter name in q (not decoded); copies its decoded value. */
static bool query_get(const char *q, const char *name, char *out, size_t cap)
{
    if (!q)
        return false;
    size_t nl = strlen(name);
    const char *p = q;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        if (seg > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = seg - nl - 1;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            url_decode(out);
            return true;
        }
        p += seg + (amp ? 1 : 0);
    }
    return false;
}

static bool path_is(const char *path, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return false;
    if (path[n] != '\0' && path[n] != '/')
        return false;
    if (rest)
        *rest = path[n] == '/' ? path + n + 1 : path + n;
    return true;
}

/* /upgrade after the 101: echoes every byte (already buffered ones first) with
 * ASCII letters uppercased until EOF, then sends "BYE\n" and shuts its write
 * side down; with echo false it only counts what it reads until EOF. Always
 * ends the connection (returns 0). */
static int tunnel_echo(conn *c, bool echo)
{
    for (;;) {
        if (avail(c) > 0) {
            char *p = c->buf + c->off;
            size_t n = avail(c);
            atomic_fetch_add(&g_tunnel_bytes, (long)n);
            for (size_t i = 0; echo && i < n; i++)
                if (p[i] >= 'a' && p[i] <= 'z')
                    p[i] = (char)(p[i] - 'a' + 'A');
            if (echo && send_all(c->fd, p, n) == -1)
                return 0;
            c->off = c->len = 0;
        }
        ssize_t r = fill(c, 0);
        if (r == 0) {
            if (echo) {
                send_all(c->fd, "BYE\n", 4);
                shutdown(c->fd, SHUT_WR);
            }
            return 0;
        }
        if (r < 0)
            return 0;
    }
}

/* Serves one request. Returns 1 to keep the connection, 0 to close it. */
static int serve(conn *c, request *rq)
{
    const char *rest = NULL;
    bool stats = path_is(rq->path, "/stats", NULL);
    bool healthz = path_is(rq->path, "/healthz", NULL);
    if (!stats && !healthz) {
        atomic_fetch_add(&g_requests, 1);
        if (!c->counted) {
            c->counted = true;
            atomic_fetch_add(&g_connections, 1);
        }
    }
    if (rq->expect_continue && (rq->chunked || (rq->has_cl && rq->content_length > 0))) {
        if (send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) == -1)
            return 0;
    }

    if (path_is(rq->path, "/drop", NULL))
        return 0;
    if (path_is(rq->path, "/half", NULL)) {
        sendf(c->fd, "HTTP/1.1 200 OK\r\nX-Upstream: %s\r\nContent-Le", g_name);
        return 0;
    }

    /* everything else reads the request body first */
    membuf body = {0};
    sum s = {0, 0xcbf29ce484222325ull};
    bool want_sum = path_is(rq->path, "/sum", NULL);
    if (read_body(c, rq, want_sum ? sink_sum : sink_mem, want_sum ? (void *)&s : (void *)&body) == -1) {
        free(body.p);
        return 0;
    }
    if (!stats && !healthz)
        atomic_fetch_add(&g_completed, 1);

    int rc = 0;
    if (healthz) {
        if (strcmp(rq->path, "/healthz/fail") == 0 || strcmp(rq->path, "/healthz/ok") == 0) {
            atomic_store(&g_health_fail, rq->path[9] == 'f');
            rc = send_simple(c, rq, 200, "text/plain", "set\n", 4);
        } else {
            atomic_fetch_add(&g_health, 1);
            bool fail = atomic_load(&g_health_fail);
            rc =
                send_simple(c, rq, fail ? 503 : 200, "text/plain", fail ? "failing\n" : "ok\n", fail ? 8 : 3);
        }
    } else if (g_status > 0 && !stats) {
        rc = send_head_start(c, rq, g_status, NULL, "Content-Length: 0\r\n");
    } else if (stats) {
        if (path_is(rq->path, "/stats/reset", NULL)) {
            atomic_store(&g_connections, 0);
            atomic_store(&g_requests, 0);
            atomic_store(&g_completed, 0);
            atomic_store(&g_accepted, 0);
            atomic_store(&g_tunnel_bytes, 0);
            atomic_store(&g_health, 0);
        }
        char js[256];
        int n = snprintf(js, sizeof js,
                         "{\"connections\": %ld, \"requests\": %ld, \"completed\": %ld, "
                         "\"accepted\": %ld, \"tunnel_bytes\": %ld, \"health\": %ld}\n",
                         atomic_load(&g_connections), atomic_load(&g_requests), atomic_load(&g_completed),
                         atomic_load(&g_accepted), atomic_load(&g_tunnel_bytes), atomic_load(&g_health));
        rc = send_simple(c, rq, 200, "application/json", js, (size_t)n);
    } else if (path_is(rq->path, "/trailers", NULL)) {
        rc = send_simple(c, rq, 200, "text/plain", c->trailers, c->trailers_len);
    } else if (path_is(rq->path, "/echo-body", NULL) || path_is(rq->path, "/continue", NULL)) {
        rc = send_simple(c, rq, 200, "application/octet-stream", body.p ? body.p : "", body.len);
    } else if (path_is(rq->path, "/echo", NULL)) {
        membuf out = {0};
        mb_append(&out, rq->head, rq->head_len);
        if (body.len)
            mb_append(&out, body.p, body.len);
        rc = send_simple(c, rq, 200, "text/plain", out.p, out.len);
        free(out.p);
    } else if (path_is(rq->path, "/upgrade-head", NULL)) {
        rc = send_simple(c, rq, 200, "text/plain", rq->head, rq->head_len);
    } else if (path_is(rq->path, "/upgrade", NULL)) {
        if (rq->conn_upgrade && rq->has_upgrade && rq->upgrade[0] != '\0') {
            free(body.p);
            char hello[1024];
            if (!query_get(rq->query, "hello", hello, sizeof hello))
                hello[0] = '\0';
            char as[256];
            if (!query_get(rq->query, "as", as, sizeof as))
                snprintf(as, sizeof as, "%s", rq->upgrade);
            if (sendf(c->fd,
                      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n%s", as,
                      hello) == -1)
                return 0;
            char shut[8];
            bool shut_first = query_get(rq->query, "shut-first", shut, sizeof shut) && strcmp(shut, "1") == 0;
            if (shut_first)
                shutdown(c->fd, SHUT_WR);
            return tunnel_echo(c, !shut_first);
        }
        static const char msg[] = "upgrade required\n";
        rc = send_simple(c, rq, 426, "text/plain", msg, sizeof msg - 1);
    } else if (want_sum) {
        char js[128];
        int n = snprintf(js, sizeof js, "{\"bytes\": %" PRIu64 ", \"fnv1a\": \"%016" PRIx64 "\"}\n", s.bytes,
                         s.fnv);
        rc = send_simple(c, rq, 200, "application/json", js, (size_t)n);
    } else if (path_is(rq->path, "/bytes", &rest)) {
        uint64_t n = strtoull(rest, NULL, 10);
        char extra[128];
        snprintf(extra, sizeof extra,
                 "Content-Type: application/octet-stream\r\nContent-Length: %" PRIu64 "\r\n", n);
        rc = send_head_start(c, rq, 200, NULL, extra);
        if (rc == 0 && !is_head(rq))
            rc = send_pattern(c->fd, n);
    } else if (path_is(rq->path, "/chunked", &rest)) {
        uint64_t n = strtoull(rest, NULL, 10);
        if (rq->minor == 0) { /* HTTP/1.0 cannot take chunked: delimit by close */
            rq->keep_alive = false;
            rc = send_head_start(c, rq, 200, NULL, "Content-Type: application/octet-stream\r\n");
            if (rc == 0 && !is_head(rq))
                rc = send_pattern(c->fd, n);
        } else {
            rc = send_head_start(c, rq, 200, NULL,
                                 "Content-Type: application/octet-stream\r\n"
                                 "Transfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n");
            if (rc == 0 && !is_head(rq)) {
                char *buf = malloc(4096 + 64);
                uint64_t done = 0;
                unsigned k = 0;
                while (rc == 0 && done < n) {
                    /* ~4k chunks, sizes varying a little so boundaries move */
                    size_t want = 4096 - (k++ % 7) * 100;
                    size_t m = n - done < want ? (size_t)(n - done) : want;
                    int hl = snprintf(buf, 64, "%zx\r\n", m);
                    fill_pattern(buf + hl, done, m);
                    memcpy(buf + hl + m, "\r\n", 2);
                    rc = send_all(c->fd, buf, (size_t)hl + m + 2);
                    done += m;
                }
                free(buf);
                if (rc == 0)
                    rc = send_all(c->fd, "0\r\nX-Trailer: done\r\n\r\n", 22);
            }
        }
    } else if (path_is(rq->path, "/truncate", &rest)) {
        uint64_t n = strtoull(rest, NULL, 10);
        char extra[128];
        snprintf(extra, sizeof extra, "Content-Length: %" PRIu64 "\r\n", n);
        rc = send_head_start(c, rq, 200, NULL, extra);
        if (rc == 0 && !is_head(rq))
            send_pattern(c->fd, n / 2);
        rc = -1; /* close */
    } else if (path_is(rq->path, "/close", &rest)) {
        uint64_t n = strtoull(rest, NULL, 10);
        rq->keep_alive = false;
        rc = send_head_start(c, rq, 200, NULL, "Content-Type: application/octet-stream\r\n");
        if (rc == 0 && !is_head(rq))
            rc = send_pattern(c->fd, n);
    } else if (path_is(rq->path, "/drip", &rest)) {
        unsigned long nchunks = strtoul(rest, (char **)&rest, 10);
        long ms = *rest == '/' ? strtol(rest + 1, NULL, 10) : 100;
        rc = send_head_start(c, rq, 200, NULL, "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n");
        for (unsigned long i = 0; rc == 0 && !is_head(rq) && i < nchunks; i++) {
            if (i > 0)
                msleep(ms);
            char line[64];
            int ln = snprintf(line, sizeof line, "chunk %lu\n", i);
            rc = sendf(c->fd, "%x\r\n%s\r\n", ln, line);
        }
        if (rc == 0 && !is_head(rq))
            rc = send_all(c->fd, "0\r\n\r\n", 5);
    } else if (path_is(rq->path, "/status", &rest)) {
        int st = atoi(rest);
        if (st < 100 || st > 999)
            st = 400;
        char reason[128];
        bool has_reason = query_get(rq->query, "reason", reason, sizeof reason);
        bool nobody = (st >= 100 && st < 200) || st == 204 || st == 304;
        rc = send_head_start(c, rq, st, has_reason ? reason : NULL, nobody ? "" : "Content-Length: 0\r\n");
    } else if (path_is(rq->path, "/set-headers", NULL)) {
        membuf extra = {0};
        const char *q = rq->query ? rq->query : "";
        while (*q) {
            const char *amp = strchr(q, '&');
            size_t seg = amp ? (size_t)(amp - q) : strlen(q);
            char kv[2048];
            if (seg < sizeof kv) {
                memcpy(kv, q, seg);
                kv[seg] = '\0';
                char *eq = strchr(kv, '=');
                if (eq) {
                    *eq = '\0';
                    url_decode(kv);
                    url_decode(eq + 1);
                    mb_append(&extra, kv, strlen(kv));
                    mb_append(&extra, ": ", 2);
                    mb_append(&extra, eq + 1, strlen(eq + 1));
                    mb_append(&extra, "\r\n", 2);
                }
            }
            q += seg + (amp ? 1 : 0);
        }
        mb_append(&extra, "Content-Length: 3\r\n", 19);
        rc = send_head_start(c, rq, 200, NULL, extra.p);
        if (rc == 0 && !is_head(rq))
            rc = send_all(c->fd, "ok\n", 3);
        free(extra.p);
    } else if (path_is(rq->path, "/early-hints", NULL)) {
        rc = send_all(c->fd, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n", 61);
        if (rc == 0)
            rc = send_simple(c, rq, 200, "text/plain", "ok", 2);
    } else if (path_is(rq->path, "/delay", &rest)) {
        msleep(strtol(rest, NULL, 10));
        rc = send_simple(c, rq, 200, "text/plain", "ok", 2);
    } else {
        char msg[8192];
        int n = snprintf(msg, sizeof msg, "%s %s %s\n", g_name, rq->method, rq->target);
        if (n >= (int)sizeof msg)
            n = (int)sizeof msg - 1;
        rc = send_simple(c, rq, 200, "text/plain", msg, (size_t)n);
    }
    free(body.p);
    if (rc == -1)
        return 0;
    return rq->keep_alive ? 1 : 0;
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    c->cap = 65536;
    c->buf = malloc(c->cap);
    if (c->buf) {
        for (;;) {
            request rq;
            int r = read_head(c, &rq);
            if (r <= 0) {
                request_free(&rq);
                break;
            }
            int keep = serve(c, &rq);
            request_free(&rq);
            if (!keep)
                break;
        }
    }
    /* a graceful close: let the peer read everything we sent */
    shutdown(c->fd, SHUT_WR);
    close(c->fd);
    free(c->buf);
    free(c);
    return NULL;
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void usage(void)
{
    fprintf(stderr, "usage: rw_upstream --listen ADDR:PORT [--name NAME] [--idle-timeout MS] [--status N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *listen_s = "127.0.0.1:0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_s = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            g_name = argv[++i];
        else if (strcmp(argv[i], "--idle-timeout") == 0 && i + 1 < argc)
            g_idle_timeout_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--status") == 0 && i + 1 < argc)
            g_status = atoi(argv[++i]);
        else
            usage();
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    char host[128];
    snprintf(host, sizeof host, "%s", listen_s);
    char *colon = strrchr(host, ':');
    if (!colon)
        usage();
    *colon = '\0';
    int port = atoi(colon + 1);
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = '\0';
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    int family;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
        family = s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
        family = s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof *s6;
    } else {
        usage();
    }
    int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd == -1)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&ss, sl) == -1)
        die("bind");
    if (listen(lfd, 1024) == -1)
        die("listen");
    sl = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *)&ss, &sl) == -1)
        die("getsockname");
    port = ntohs(family == AF_INET ? s4->sin_port : s6->sin6_port);
    printf("PORT %d\n", port);
    fflush(stdout);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
                if (errno == EMFILE || errno == ENFILE)
                    msleep(10);
                continue;
            }
            die("accept");
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        atomic_fetch_add(&g_accepted, 1);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->serial = atomic_fetch_add(&g_serial, 1) + 1;
        pthread_t t;
        if (pthread_create(&t, &attr, conn_main, c) != 0) {
            close(fd);
            free(c);
        }
    }
}
