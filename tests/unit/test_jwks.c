/* test_jwks.c - the blocking GET client (fetch.h) against a scripted plain
 * HTTP server thread and against `openssl s_server -WWW` with self-signed
 * certificates, and JWKS sources (jwks.h): file reloads, broken rewrites,
 * URL refreshes and retries, freeing and shutdown.
 *
 * Every test runs in its own process (Criterion forks); the suite's fini
 * stops server threads and kills s_server children, which also die with the
 * test process (PR_SET_PDEATHSIG). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringway/fetch.h"
#include "ringway/jwks.h"
#include "ringway/jwt.h"

#define WAIT_MS 3000u /* deadline for something that should happen */
#define MAXB 65536u   /* max_bytes for fetches that should succeed */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a scripted HTTP server thread ---- */

/* One listening socket and a thread answering each connection with a fixed
 * response after reading the request head. Fields under mu may be changed
 * while it runs. */
typedef struct srv {
    int lfd;
    int stop[2];
    uint16_t port;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    char *resp;      /* mu: the response bytes */
    size_t resp_len; /* mu */
    bool silent;     /* mu: read the request, never answer */
    bool hold;       /* mu: after answering, keep the connection open until the client closes */
    bool eager;      /* mu: answer after the first bytes, not after a request head */
    size_t piece;    /* mu: write in pieces of this size (0: at once) */
    char req[8192];  /* mu: the last request head */
    int served;      /* mu: connections accepted */
} srv;

/* Servers live here, not on a test's stack: the suite's fini stops them
 * after the test function has returned. */
#define MAX_SRV 4
static srv servers[MAX_SRV];
static int nservers;

static srv *srv_alloc(void)
{
    cr_assert_lt(nservers, MAX_SRV);
    srv *s = &servers[nservers++];
    s->lfd = -1;
    return s;
}

/* Binds a loopback socket (AF_INET or AF_INET6) on a free port without
 * listening yet: connections to it are refused until srv_start. */
static int srv_bind(srv *s, int family)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(s->lfd, -1);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof(*a);
    }
    if (bind(s->lfd, (struct sockaddr *)&ss, sl) == -1) {
        close(s->lfd);
        s->lfd = -1;
        return -1;
    }
    getsockname(s->lfd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    cr_assert_eq(pipe2(s->stop, O_CLOEXEC), 0);
    return 0;
}

static void srv_set(srv *s, const char *resp, size_t len)
{
    pthread_mutex_lock(&s->mu);
    free(s->resp);
    s->resp = malloc(len + 1);
    memcpy(s->resp, resp, len);
    s->resp_len = len;
    pthread_mutex_unlock(&s->mu);
}

/* Sets how the server answers the next connections. */
static void srv_mode(srv *s, bool silent, bool hold, bool eager, size_t piece)
{
    pthread_mutex_lock(&s->mu);
    s->silent = silent;
    s->hold = hold;
    s->eager = eager;
    s->piece = piece;
    pthread_mutex_unlock(&s->mu);
}

static void srv_set_str(srv *s, const char *resp)
{
    srv_set(s, resp, strlen(resp));
}

