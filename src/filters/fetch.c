/* fetch.c - a small blocking HTTP/1.1 GET client for the control side (JWKS
 * documents): URL parsing, getaddrinfo, a non-blocking connect and TLS
 * handshake (BoringSSL) driven by poll against one overall deadline; the
 * response is parsed with src/http, the proxy's own strict parser and chunked
 * decoder (status 200 only; Content-Length, chunked or close-delimited
 * bodies, capped at max_bytes).
 *
 * Limits, by design: getaddrinfo cannot be bounded by the deadline (it blocks
 * for as long as the resolver takes; the rest of the fetch then gets what is
 * left of the budget); no redirects, proxies, userinfo or IPv6 zone ids; a
 * close-delimited body over TLS is accepted without a close_notify (a
 * truncated JWKS fails to parse anyway). SIGPIPE is blocked for the calling
 * thread while a fetch runs (BoringSSL writes with write(2)) and a SIGPIPE it
 * raised is consumed before the mask is restored. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ringway/common.h"
#include "ringway/fetch.h"
#include "ringway/http.h"

#define FETCH_MAX_HOST 255             /* as rw_authority.host; DNS names are at most 253 characters */
#define FETCH_MAX_PATH 4096            /* request target */
#define FETCH_MAX_LINE 8192            /* the status line */
#define FETCH_MAX_HEAD 65536           /* status line + headers */
#define FETCH_READ_CHUNK 16384         /* bytes asked of one read */
#define FETCH_DEFAULT_TIMEOUT_MS 5000u /* timeout_ms 0 means this */

/* A parsed URL; host has no brackets (an IPv6 literal is marked ipv6). */
typedef struct url {
    bool tls;
    bool ipv6;
    bool ip_literal;
    char host[FETCH_MAX_HOST + 1];
    char port[6];
    uint16_t portnum;
    char path[FETCH_MAX_PATH + 1];
} url;

/* One connection: the socket, the TLS session on it (https) and the deadline
 * everything is measured against. Owned by rw_fetch_url's stack frame. */
typedef struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    uint64_t deadline_ms;
    uint32_t timeout_ms;
    const char *phase; /* what a timeout interrupted ("connect to h:p", "reading response") */
    char *err;
    size_t errlen;
} conn;

/* Buffered reader over a conn: buf[off, len) is read but not yet consumed. */
typedef struct reader {
    conn *c;
    char *buf;
    size_t off, len, cap;
} reader;

/* The decoded body being built, capped at max. */
typedef struct body {
    char *p;
    size_t len, cap, max;
} body;

/* strerror with a lower-case first letter, to sit inside a sentence. */
static void errno_text(int e, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
}

/* ---- URL ---- */

static int parse_url(const char *s, url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    const char *p;
    if (strncasecmp(s, "http://", 7) == 0) {
        p = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        p = s + 8;
        u->tls = true;
    } else {
        snprintf(err, errlen, "URL %s: scheme must be http:// or https://", s);
        return -1;
    }
    rw_authority a;
    char why[128];
    if (rw_authority_parse(p, u->tls ? 443 : 80, &a, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "URL %s: %s", s, why);
        return -1;
    }
    if (a.userinfo != NULL) {
        snprintf(err, errlen, "URL %s: user information is not supported", s);
        return -1;
    }
    if (a.zone) {
        snprintf(err, errlen, "URL %s: IPv6 zone ids are not supported", s);
        return -1;
    }
    const char *auth_end = a.end;
    _Static_assert(sizeof(u->host) == sizeof(a.host), "url.host holds rw_authority.host");
    memcpy(u->host, a.host, sizeof(u->host));
    u->ipv6 = a.ipv6;
    u->ip_literal = a.ip_literal;
    u->portnum = a.port;
    snprintf(u->port, sizeof(u->port), "%u", (unsigned)a.port);
    /* Path and query, without the fragment; "/" when empty. */
    const char *path = auth_end;
    size_t plen = strcspn(path, "#");
    size_t off = 0;
    if (plen == 0 || path[0] == '?')
        u->path[off++] = '/';
    if (off + plen > FETCH_MAX_PATH) {
        snprintf(err, errlen, "URL %s: path longer than %d bytes", s, FETCH_MAX_PATH);
        return -1;
    }
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            snprintf(err, errlen, "URL %s: bad character in path", s);
            return -1;
        }
    }
    memcpy(u->path + off, path, plen);
    u->path[off + plen] = '\0';
    return 0;
}

/* ---- waiting and timeouts ---- */

/* Waits until fd is ready for events or the deadline passes. 0, or -1 with
 * the reason set. */
static int wait_fd(conn *c, short events)
{
    for (;;) {
        uint64_t now = rw_mono_ms();
        if (now >= c->deadline_ms)
            break;
        uint64_t left = c->deadline_ms - now;
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n == -1 && errno != EINTR) {
            char e[128];
            errno_text(errno, e, sizeof(e));
            snprintf(c->err, c->errlen, "%s: poll: %s", c->phase, e);
            return -1;
        }
    }
    snprintf(c->err, c->errlen, "timed out after %u ms (%s)", c->timeout_ms, c->phase);
    return -1;
}

/* ---- connect ---- */

static int connect_one(conn *c, const struct addrinfo *ai, int *last_errno)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd == -1) {
        *last_errno = errno;
        return -1;
    }
    c->fd = fd;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS) {
        *last_errno = errno;
        goto fail;
    }
    if (wait_fd(c, POLLOUT) != 0) {
        *last_errno = ETIMEDOUT; /* c->err already says so (or why poll failed) */
        close(fd);
        c->fd = -1;
        return -2;
    }
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
        soerr = errno;
    if (soerr == 0)
        return 0;
    *last_errno = soerr;
fail:
    close(fd);
    c->fd = -1;
    return -1;
}

/* Resolves and connects, trying each address in turn with what is left of
 * the budget. 0 with c->fd connected, or -1 with the reason set. */
static int connect_url(conn *c, const url *u)
{
    char what[FETCH_MAX_HOST + 32];
    snprintf(what, sizeof(what), u->ipv6 ? "connect to [%s]:%s" : "connect to %s:%s", u->host, u->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (u->ip_literal ? AI_NUMERICHOST : 0)};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &res); /* not bounded by the deadline; see the top */
    if (rc != 0) {
        if (rc == EAI_SYSTEM) {
            char e[128];
            errno_text(errno, e, sizeof(e));
            snprintf(c->err, c->errlen, "resolve %s: %s", u->host, e);
        } else {
            snprintf(c->err, c->errlen, "resolve %s: %s", u->host, gai_strerror(rc));
        }
        return -1;
    }
    c->phase = what;
    int last_errno = ECONNREFUSED;
    rc = -1;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        rc = connect_one(c, ai, &last_errno);
        if (rc != -1)
            break; /* connected (0) or out of time (-2: c->err set) */
    }
    freeaddrinfo(res);
    c->phase = NULL;
    if (rc == 0) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return 0;
    }
    if (rc == -1) {
        char e[128];
        errno_text(last_errno, e, sizeof(e));
        snprintf(c->err, c->errlen, "%s: %s", what, e);
    }
    return -1;
}

/* ---- TLS ---- */

/* The most useful text for a failed TLS operation: the verify result, the
 * library's error queue, or errno. Clears the queue. */
static void tls_reason(conn *c, const char *op, int ssl_err, int saved_errno)
{
    long vr = SSL_get_verify_result(c->ssl);
    uint32_t e = ERR_peek_last_error();
    if (vr != X509_V_OK) {
        snprintf(c->err, c->errlen, "TLS: certificate verify failed: %s", X509_verify_cert_error_string(vr));
    } else if (e != 0) {
        char eb[256];
        ERR_error_string_n(e, eb, sizeof(eb));
        snprintf(c->err, c->errlen, "TLS: %s: %s", op, eb);
    } else if (ssl_err == SSL_ERROR_SYSCALL && saved_errno != 0) {
        char eb[128];
        errno_text(saved_errno, eb, sizeof(eb));
        snprintf(c->err, c->errlen, "TLS: %s: %s", op, eb);
    } else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN) {
        snprintf(c->err, c->errlen, "TLS: %s: connection closed by the peer", op);
    } else {
        snprintf(c->err, c->errlen, "TLS: %s: error %d", op, ssl_err);
    }
    ERR_clear_error();
}