/* A 200 response with Content-Length around a JSON body. */
static void srv_set_json(srv *s, const char *body)
{
    char *r;
    int n = asprintf(&r, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    cr_assert_gt(n, 0);
    srv_set(s, r, (size_t)n);
    free(r);
}

/* Waits for fd readable or the stop pipe; false when stopping. */
static bool srv_wait(srv *s, int fd)
{
    struct pollfd p[2] = {{.fd = s->stop[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    while (poll(p, fd >= 0 ? 2 : 1, -1) == -1)
        ;
    return (p[0].revents & POLLIN) == 0;
}

static void *srv_main(void *arg)
{
    srv *s = arg;
    while (srv_wait(s, s->lfd)) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -1)
            continue;
        char head[8192];
        size_t n = 0;
        bool stop = false;
        pthread_mutex_lock(&s->mu);
        bool eager = s->eager;
        pthread_mutex_unlock(&s->mu);
        while (n < sizeof(head) - 1) {
            if (!srv_wait(s, fd)) {
                stop = true;
                break;
            }
            ssize_t r = recv(fd, head + n, sizeof(head) - 1 - n, 0);
            if (r <= 0)
                break;
            n += (size_t)r;
            head[n] = '\0';
            if (strstr(head, "\r\n\r\n") != NULL || eager)
                break;
        }
        head[n] = '\0';
        if (stop) {
            close(fd);
            break;
        }
        pthread_mutex_lock(&s->mu);
        memcpy(s->req, head, n + 1);
        s->served++;
        bool silent = s->silent, hold = s->hold;
        size_t piece = s->piece, len = s->resp_len;
        char *resp = malloc(len + 1);
        if (len > 0)
            memcpy(resp, s->resp, len);
        pthread_mutex_unlock(&s->mu);
        for (size_t off = 0; !silent && off < len;) {
            size_t k = piece == 0 || piece > len - off ? len - off : piece;
            ssize_t w = send(fd, resp + off, k, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            off += (size_t)w;
            if (piece != 0)
                sleep_ms(1);
        }
        if (silent || hold) {
            /* until the client gives up (EOF) or the test ends */
            char sink[256];
            while (srv_wait(s, fd) && recv(fd, sink, sizeof(sink), 0) > 0)
                ;
        }
        free(resp);
        close(fd);
    }
    return NULL;
}

static void srv_start(srv *s)
{
    cr_assert_eq(listen(s->lfd, 16), 0);
    cr_assert_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
    s->started = true;
}

/* A started IPv4 server answering resp. */
static void srv_up(srv *s, const char *resp)
{
    cr_assert_eq(srv_bind(s, AF_INET), 0);
    if (resp != NULL)
        srv_set_str(s, resp);
    srv_start(s);
}

static void srv_stop(srv *s)
{
    if (s->lfd == -1)
        return;
    if (s->started) {
        (void)!write(s->stop[1], "x", 1);
        pthread_join(s->th, NULL);
        s->started = false;
    }
    close(s->lfd);
    close(s->stop[0]);
    close(s->stop[1]);
    s->lfd = -1;
    free(s->resp);
    s->resp = NULL;
}

static int srv_served(srv *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->served;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* A loopback port nothing listens on (bound once, then released). */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sl), 0);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- child processes (openssl) and the temp dir ---- */

#define MAX_CHILD 4
static pid_t children[MAX_CHILD];
static int nchildren;
static char tmpdir[64];

static void kill_children(void)
{
    for (int i = 0; i < nchildren; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
    nchildren = 0;
}

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rw_jwks_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    signal(SIGPIPE, SIG_DFL); /* fetch must not depend on SIGPIPE being ignored */
}

static void teardown(void)
{
    for (int i = 0; i < nservers; i++)
        srv_stop(&servers[i]);
    nservers = 0;
    kill_children();
    rw_jwks_shutdown();
    if (tmpdir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        (void)!system(cmd);
    }
}

TestSuite(fetch, .init = setup, .fini = teardown, .timeout = 20);
TestSuite(https, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(jwks, .init = setup, .fini = teardown, .timeout = 30);

static char *path_in_tmp(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *path, const char *content)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_neq(fd, -1, "open %s: %s", path, strerror(errno));
    size_t n = strlen(content);
    cr_assert_eq(write(fd, content, n), (ssize_t)n);
    close(fd);
}

/* Sets the file's times to now + 10 s, +20 s, ... so every rewrite shows a
 * new mtime whatever the file system's timestamp granularity. */
static void bump_mtime(const char *path)
{
    static int step;
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec += 10 * ++step;
    t[1] = t[0];
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

/* ---- fetch helpers ---- */

typedef struct result {
    int rc;
    char *body;
    size_t len;
    char err[512];
} result;

static result fetch(const char *url, const char *ca, uint32_t timeout_ms, size_t max)
{
    result r;
    memset(&r, 0, sizeof(r));
    r.body = (char *)1; /* must be reset */
    r.rc = rw_fetch_url(url, ca, timeout_ms, max, &r.body, &r.len, r.err, sizeof(r.err));
    if (r.rc != 0)
        cr_assert_null(r.body, "a failed fetch leaves *body NULL");
    return r;
}

static result fetch_port(uint16_t port, const char *path, size_t max)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    return fetch(url, NULL, 3000, max);
}

static void expect_ok(result *r, const char *body)
{
    cr_assert_eq(r->rc, 0, "fetch failed: %s", r->err);
    cr_assert_eq(r->len, strlen(body));
    cr_assert_str_eq(r->body, body);
    free(r->body);
    r->body = NULL;
}

static void expect_err(const result *r, const char *needle)
{
    cr_assert_eq(r->rc, -1, "fetch should fail with \"%s\"", needle);
    cr_assert_not_null(strstr(r->err, needle), "error \"%s\" lacks \"%s\"", r->err, needle);
}

/* ---- fetch: framing ---- */

Test(fetch, content_length_and_exact_request)
{
    srv *s = srv_alloc();
    srv_up(s, NULL);
    srv_set_json(s, "{\"keys\":[]}");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/.well-known/jwks.json?v=1#frag", s->port);
    result r = fetch(url, NULL, 3000, MAXB);
    expect_ok(&r, "{\"keys\":[]}");
    char want[512];
    snprintf(want, sizeof(want),
             "GET /.well-known/jwks.json?v=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: ringway\r\n"
             "Accept: application/json\r\nConnection: close\r\n\r\n",
             s->port);
    cr_assert_str_eq(s->req, want);
}

Test(fetch, default_path_and_query_only)
{
    srv *s = srv_alloc();
    srv_up(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", s->port);
    result r = fetch(url, NULL, 3000, MAXB);
    expect_ok(&r, "ok");
    cr_assert(strncmp(s->req, "GET / HTTP/1.1\r\n", 16) == 0, "%s", s->req);
    snprintf(url, sizeof(url), "HTTP://127.0.0.1:%u?a=b", s->port);
    r = fetch(url, NULL, 3000, MAXB);
    expect_ok(&r, "ok");
    cr_assert(strncmp(s->req, "GET /?a=b HTTP/1.1\r\n", 20) == 0, "%s", s->req);
}

Test(fetch, chunked_in_small_pieces)
{
    srv *s = srv_alloc();
    srv_up(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5;ext=1\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n");
    srv_mode(s, false, false, false, 3);
    result r = fetch_port(s->port, "/", MAXB);
    expect_ok(&r, "hello world0123456789");
}

Test(fetch, close_delimited)
{
    srv *s = srv_alloc();
    srv_up(s, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"keys\":[1,2,3]}");
    srv_mode(s, false, false, false, 5);
    result r = fetch_port(s->port, "/", MAXB);
    expect_ok(&r, "{\"keys\":[1,2,3]}");
}

Test(fetch, empty_bodies)
{
    srv *s = srv_alloc();
    srv_up(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    result r = fetch_port(s->port, "/", MAXB);
    cr_assert_not_null(r.body);
    expect_ok(&r, "");
    srv_set_str(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    r = fetch_port(s->port, "/", MAXB);
    expect_ok(&r, "");
    srv_set_str(s, "HTTP/1.1 200 OK\r\n\r\n");
    r = fetch_port(s->port, "/", MAXB);
    expect_ok(&r, "");
}

Test(fetch, large_body)
{
    size_t n = 300000;
    char *body = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    body[n] = '\0';
    srv *s = srv_alloc();
    srv_up(s, NULL);
    srv_set_json(s, body);
    result r = fetch_port(s->port, "/", n);
    expect_ok(&r, body);
    r = fetch_port(s->port, "/", n - 1);
    expect_err(&r, "body larger than 299999 bytes");
    free(body);
}

/* ---- fetch: refusals ---- */

Test(fetch, status_not_200)
{
    srv *s = srv_alloc();
    srv_up(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
    result r = fetch_port(s->port, "/missing", MAXB);
    expect_err(&r, "HTTP status 404");
    srv_set_str(s, "HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n");
    r = fetch_port(s->port, "/", MAXB);
    expect_err(&r, "HTTP status 301");
    srv_set_str(s, "HTTP/1.1 500\r\n\r\n");
    r = fetch_port(s->port, "/", MAXB);
    expect_err(&r, "HTTP status 500");
}

Test(fetch, body_too_large_every_framing)
{
    static const char *const resps[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n0123456789a",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
        "chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n1\r\na\r\n0\r\n\r\n",
    };
    srv *s = srv_alloc();
    srv_up(s, NULL);
    for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++) {
        srv_set_str(s, resps[i]);
        result r = fetch_port(s->port, "/", 10);
        expect_err(&r, "body larger than 10 bytes");
        r = fetch_port(s->port, "/", 11);
        expect_ok(&r, "0123456789a");
    }
}

Test(fetch, malformed_responses)
{
    static const struct {
        const char *resp;
        const char *err;
    } cases[] = {
        /* the head goes through the proxy's parser: one verdict for it */
        {"HTTP/2 200 OK\r\n\r\n", "malformed response"},
        {"HTTP/1.1 20 OK\r\n\r\n", "malformed response"},
        {"HTTP/1.1 200OK\r\n\r\n", "malformed response"},
        {"ICY 200 OK\r\n\r\n", "malformed response"},
        {"HTTP/1.1 200 OK\n\n", "malformed response"},
        {"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "malformed response"},
        {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed response"},
        {"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed response"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", "malformed response"},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed response"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", "malformed response"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "malformed response"},
        /* both framings: a smuggling shape the proxy refuses, so the fetcher does too */
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n0\r\n\r\n",
         "malformed response"},
        /* the body goes through its chunked decoder */
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunked body"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "bad chunked body"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", "bad chunked body"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "bad chunked body"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "connection closed"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
         "connection closed in the body (95 bytes missing)"},
        {"HTTP/1.1 200 OK\r\nContent", "connection closed in the response headers"},
        {"", "connection closed in the status line"},
    };
    srv *s = srv_alloc();
    srv_up(s, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        srv_set_str(s, cases[i].resp);
        result r = fetch_port(s->port, "/", MAXB);
        cr_assert_eq(r.rc, -1, "case %zu should fail", i);
        cr_assert_not_null(strstr(r.err, cases[i].err), "case %zu: \"%s\" lacks \"%s\"", i, r.err,
                           cases[i].err);
    }
}

Test(fetch, oversized_head)
{
    size_t n = 70000;
    char *resp = malloc(n + 100);
    strcpy(resp, "HTTP/1.1 200 OK\r\n");
    size_t off = strlen(resp);
    while (off < n) {
        memcpy(resp + off, "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 48);
        off += 48;
    }
    strcpy(resp + off, "\r\n");
    srv *s = srv_alloc();
    srv_up(s, resp);
    result r = fetch_port(s->port, "/", MAXB);
    expect_err(&r, "malformed response");
    /* one endless line */
    memset(resp + 17, 'a', n - 17);
    srv_set_str(s, resp);
    r = fetch_port(s->port, "/", MAXB);
    expect_err(&r, "malformed response");
    free(resp);
}

Test(fetch, timeout_when_the_server_never_answers)
{
    srv *s = srv_alloc();
    srv_up(s, NULL);
    srv_mode(s, true, false, false, 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port);
    uint64_t t0 = now_ms();
    result r = fetch(url, NULL, 300, MAXB);
    uint64_t took = now_ms() - t0;
    expect_err(&r, "timed out after 300 ms");
    cr_assert_geq(took, 290);
    cr_assert_lt(took, 1500);
}

Test(fetch, timeout_in_the_middle_of_a_body)
{
    srv *s = srv_alloc();
    srv_up(s, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nabc");
    srv_mode(s, false, true, false, 0); /* the rest never comes */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port);
    uint64_t t0 = now_ms();
    result r = fetch(url, NULL, 200, 2000000);
    expect_err(&r, "timed out after 200 ms (reading response)");
    cr_assert_lt(now_ms() - t0, 1500);
}

Test(fetch, connection_refused)
{
    uint16_t port = free_port();
    char url[128], want[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks", port);
    snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: connection refused", port);
    result r = fetch(url, NULL, 2000, MAXB);
    expect_err(&r, want);
}

Test(fetch, bad_urls)
{
    static const char *const urls[] = {
        "ftp://127.0.0.1/", "127.0.0.1/x",   "http://",       "http:///x",        "http://h:0/",
        "http://h:65536/",  "http://h:12a/", "http://h:/",    "http://[::1/",     "http://[zz]/",
        "http://u@h/",      "http://h/a b",  "http://h\x01/", "http://h:123456/", "https://[::1]x/",
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        result r = fetch(urls[i], NULL, 1000, MAXB);
        cr_assert_eq(r.rc, -1, "URL %zu should be refused", i);
        cr_assert(strncmp(r.err, "URL ", 4) == 0, "URL %zu: %s", i, r.err);
    }
}

Test(fetch, unresolvable_host)
{
    result r = fetch("http://no-such-host.invalid/", NULL, 2000, MAXB);
    expect_err(&r, "resolve no-such-host.invalid");
}

Test(fetch, ipv6_literal)
{
    srv *s = srv_alloc();
    if (srv_bind(s, AF_INET6) != 0)
        cr_skip_test("no IPv6 loopback here");
    srv_set_str(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6");
    srv_start(s);
    char url[128], host[64];
    snprintf(url, sizeof(url), "http://[::1]:%u/k", s->port);
    result r = fetch(url, NULL, 2000, MAXB);
    expect_ok(&r, "v6");
    snprintf(host, sizeof(host), "\r\nHost: [::1]:%u\r\n", s->port);
    cr_assert_not_null(strstr(s->req, host), "%s", s->req);
}

Test(fetch, host_name_tries_every_address)
{
    /* localhost may resolve to ::1 first, where nothing listens */
    srv *s = srv_alloc();
    srv_up(s, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nname");
    char url[128], host[64];
    snprintf(url, sizeof(url), "http://localhost:%u/", s->port);
    result r = fetch(url, NULL, 2000, MAXB);
    expect_ok(&r, "name");
    snprintf(host, sizeof(host), "\r\nHost: localhost:%u\r\n", s->port);
    cr_assert_not_null(strstr(s->req, host), "%s", s->req);
}

/* ---- https against openssl s_server ---- */

static bool have_openssl(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

/* Writes <name>.pem/<name>.key in tmpdir: a self-signed P-256 certificate
 * for cn with the given subjectAltName. */
static void make_cert(const char *name, const char *cn, const char *san)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=%s "
             "-addext 'subjectAltName=%s' -days 1 -keyout %s.key -out %s.pem >/dev/null 2>&1",
             tmpdir, cn, san, name, name);
    cr_assert_eq(system(cmd), 0, "openssl req failed: %s", cmd);
}

/* Starts `openssl s_server -WWW` in tmpdir with the named certificate and
 * waits until it accepts connections. Returns its port. */
static uint16_t start_s_server(const char *name)
{
    uint16_t port = free_port();
    char accept_arg[32], cert[80], key[80];
    snprintf(accept_arg, sizeof(accept_arg), "127.0.0.1:%u", port);
    snprintf(cert, sizeof(cert), "%s.pem", name);
    snprintf(key, sizeof(key), "%s.key", name);
    cr_assert_lt(nchildren, MAX_CHILD);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (chdir(tmpdir) != 0)
            _exit(127);
        execlp("openssl", "openssl", "s_server", "-WWW", "-quiet", "-accept", accept_arg, "-cert", cert,
               "-key", key, (char *)NULL);
        _exit(127);
    }
    children[nchildren++] = pid;
    uint64_t t0 = now_ms();
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {
            .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
        close(fd);
        if (rc == 0)
            break;
        cr_assert_lt(now_ms() - t0, 5000, "s_server did not start on port %u", port);
        cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "s_server exited");
        sleep_ms(20);
    }
    return port;
}

static const char *const served_doc = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"tls\",\"alg\":\"HS256\","
                                      "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}";

/* A certificate for localhost/127.0.0.1 served with jwks.json; its port. */
static uint16_t https_up(void)
{
    if (!have_openssl())
        cr_skip_test("no openssl binary");
    make_cert("good", "localhost", "DNS:localhost,IP:127.0.0.1");
    write_file(path_in_tmp("jwks.json"), served_doc);
    return start_s_server("good");
}

Test(https, verified_with_the_ca_file)
{
    uint16_t port = https_up();
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/jwks.json", port);
    result r = fetch(url, path_in_tmp("good.pem"), 5000, MAXB);
    expect_ok(&r, served_doc);
    snprintf(url, sizeof(url), "https://localhost:%u/jwks.json", port);
    r = fetch(url, path_in_tmp("good.pem"), 5000, MAXB);
    expect_ok(&r, served_doc);
}

Test(https, system_store_refuses_a_self_signed_cert)
{
    uint16_t port = https_up();
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/jwks.json", port);
    result r = fetch(url, NULL, 5000, MAXB);
    expect_err(&r, "TLS: certificate verify failed: ");
}

Test(https, system_store_is_the_default)
{
    uint16_t port = https_up();
    /* BoringSSL's default verify paths honour SSL_CERT_FILE (else /etc/ssl/certs) */
    setenv("SSL_CERT_FILE", path_in_tmp("good.pem"), 1);
    char url[128];
    snprintf(url, sizeof(url), "https://localhost:%u/jwks.json", port);
    result r = fetch(url, NULL, 5000, MAXB);
    expect_ok(&r, served_doc);
}

Test(https, wrong_host_name_or_ip)
{
    if (!have_openssl())
        cr_skip_test("no openssl binary");
    make_cert("other", "other.invalid", "DNS:other.invalid,IP:10.9.8.7");
    write_file(path_in_tmp("jwks.json"), served_doc);
    uint16_t port = start_s_server("other");
    char url[128];
    snprintf(url, sizeof(url), "https://localhost:%u/jwks.json", port);
    result r = fetch(url, path_in_tmp("other.pem"), 5000, MAXB);
    expect_err(&r, "TLS: certificate verify failed: ");
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/jwks.json", port);
    r = fetch(url, path_in_tmp("other.pem"), 5000, MAXB);
    expect_err(&r, "TLS: certificate verify failed: ");
}

Test(https, large_body_and_cap)
{
    uint16_t port = https_up(); /* s_server answers close-delimited HTTP/1.0 */
    size_t n = 200000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('A' + i % 23);
    big[n] = '\0';
    write_file(path_in_tmp("big.json"), big);
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/big.json", port);
    result r = fetch(url, path_in_tmp("good.pem"), 5000, n);
    expect_ok(&r, big);
    r = fetch(url, path_in_tmp("good.pem"), 5000, 100000);
    expect_err(&r, "body larger than 100000 bytes");
    free(big);
}

Test(https, bad_ca_file)
{
    uint16_t port = https_up();
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/jwks.json", port);
    result r = fetch(url, path_in_tmp("nope.pem"), 5000, MAXB);
    expect_err(&r, "TLS: cannot load CA file");
    r = fetch(url, path_in_tmp("jwks.json"), 5000, MAXB); /* exists, holds no certificate */
    expect_err(&r, "TLS: cannot load CA file");
}

Test(https, tls_to_a_plain_server)
{
    srv *s = srv_alloc();
    srv_up(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    srv_mode(s, false, false, true, 0); /* answers the ClientHello with HTTP */
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/", s->port);
    result r = fetch(url, NULL, 3000, MAXB);
    expect_err(&r, "TLS: ");
}

Test(https, handshake_timeout)
{
    srv *s = srv_alloc();
    srv_up(s, NULL);
    srv_mode(s, true, false, false, 0); /* accepts, reads the ClientHello head forever */
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/", s->port);
    uint64_t t0 = now_ms();
    result r = fetch(url, NULL, 300, MAXB);
    expect_err(&r, "timed out after 300 ms (TLS handshake with 127.0.0.1:");
    cr_assert_lt(now_ms() - t0, 1500);
}

/* ---- JWKS sources ---- */

/* A JWKS with one HS256 oct key; secret is 32+ characters, base64url'd here. */
static char *oct_jwks(const char *kid, const char *secret)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *in = (const unsigned char *)secret;
    size_t n = strlen(secret);
    char k[256];
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        k[o++] = tbl[(v >> 18) & 63];
        k[o++] = tbl[(v >> 12) & 63];
        if (i + 1 < n)
            k[o++] = tbl[(v >> 6) & 63];
        if (i + 2 < n)
            k[o++] = tbl[v & 63];
    }
    k[o] = '\0';
    char *doc;
    cr_assert_gt(asprintf(&doc,
                          "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"%s\",\"alg\":\"HS256\",\"k\":\"%s\"}]}", kid,
                          k),
                 0);
    return doc;
}

#define SECRET1 "first-secret-0123456789abcdefghij"
#define SECRET2 "second-secret-0123456789abcdefghi"

static void write_jwks(const char *path, const char *kid, const char *secret)
{
    char *doc = oct_jwks(kid, secret);
    write_file(path, doc);
    free(doc);
    bump_mtime(path);
}

/* Waits until cond holds (checked every 10 ms) or WAIT_MS pass. */
#define WAIT_FOR(cond)                                                                                       \
    do {                                                                                                     \
        uint64_t t0_ = now_ms();                                                                             \
        while (!(cond) && now_ms() - t0_ < WAIT_MS)                                                          \
            sleep_ms(10);                                                                                    \
        cr_assert(cond, "timed out waiting for " #cond);                                                     \
    } while (0)

static rw_jwks *new_file_source(const char *path, const rw_jwt_keyset *base)
{
    rw_jwks_opts o = {.file = path, .base = base};
    char err[512] = "";
    rw_jwks *j = rw_jwks_new(&o, err, sizeof(err));
    cr_assert_not_null(j, "rw_jwks_new: %s", err);
    return j;
}

Test(jwks, file_rotation)
{
    const char *p = path_in_tmp("keys.json");
    write_jwks(p, "k1", SECRET1);
    rw_jwks *j = new_file_source(p, NULL);
    const rw_jwt_keyset *first = rw_jwks_current(j);
    cr_assert_not_null(first);
    cr_assert_eq(rw_jwt_keyset_count(first), 1);
    uint64_t d1 = rw_jwt_keyset_digest(first);
    cr_assert_eq(rw_jwks_rotations(j), 0);

    write_jwks(p, "k2", SECRET2);
    WAIT_FOR(rw_jwks_current(j) != first && rw_jwks_rotations(j) == 1);
    const rw_jwt_keyset *second = rw_jwks_current(j);
    cr_assert_eq(rw_jwt_keyset_count(second), 1);
    cr_assert_neq(rw_jwt_keyset_digest(second), d1);
    cr_assert_eq(rw_jwks_failures(j), 0);
    rw_jwks_free(j);
}

Test(jwks, broken_rewrites_keep_the_last_good_set)
{
    const char *p = path_in_tmp("keys.json");
    write_jwks(p, "k1", SECRET1);
    rw_jwks *j = new_file_source(p, NULL);
    const rw_jwt_keyset *good = rw_jwks_current(j);

    write_file(p, "{\"keys\": [ not json");
    bump_mtime(p);
    WAIT_FOR(rw_jwks_failures(j) == 1);
    write_file(p, "{\"keys\":[]}"); /* valid, but no usable key */
    bump_mtime(p);
    WAIT_FOR(rw_jwks_failures(j) == 2);
    write_file(p, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"short\",\"alg\":\"HS256\",\"k\":\"c2hvcnQ\"}]}");
    bump_mtime(p);
    WAIT_FOR(rw_jwks_failures(j) == 3);
    sleep_ms(1500); /* a broken version is not re-read (nor re-counted) every second */
    cr_assert_eq(rw_jwks_failures(j), 3);
    cr_assert_eq(rw_jwks_current(j), good);
    cr_assert_eq(rw_jwks_rotations(j), 0);

    write_jwks(p, "k2", SECRET2); /* fixed: picked up */
    WAIT_FOR(rw_jwks_rotations(j) == 1);
    cr_assert_neq(rw_jwks_current(j), good);
    rw_jwks_free(j);
}

Test(jwks, same_keys_are_not_a_rotation)
{
    const char *p = path_in_tmp("keys.json");
    write_jwks(p, "k1", SECRET1);
    rw_jwks *j = new_file_source(p, NULL);
    const rw_jwt_keyset *first = rw_jwks_current(j);
    /* same keys, written differently */
    char *doc = oct_jwks("k1", SECRET1);
    char *spaced;
    cr_assert_gt(asprintf(&spaced, "  %s\n", doc), 0);
    write_file(p, spaced);
    bump_mtime(p);
    free(spaced);
    free(doc);
    sleep_ms(2200);
    cr_assert_eq(rw_jwks_current(j), first);
    cr_assert_eq(rw_jwks_rotations(j), 0);
    cr_assert_eq(rw_jwks_failures(j), 0);
    rw_jwks_free(j);
}

Test(jwks, deleted_file_keeps_keys_and_counts_once)
{
    const char *p = path_in_tmp("keys.json");
    write_jwks(p, "k1", SECRET1);
    rw_jwks *j = new_file_source(p, NULL);
    const rw_jwt_keyset *first = rw_jwks_current(j);
    cr_assert_eq(unlink(p), 0);
    WAIT_FOR(rw_jwks_failures(j) == 1);
    sleep_ms(2100);
    cr_assert_eq(rw_jwks_failures(j), 1);
    cr_assert_eq(rw_jwks_current(j), first);
    /* a new file appears (renamed into place) */
    const char *tmp = path_in_tmp("keys.json.new");
    write_jwks(tmp, "k2", SECRET2);
    cr_assert_eq(rename(tmp, p), 0);
    WAIT_FOR(rw_jwks_rotations(j) == 1);
    rw_jwks_free(j);
}

Test(jwks, unreadable_path_counts_once)
{
    const char *p = path_in_tmp("keys.json");
    write_jwks(p, "k1", SECRET1);
    rw_jwks *j = new_file_source(p, NULL);
    const rw_jwt_keyset *first = rw_jwks_current(j);
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(mkdir(p, 0755), 0); /* opens, but is not a regular file */
    WAIT_FOR(rw_jwks_failures(j) == 1);
    sleep_ms(2100);
    cr_assert_eq(rw_jwks_failures(j), 1);
    cr_assert_eq(rw_jwks_current(j), first);
    cr_assert_eq(rmdir(p), 0);
    write_jwks(p, "k2", SECRET2);
    WAIT_FOR(rw_jwks_rotations(j) == 1);
    rw_jwks_free(j);
}

Test(jwks, base_keys_are_merged)
{
    rw_jwt_keyset *base = rw_jwt_keyset_new();
    char err[256];
    cr_assert_eq(rw_jwt_keyset_add_secret(base, RW_JWT_HS256, "static", "static-secret-0123456789abcdefghij",
                                          34, err, sizeof(err)),
                 0, "%s", err);
    const char *p = path_in_tmp("keys.json");
    write_jwks(p, "k1", SECRET1);
    rw_jwks *j = new_file_source(p, base);
    rw_jwt_keyset_free(base); /* not kept by the source */
    cr_assert_eq(rw_jwt_keyset_count(rw_jwks_current(j)), 2);
    write_jwks(p, "k2", SECRET2);
    WAIT_FOR(rw_jwks_rotations(j) == 1);
    cr_assert_eq(rw_jwt_keyset_count(rw_jwks_current(j)), 2);
    rw_jwks_free(j);
}

Test(jwks, bad_sources_at_creation)
{
    char err[512];
    rw_jwks_opts o = {.file = path_in_tmp("missing.json")};
    cr_assert_null(rw_jwks_new(&o, err, sizeof(err)));
    cr_assert_not_null(strstr(err, "missing.json"), "%s", err);

    const char *p = path_in_tmp("bad.json");
    write_file(p, "[1,2,3");
    o.file = p;
    cr_assert_null(rw_jwks_new(&o, err, sizeof(err)));
    cr_assert_not_null(strstr(err, "bad.json"), "%s", err);

    write_file(p, "{\"keys\":[]}");
    cr_assert_null(rw_jwks_new(&o, err, sizeof(err)));
    cr_assert_not_null(strstr(err, "no usable keys"), "%s", err);

    rw_jwks_opts both = {.file = p, .url = "http://127.0.0.1:1/"};
    cr_assert_null(rw_jwks_new(&both, err, sizeof(err)));
    rw_jwks_opts neither = {.refresh_ms = 1000};
    cr_assert_null(rw_jwks_new(&neither, err, sizeof(err)));
}

Test(jwks, url_refresh_and_rotation)
{
    srv *s = srv_alloc();
    srv_up(s, NULL);
    char *d1 = oct_jwks("k1", SECRET1), *d2 = oct_jwks("k2", SECRET2);
    srv_set_json(s, d1);
    char url[128], err[512] = "";
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks.json", s->port);
    rw_jwks_opts o = {.url = url, .refresh_ms = 100, .timeout_ms = 1000};
    rw_jwks *j = rw_jwks_new(&o, err, sizeof(err));
    cr_assert_not_null(j, "%s", err);
    const rw_jwt_keyset *first = rw_jwks_current(j);
    cr_assert_eq(rw_jwt_keyset_count(first), 1);
    cr_assert_eq(rw_jwks_failures(j), 0);
    WAIT_FOR(srv_served(s) >= 4); /* refreshed every 100 ms; same keys: no rotation */
    cr_assert_eq(rw_jwks_rotations(j), 0);
    cr_assert_eq(rw_jwks_current(j), first);

    srv_set_json(s, d2);
    WAIT_FOR(rw_jwks_rotations(j) == 1);
    cr_assert_neq(rw_jwks_current(j), first);

    srv_set_str(s, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"); /* failures keep the set */
    const rw_jwt_keyset *second = rw_jwks_current(j);
    WAIT_FOR(rw_jwks_failures(j) >= 2);
    cr_assert_eq(rw_jwks_current(j), second);
    rw_jwks_free(j);
    free(d1);
    free(d2);
}

Test(jwks, url_down_at_start_then_up)
{
    rw_jwt_keyset *base = rw_jwt_keyset_new();
    char err[512] = "";
    cr_assert_eq(rw_jwt_keyset_add_secret(base, RW_JWT_HS256, "static", "static-secret-0123456789abcdefghij",
                                          34, err, sizeof(err)),
                 0, "%s", err);
    srv *s = srv_alloc();
    cr_assert_eq(srv_bind(s, AF_INET), 0); /* bound, not listening: refused */
    char *doc = oct_jwks("k1", SECRET1);
    srv_set_json(s, doc);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks.json", s->port);
    rw_jwks_opts o = {.url = url, .refresh_ms = 200, .timeout_ms = 1000, .base = base};
    rw_jwks *j = rw_jwks_new(&o, err, sizeof(err));
    cr_assert_not_null(j, "a URL that is down is not an error: %s", err);
    rw_jwt_keyset_free(base);
    cr_assert_eq(rw_jwt_keyset_count(rw_jwks_current(j)), 1); /* the static keys only */
    cr_assert_eq(rw_jwks_failures(j), 1);
    WAIT_FOR(rw_jwks_failures(j) >= 2); /* retried after min(refresh, 5 s) */
    srv_start(s);
    WAIT_FOR(rw_jwks_rotations(j) == 1);
    cr_assert_eq(rw_jwt_keyset_count(rw_jwks_current(j)), 2);
    rw_jwks_free(j);
    free(doc);
}

Test(jwks, url_over_https)
{
    uint16_t port = https_up();
    char url[128], err[512] = "";
    snprintf(url, sizeof(url), "https://localhost:%u/jwks.json", port);
    rw_jwks_opts o = {.url = url, .ca_file = path_in_tmp("good.pem")};
    rw_jwks *j = rw_jwks_new(&o, err, sizeof(err));
    cr_assert_not_null(j, "%s", err);
    cr_assert_eq(rw_jwks_failures(j), 0);
    cr_assert_eq(rw_jwt_keyset_count(rw_jwks_current(j)), 1);
    rw_jwks_free(j);
}

Test(jwks, free_waits_for_a_running_fetch)
{
    srv *s = srv_alloc();
    srv_up(s, NULL);
    char *doc = oct_jwks("k1", SECRET1);
    srv_set_json(s, doc);
    char url[128], err[512] = "";
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks.json", s->port);
    rw_jwks_opts o = {.url = url, .refresh_ms = 50, .timeout_ms = 600};
    rw_jwks *j = rw_jwks_new(&o, err, sizeof(err));
    cr_assert_not_null(j, "%s", err);
    srv_mode(s, true, false, false, 0); /* the next refresh hangs until its timeout */
    WAIT_FOR(srv_served(s) >= 2);
    uint64_t t0 = now_ms();
    rw_jwks_free(j); /* blocks until that fetch times out */
    uint64_t took = now_ms() - t0;
    cr_assert_lt(took, 1500, "free took %llu ms", (unsigned long long)took);
    t0 = now_ms();
    rw_jwks_shutdown();
    cr_assert_lt(now_ms() - t0, 200);
    free(doc);
}

Test(jwks, shutdown_is_prompt_and_restartable)
{
    const char *p = path_in_tmp("keys.json");
    write_jwks(p, "k1", SECRET1);
    rw_jwks *a = new_file_source(p, NULL);
    rw_jwks *b = new_file_source(p, NULL);
    rw_jwks_free(a);
    rw_jwks_free(b);
    uint64_t t0 = now_ms();
    rw_jwks_shutdown();
    cr_assert_lt(now_ms() - t0, 200);
    rw_jwks_shutdown();                    /* again: a no-op */
    rw_jwks *c = new_file_source(p, NULL); /* starts a new thread */
    write_jwks(p, "k2", SECRET2);
    WAIT_FOR(rw_jwks_rotations(c) == 1);
    rw_jwks_free(c);
    rw_jwks_free(NULL);
}