/* One SSL_* call's result: 1 done, 0 wait (already waited: call again), -1
 * failed (reason set), -2 clean EOF (reads only). */
static int tls_step(conn *c, int ret, const char *op, bool is_read)
{
    if (ret > 0)
        return 1;
    int saved_errno = errno;
    int se = SSL_get_error(c->ssl, ret);
    if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return wait_fd(c, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) == 0 ? 0 : -1;
    }
    if (is_read && (se == SSL_ERROR_ZERO_RETURN ||
                    (se == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && (ret == 0 || saved_errno == 0)))) {
        ERR_clear_error();
        return -2; /* close_notify, or EOF without one (see the top of the file) */
    }
    tls_reason(c, op, se, saved_errno);
    return -1;
}

static int tls_start(conn *c, const url *u, const char *ca_file)
{
    ERR_clear_error();
    c->ctx = SSL_CTX_new(TLS_method());
    if (c->ctx == NULL || SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) != 1) {
        snprintf(c->err, c->errlen, "TLS: cannot create a context");
        goto fail;
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
            char eb[256] = "";
            uint32_t e = ERR_peek_last_error();
            if (e != 0)
                ERR_error_string_n(e, eb, sizeof(eb));
            snprintf(c->err, c->errlen, "TLS: cannot load CA file %s: %s", ca_file,
                     eb[0] ? eb : "no certificates");
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        snprintf(c->err, c->errlen, "TLS: cannot load the system CA store");
        goto fail;
    }
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        snprintf(c->err, c->errlen, "TLS: cannot create a session");
        goto fail;
    }
    X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
    if (u->ip_literal) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, u->host) != 1) {
            snprintf(c->err, c->errlen, "TLS: cannot set the expected IP address %s", u->host);
            goto fail;
        }
    } else if (SSL_set_tlsext_host_name(c->ssl, u->host) != 1 ||
               X509_VERIFY_PARAM_set1_host(param, u->host, strlen(u->host)) != 1) {
        snprintf(c->err, c->errlen, "TLS: cannot set the expected host name %s", u->host);
        goto fail;
    }
    SSL_set_connect_state(c->ssl);
    char what[FETCH_MAX_HOST + 32];
    snprintf(what, sizeof(what), u->ipv6 ? "TLS handshake with [%s]:%s" : "TLS handshake with %s:%s", u->host,
             u->port);
    c->phase = what;
    for (;;) {
        int r = tls_step(c, SSL_do_handshake(c->ssl), "handshake", false);
        if (r == 1)
            break;
        if (r < 0) {
            c->phase = NULL;
            return -1;
        }
    }
    c->phase = NULL;
    return 0;
fail:
    ERR_clear_error();
    return -1;
}

/* ---- I/O ---- */

static int conn_write_all(conn *c, const char *p, size_t n)
{
    c->phase = "sending request";
    while (n > 0) {
        if (c->ssl != NULL) {
            int chunk = n > INT32_MAX ? INT32_MAX : (int)n;
            int r = tls_step(c, SSL_write(c->ssl, p, chunk), "write", false);
            if (r < 0)
                return -1;
            if (r == 1) {
                /* SSL_write without partial writes reports the whole chunk. */
                p += chunk;
                n -= (size_t)chunk;
            }
            continue;
        }
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(c, POLLOUT) != 0)
                return -1;
        } else if (w == -1 && errno != EINTR) {
            char e[128];
            errno_text(errno, e, sizeof(e));
            snprintf(c->err, c->errlen, "sending request: %s", e);
            return -1;
        }
    }
    return 0;
}

/* Reads what is available (waiting for at least one byte). Returns the byte
 * count, 0 at EOF, or -1 with the reason set. */
static ssize_t conn_read(conn *c, char *p, size_t n)
{
    int chunk = n > INT32_MAX ? INT32_MAX : (int)n;
    for (;;) {
        if (c->ssl != NULL) {
            int ret = SSL_read(c->ssl, p, chunk);
            int r = tls_step(c, ret, "read", true);
            if (r == 1)
                return ret;
            if (r == -2)
                return 0;
            if (r < 0)
                return -1;
            continue;
        }
        ssize_t got = recv(c->fd, p, n, 0);
        if (got >= 0)
            return got;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(c, POLLIN) != 0)
                return -1;
        } else if (errno != EINTR) {
            char e[128];
            errno_text(errno, e, sizeof(e));
            snprintf(c->err, c->errlen, "reading response: %s", e);
            return -1;
        }
    }
}

/* Reads more into the reader, compacting or growing its buffer (it stays
 * small: lines are capped and body bytes are moved out as they arrive).
 * 1: got bytes, 0: EOF, -1: error. */
static int rd_fill(reader *r)
{
    if (r->off > 0) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->cap - r->len < FETCH_READ_CHUNK) {
        size_t ncap = r->cap == 0 ? FETCH_READ_CHUNK : r->cap * 2;
        char *nb = realloc(r->buf, ncap);
        if (nb == NULL) {
            snprintf(r->c->err, r->c->errlen, "out of memory");
            return -1;
        }
        r->buf = nb;
        r->cap = ncap;
    }
    ssize_t n = conn_read(r->c, r->buf + r->len, r->cap - r->len);
    if (n < 0)
        return -1;
    r->len += (size_t)n;
    return n > 0 ? 1 : 0;
}

static int body_add(body *b, conn *c, const char *p, size_t n)
{
    if (n > b->max - b->len) {
        snprintf(c->err, c->errlen, "body larger than %zu bytes", b->max);
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap < 4096 ? 4096 : b->cap;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        if (b->max < SIZE_MAX && ncap > b->max + 1)
            ncap = b->max + 1;
        char *np = realloc(b->p, ncap);
        if (np == NULL) {
            snprintf(c->err, c->errlen, "out of memory");
            return -1;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Moves exactly n body bytes from the connection into b. */
static int read_exact(reader *r, body *b, uint64_t n, const char *what)
{
    while (n > 0) {
        if (r->off == r->len) {
            int f = rd_fill(r);
            if (f < 0)
                return -1;
            if (f == 0) {
                snprintf(r->c->err, r->c->errlen, "connection closed in the %s (%llu bytes missing)", what,
                         (unsigned long long)n);
                return -1;
            }
        }
        size_t take = r->len - r->off;
        if (take > n)
            take = (size_t)n;
        if (body_add(b, r->c, r->buf + r->off, take) != 0)
            return -1;
        r->off += take;
        n -= take;
    }
    return 0;
}

/* ---- response: parsed with src/http (the one HTTP/1 codec) ---- */

/* Reads until a whole response head is buffered and parses it; skips 1xx
 * interim responses. 0 with *resp filled (slices into the reader's buffer,
 * valid until the next read), or -1 with the reason set. */
static int read_head(reader *r, rw_http_response *resp)
{
    conn *c = r->c;
    rw_http_limits lim;
    rw_http_limits_default(&lim);
    lim.max_header_bytes = FETCH_MAX_HEAD;
    lim.max_request_line = FETCH_MAX_LINE;
    for (;;) {
        ssize_t n = rw_http_parse_response(r->buf + r->off, r->len - r->off, &lim, RW_METHOD_GET, resp);
        if (n > 0 && resp->status >= 100 && resp->status < 200 && resp->status != 101) {
            r->off += (size_t)n; /* interim: the real answer follows */
            continue;
        }
        if (n > 0) {
            r->off += (size_t)n;
            return 0;
        }
        if (n < 0) {
            snprintf(c->err, c->errlen,
                     "malformed response: the head is not valid HTTP/1.1 (status line, a "
                     "header line, Content-Length or Transfer-Encoding; at most %d bytes)",
                     FETCH_MAX_HEAD);
            return -1;
        }
        if (r->len - r->off > FETCH_MAX_HEAD) {
            snprintf(c->err, c->errlen, "malformed response: headers longer than %d bytes", FETCH_MAX_HEAD);
            return -1;
        }
        bool nothing = r->len == r->off;
        int f = rd_fill(r);
        if (f < 0)
            return -1;
        if (f == 0) {
            snprintf(c->err, c->errlen, "connection closed in the %s",
                     nothing ? "status line" : "response headers");
            return -1;
        }
    }
}

/* A chunked body, decoded in the reader's buffer as it arrives. */
static int read_chunked(reader *r, body *b)
{
    rw_chunked ch;
    rw_chunked_init(&ch);
    for (;;) {
        if (r->off < r->len) {
            bool done = false;
            size_t data = 0;
            ssize_t n = rw_chunked_decode(&ch, r->buf + r->off, r->len - r->off, &done, &data);
            if (n < 0) {
                snprintf(r->c->err, r->c->errlen, "malformed response: bad chunked body");
                return -1;
            }
            if (body_add(b, r->c, r->buf + r->off, data) != 0)
                return -1;
            r->off += (size_t)n;
            if (done)
                return 0;
        }
        int f = rd_fill(r);
        if (f < 0)
            return -1;
        if (f == 0) {
            snprintf(r->c->err, r->c->errlen, "connection closed in the chunked body");
            return -1;
        }
    }
}

static int read_body(reader *r, body *b, const rw_http_response *resp)
{
    switch (resp->body) {
    case RW_BODY_NONE:
        return 0;
    case RW_BODY_LENGTH:
        if (resp->content_length > b->max) {
            snprintf(r->c->err, r->c->errlen, "body larger than %zu bytes", b->max);
            return -1;
        }
        return read_exact(r, b, resp->content_length, "body");
    case RW_BODY_CHUNKED:
        return read_chunked(r, b);
    default: /* until the server closes */
        for (;;) {
            if (r->off < r->len) {
                if (body_add(b, r->c, r->buf + r->off, r->len - r->off) != 0)
                    return -1;
                r->off = r->len;
            }
            int f = rd_fill(r);
            if (f <= 0)
                return f;
        }
    }
}

/* ---- the fetch ---- */

int rw_fetch_url(const char *url_s, const char *ca_file, uint32_t timeout_ms, size_t max_bytes,
                 char **body_out, size_t *len, char *err, size_t errlen)
{
    *body_out = NULL;
    *len = 0;
    url u;
    if (parse_url(url_s, &u, err, errlen) != 0)
        return -1;
    if (timeout_ms == 0)
        timeout_ms = FETCH_DEFAULT_TIMEOUT_MS;

    /* Block SIGPIPE for this thread while writing to a socket that may be
     * closed under us; consume one we caused. */
    sigset_t pipe_set, old_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    sigpending(&pending);
    bool pipe_was_pending = sigismember(&pending, SIGPIPE) == 1;

    int rc = -1;
    conn c = {.fd = -1,
              .deadline_ms = rw_mono_ms() + timeout_ms,
              .timeout_ms = timeout_ms,
              .err = err,
              .errlen = errlen};
    reader r = {.c = &c};
    body b = {.max = max_bytes};
    char *req = NULL;
    if (connect_url(&c, &u) != 0)
        goto done;
    if (u.tls && tls_start(&c, &u, ca_file) != 0)
        goto done;

    bool default_port = u.portnum == (u.tls ? 443 : 80);
    int n =
        asprintf(&req,
                 "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: ringway\r\nAccept: application/json\r\n"
                 "Connection: close\r\n\r\n",
                 u.path, u.ipv6 ? "[" : "", u.host, u.ipv6 ? "]" : "", default_port ? "" : ":",
                 default_port ? "" : u.port);
    if (n < 0) {
        req = NULL;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (conn_write_all(&c, req, (size_t)n) != 0)
        goto done;
    c.phase = "reading response";
    static __thread rw_http_response resp; /* big (its header table): not on the stack */
    if (read_head(&r, &resp) != 0)
        goto done;
    if (resp.status != 200) {
        snprintf(err, errlen, "HTTP status %d", resp.status);
        goto done;
    }
    if (read_body(&r, &b, &resp) != 0)
        goto done;
    if (b.p == NULL) { /* an empty body still gets its NUL */
        b.p = malloc(1);
        if (b.p == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }
    b.p[b.len] = '\0';
    *body_out = b.p;
    *len = b.len;
    b.p = NULL;
    rc = 0;
done:
    free(req);
    free(r.buf);
    free(b.p);
    if (c.ssl != NULL)
        SSL_free(c.ssl);
    if (c.ctx != NULL)
        SSL_CTX_free(c.ctx);
    ERR_clear_error();
    if (c.fd != -1)
        close(c.fd);
    if (!pipe_was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE) == 1) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    return rc;
}
