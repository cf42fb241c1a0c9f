/* test_upgrade.c - protocol upgrades (Connection: upgrade + Upgrade), as
 * docs/operations.md "Upstream behaviour" describes them: the 101 and the byte
 * tunnel behind it (1 MiB full duplex, 20 at once, bytes right behind either
 * head, half-closes in both directions, slow readers), upgrade requests that
 * get something other than a 101, Upgrade headers that are no upgrade (a
 * body, HTTP/1.0, no Connection: upgrade, a token other than websocket:
 * hop-by-hop, dropped), an unsolicited or mismatched 101, the idle tunnel
 * timeout (the service's first_byte), timeouts.total (not for tunnels),
 * client aborts, and SIGHUP / SIGTERM with a tunnel open.
 *
 * rw_upstream's /upgrade answers 101 and then echoes every byte with ASCII
 * letters uppercased, and "BYE\n" + close on the client's half-close
 * (?hello=TEXT: TEXT right behind the 101; ?shut-first=1: half-close at once,
 * count what arrives in /stats tunnel_bytes; ?as=P: name P in the 101);
 * /upgrade-head answers 200 with the request head it received. Only
 * WebSocket is upgraded (docs), so the tests ask for "websocket". */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define UPGRADE_HEAD "GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

static char upper(char ch)
{
    return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

/* Reads exactly n raw bytes (after what h_read_response left buffered) into
 * dst, NUL-terminated (dst holds n + 1). Returns how many came before EOF or
 * timeout_ms of silence. */
static size_t read_raw(h_conn *c, char *dst, size_t n, int timeout_ms)
{
    size_t got = 0;
    size_t have = c->len - c->off;
    if (have > 0) {
        size_t k = have < n ? have : n;
        memcpy(dst, c->buf + c->off, k);
        c->off += k;
        got = k;
    }
    while (got < n && !c->eof) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pf, 1, timeout_ms);
        if (pr == -1 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t r = recv(c->fd, dst + got, n - got, 0);
        if (r == -1 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0) {
            c->eof = true;
            break;
        }
        got += (size_t)r;
    }
    dst[got] = '\0';
    return got;
}

/* Sends the upgrade request head (plus extra bytes right behind it, may be
 * NULL) and asserts a 101 that names the protocol and Connection: upgrade. */
static h_conn *open_tunnel_head(int port, const char *head, const char *extra)
{
    h_conn *c = h_connect(port);
    cr_assert_eq(h_sends(c, h_fmt("%s%s", head, extra ? extra : "")), H_OK);
    h_resp r;
    int rc = h_read_response(c, &r, 0);
    cr_assert_eq(rc, H_OK, "no response to the upgrade request (%d)", rc);
    cr_assert_eq(r.status, 101, "upgrade answered %d, not 101:\n%s", r.status, r.head);
    const char *up = h_hdr(&r, "Upgrade");
    cr_assert(up && strcasecmp(up, "websocket") == 0, "101 without Upgrade: websocket:\n%s", r.head);
    cr_assert(h_list_has(h_hdr(&r, "Connection"), "upgrade"), "101 without Connection: upgrade:\n%s", r.head);
    cr_assert_null(h_hdr(&r, "Content-Length"), "101 with a Content-Length:\n%s", r.head);
    cr_assert_null(h_hdr(&r, "Transfer-Encoding"), "101 with a Transfer-Encoding:\n%s", r.head);
    return c;
}

static h_conn *open_tunnel(int port, const char *extra)
{
    return open_tunnel_head(port, UPGRADE_HEAD, extra);
}

/* Echoes a short line through an open tunnel and checks the answer. */
static void tunnel_ping(h_conn *c, const char *what)
{
    const char *msg = h_fmt("ping %s\n", what);
    cr_assert_eq(h_sends(c, msg), H_OK, "%s: send into the tunnel failed", what);
    size_t n = strlen(msg);
    char *got = h_repeat(n, '\0');
    size_t k = read_raw(c, got, n, 5000);
    char *want = h_fmt("PING %s\n", what);
    for (char *q = want; *q; q++)
        *q = upper(*q);
    cr_assert(k == n && memcmp(got, want, n) == 0, "%s: tunnel echoed [%.*s] (%zu bytes), want [%s]", what,
              (int)k, got, k, want);
}

/* Half-closes the client side and expects "BYE\n" then EOF. */
static void tunnel_bye(h_conn *c, const char *what)
{
    cr_assert_eq(shutdown(c->fd, SHUT_WR), 0);
    char *got = NULL;
    bool closed = h_wait_closed(c, 5000, &got);
    cr_assert_str_eq(got, "BYE\n", "%s: after the half-close got [%s], want BYE", what, got);
    cr_assert(closed, "%s: tunnel still open 5 s after both sides finished", what);
}

/* ---- many tunnels, full duplex ------------------------------------------ */

typedef struct tun {
    h_conn *c;
    char *out; /* what we send */
    char *in;  /* what came back */
    size_t n, sent, got;
    unsigned piece; /* size of the next write: varies */
    bool shut;      /* half-close (SHUT_WR) as soon as everything is sent */
} tun;

static void tun_init(tun *t, h_conn *c, size_t n, unsigned seed)
{
    t->c = c;
    t->n = n;
    t->sent = t->got = 0;
    t->piece = 1 + seed % 97;
    t->shut = false;
    t->out = h_repeat(n, 'x');
    t->in = h_repeat(n, '\0');
    for (size_t i = 0; i < n; i++)
        t->out[i] = (char)h_pattern_byte(i + seed * 7919u);
}

/* Sends every tunnel's bytes in pieces of varying size while reading the echo
 * back, all at once (poll), until each got n bytes back or nothing moved for
 * 10 s; then checks each echo byte for byte. */
static void tun_pump(tun *ts, int nt)
{
    struct pollfd *pf = calloc((size_t)nt, sizeof *pf);
    cr_assert_not_null(pf);
    int64_t last = h_now_ms();
    for (;;) {
        int active = 0;
        for (int i = 0; i < nt; i++) {
            tun *t = &ts[i];
            pf[i].fd = t->c->fd;
            pf[i].events = 0;
            pf[i].revents = 0;
            if (t->got < t->n) {
                pf[i].events |= POLLIN;
                active++;
            }
            if (t->sent < t->n)
                pf[i].events |= POLLOUT;
        }
        if (active == 0)
            break;
        int pr = poll(pf, (nfds_t)nt, 200);
        if (pr == -1 && errno == EINTR)
            continue;
        cr_assert(pr >= 0, "poll: %s", strerror(errno));
        for (int i = 0; i < nt; i++) {
            tun *t = &ts[i];
            size_t have = t->c->len - t->c->off;
            if (have > 0 && t->got < t->n) { /* left in the harness buffer by h_read_response */
                size_t k = have < t->n - t->got ? have : t->n - t->got;
                memcpy(t->in + t->got, t->c->buf + t->c->off, k);
                t->c->off += k;
                t->got += k;
                last = h_now_ms();
            }
            if ((pf[i].revents & POLLOUT) && t->sent < t->n) {
                size_t k = t->n - t->sent < t->piece ? t->n - t->sent : t->piece;
                ssize_t w = send(t->c->fd, t->out + t->sent, k, MSG_NOSIGNAL);
                if (w > 0) {
                    t->sent += (size_t)w;
                    last = h_now_ms();
                } else {
                    cr_assert(w == -1 && (errno == EAGAIN || errno == EINTR), "tunnel %d: send failed: %s", i,
                              w == 0 ? "0 bytes" : strerror(errno));
                }
                t->piece = t->piece * 3 % 65521 + 1; /* 1 byte .. 64 KiB */
                if (t->shut && t->sent == t->n)
                    cr_assert_eq(shutdown(t->c->fd, SHUT_WR), 0);
            }
            if ((pf[i].revents & (POLLIN | POLLHUP | POLLERR)) && t->got < t->n) {
                ssize_t r = recv(t->c->fd, t->in + t->got, t->n - t->got, 0);
                if (r > 0) {
                    t->got += (size_t)r;
                    last = h_now_ms();
                } else {
                    cr_assert(r == -1 && (errno == EAGAIN || errno == EINTR),
                              "tunnel %d: closed after %zu of %zu echoed bytes (%zu sent): %s", i, t->got,
                              t->n, t->sent, r == 0 ? "EOF" : strerror(errno));
                }
            }
        }
        if (h_now_ms() - last > 10000) {
            for (int i = 0; i < nt; i++)
                cr_assert(ts[i].got == ts[i].n, "tunnel %d stalled: sent %zu of %zu, got back %zu", i,
                          ts[i].sent, ts[i].n, ts[i].got);
        }
    }
    free(pf);
    for (int i = 0; i < nt; i++) {
        tun *t = &ts[i];
        for (size_t k = 0; k < t->n; k++)
            if (t->in[k] != upper(t->out[k]))
                cr_assert_fail("tunnel %d: echo differs at byte %zu of %zu: got 0x%02x, want 0x%02x", i, k,
                               t->n, (unsigned char)t->in[k], (unsigned char)upper(t->out[k]));
    }
}

/* ---- (a) the tunnel ------------------------------------------------------ */

H_TEST(upgrade, tunnel_echo_1mib_and_half_close)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    /* bytes sent right behind the head, in the same write, belong to the tunnel */
    h_conn *c = open_tunnel(p->port, "early bytes, abc\n");
    char got[64];
    size_t k = read_raw(c, got, 17, 5000);
    cr_assert(k == 17 && memcmp(got, "EARLY BYTES, ABC\n", 17) == 0,
              "bytes sent behind the upgrade head came back as [%.*s]", (int)k, got);

    tun t;
    tun_init(&t, c, 1u << 20, 1);
    tun_pump(&t, 1);
    tunnel_ping(c, "after 1 MiB");
    tunnel_bye(c, "1 MiB tunnel");

    h_stats st = h_upstream_stats(u);
    cr_assert_eq(st.connections, 1, "upstream saw %ld connections", st.connections);

    /* ringway itself goes on serving */
    h_resp r;
    h_get(p->port, "/after", &r);
    cr_assert_str_eq(r.body, "u1 GET /after\n");
}

H_TEST(upgrade, half_close_behind_data_in_flight)
{
    /* the client half-closes right after its last byte, while most of the echo
     * is still on its way: every byte must still come back, then BYE, then EOF
     * (the half-close may not overtake data, nor cut the other direction) */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = open_tunnel(p->port, NULL);
    tun t;
    tun_init(&t, c, 1u << 20, 5);
    t.shut = true;
    tun_pump(&t, 1);
    char *got = NULL;
    bool closed = h_wait_closed(c, 5000, &got);
    cr_assert_str_eq(got, "BYE\n", "after the echo and the half-close got [%s], want BYE", got);
    cr_assert(closed, "tunnel still open 5 s after both sides finished");
}

H_TEST(upgrade, upgrade_headers_forwarded)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    /* /upgrade-head answers 200: an ordinary response to an upgrade request */
    int rc = h_request(c, "GET", "/upgrade-head",
                       "Connection: keep-alive, Upgrade, X-Hop\r\nX-Hop: 1\r\nUpgrade: websocket\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
                       NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 200, "status %d", r.status);
    cr_assert(h_list_has(h_echoed(r.body, "Connection"), "upgrade"),
              "upstream did not get Connection: upgrade:\n%s", r.body);
    cr_assert_str_eq(h_echoed(r.body, "Upgrade") ? h_echoed(r.body, "Upgrade") : "(missing)", "websocket",
                     "upstream did not get the Upgrade header:\n%s", r.body);
    cr_assert_null(h_echoed(r.body, "X-Hop"), "a header named by Connection reached the upstream:\n%s",
                   r.body);
    cr_assert_str_eq(h_echoed(r.body, "Sec-WebSocket-Key") ? h_echoed(r.body, "Sec-WebSocket-Key")
                                                           : "(missing)",
                     "dGhlIHNhbXBsZSBub25jZQ==");
    /* and the connection is still plain HTTP */
    rc = h_request(c, "GET", "/next", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK, "no response to the next request after a non-101 upgrade answer");
    cr_assert_str_eq(r.body, "u1 GET /next\n");
}

H_TEST(upgrade, slow_reader_gets_everything_after_half_close)
{
    /* the client writes 512 KiB and half-closes without reading; only later
     * does it read: all of the echo, then BYE, then EOF must be there (the
     * upstream's close may not cut what ringway still has to write) */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = open_tunnel(p->port, NULL);
    size_t n = 512u << 10;
    char *out = h_repeat(n, 'x');
    for (size_t i = 0; i < n; i++)
        out[i] = (char)h_pattern_byte(i);
    cr_assert_eq(h_send(c, out, n), H_OK, "could not write 512 KiB into the tunnel without reading");
    cr_assert_eq(shutdown(c->fd, SHUT_WR), 0);
    h_sleep_ms(500);
    char *in = h_repeat(n + 8, '\0');
    size_t k = read_raw(c, in, n + 4, 5000);
    for (size_t i = 0; i < n && i < k; i++)
        if (in[i] != upper(out[i]))
            cr_assert_fail("echo differs at byte %zu", i);
    cr_assert_eq(k, n + 4, "got %zu of %zu echoed bytes + BYE", k, n + 4);
    cr_assert(memcmp(in + n, "BYE\n", 4) == 0, "no BYE after the echo: [%.4s]", in + n);
    cr_assert(h_wait_closed(c, 3000, NULL), "no EOF after BYE");
}

/* connections.active from the admin port's /status */
static long active_conns(int admin)
{
    h_resp r;
    h_get(admin, "/status", &r);
    const char *conns = strstr(r.body, "\"connections\"");
    return conns ? h_json_long(conns, "active") : -1;
}

/* Polls the admin port until no client connection is open; false after 5 s. */
static bool wait_no_conns(int admin, long *last)
{
    int64_t t0 = h_now_ms();
    while ((*last = active_conns(admin)) != 0 && h_now_ms() - t0 < 5000)
        h_sleep_ms(50);
    return *last == 0;
}

/* tunnel_bytes from the upstream's /stats (asked directly) */
static long tunnel_bytes(const h_upstream *u)
{
    h_resp r;
    h_get(u->port, "/stats", &r);
    return h_json_long(r.body, "tunnel_bytes");
}

H_TEST(upgrade, upstream_half_closes_first)
{
    /* the upstream shuts its side right after the 101: the client sees EOF but
     * its own direction stays open, and what it sends still arrives */
    h_upstream *u = h_upstream_start("u1", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL),
                                               .args = {"--admin", h_fmt("127.0.0.1:%d", admin)}});
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /upgrade?shut-first=1 HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
               "Upgrade: websocket\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 101);
    char one[2];
    cr_assert_eq(read_raw(c, one, 1, 5000), 0, "bytes from an upstream that sent none: [%s]", one);
    cr_assert(c->eof, "the upstream's half-close did not reach the client within 5 s");
    size_t n = 200u << 10;
    char *out = h_repeat(n, 'z');
    cr_assert_eq(h_send(c, out, n), H_OK, "the client's direction was closed with the upstream's");
    int64_t t0 = h_now_ms();
    long got = 0;
    while (h_now_ms() - t0 < 5000 && (got = tunnel_bytes(u)) != (long)n)
        h_sleep_ms(20);
    cr_assert_eq(got, (long)n, "the upstream received %ld of %zu bytes sent after its half-close", got, n);
    cr_assert_eq(shutdown(c->fd, SHUT_WR), 0);
    /* both sides done: ringway lets go of the connection */
    long active;
    cr_assert(wait_no_conns(admin, &active),
              "%ld connections still open 5 s after both sides of a tunnel closed", active);
}

H_TEST(upgrade, client_half_closes_before_the_101)
{
    /* everything the client has to say, and its FIN, before the upstream has
     * even answered: still 101, the echo, BYE, EOF */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    cr_assert_eq(h_sends(c, UPGRADE_HEAD "all at once"), H_OK);
    cr_assert_eq(shutdown(c->fd, SHUT_WR), 0);
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 101);
    char *got = NULL;
    bool closed = h_wait_closed(c, 5000, &got);
    cr_assert_str_eq(got, "ALL AT ONCEBYE\n");
    cr_assert(closed, "no EOF");
}

H_TEST(upgrade, total_timeout_does_not_apply_to_tunnels)
{
    /* docs: "total does not apply to tunnels"; only idleness (first_byte)
     * closes them */
    h_proxy *p = h_start_basic(NULL, NULL, "    timeouts: {total: 1s, first_byte: 1s}\n");
    int64_t t0 = h_now_ms();
    h_conn *c = open_tunnel(p->port, NULL);
    for (int i = 0; h_now_ms() - t0 < 2500; i++) {
        tunnel_ping(c, h_fmt("busy %d at %lld ms", i, (long long)(h_now_ms() - t0)));
        h_sleep_ms(100);
    }
    tunnel_bye(c, "busy tunnel past timeouts.total");
    /* total still bounds ordinary exchanges */
    h_conn *d = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(d, "GET", "/delay/1500", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 504, "a 1.5 s answer under timeouts.total 1s got %d", r.status);
}

H_TEST(upgrade, head_in_pieces_then_tunnel)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /upgrade HTTP/1.1\r\nHost: x\r\n");
    h_sleep_ms(50);
    h_sends(c, h_fmt("X-Pad: %s\r\nConnection: upgrade\r\nUpgrade: websocket\r\n", h_repeat(12000, 'p')));
    h_sleep_ms(50);
    h_sends(c, "\r\nearly");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 101, "an upgrade request head sent in pieces got %d:\n%s%s", r.status, r.head,
                 r.body);
    char got[8];
    size_t k = read_raw(c, got, 5, 5000);
    cr_assert(k == 5 && memcmp(got, "EARLY", 5) == 0, "got [%.*s]", (int)k, got);
    tun t;
    tun_init(&t, c, 1u << 20, 9);
    tun_pump(&t, 1);
    tunnel_bye(c, "head in pieces");
}

H_TEST(upgrade, upstream_bytes_right_behind_the_101)
{
    /* a server-speaks-first protocol: the upstream's first bytes arrive in the
     * same segment as its 101 and must reach the client without a prompt */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /upgrade?hello=welcome%0A HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
               "Upgrade: websocket\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 101);
    char got[16];
    size_t k = read_raw(c, got, 8, 5000);
    cr_assert(k == 8 && memcmp(got, "welcome\n", 8) == 0, "the upstream's greeting came as [%.*s]", (int)k,
              got);
    tunnel_ping(c, "after greeting");
    tunnel_bye(c, "greeting tunnel");
}

/* ---- (b) upgrade request, upstream answers something else ---------------- */

H_TEST(upgrade, non_101_answer_is_an_ordinary_response)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    const char *hdrs = "Connection: upgrade\r\nUpgrade: websocket\r\n";
    int rc = h_request(c, "GET", "/status/200", hdrs, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0);
    cr_assert(!h_list_has(h_hdr(&r, "Connection"), "upgrade"), "a 200 said Connection: upgrade:\n%s", r.head);
    cr_assert(!h_list_has(h_hdr(&r, "Connection"), "close"), "a 200 to an upgrade request closes:\n%s",
              r.head);
    rc = h_request(c, "GET", "/second", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK, "the connection did not survive a refused upgrade (%d)", rc);
    cr_assert_str_eq(r.body, "u1 GET /second\n");

    /* pipelined behind a refused upgrade */
    cr_assert_eq(
        h_sends(c, "GET /status/204 HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
                   "GET /piped HTTP/1.1\r\nHost: x\r\n\r\n"),
        H_OK);
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 204);
    cr_assert_eq(h_read_response(c, &r, 0), H_OK,
                 "no answer to a request pipelined behind a refused upgrade");
    cr_assert_str_eq(r.body, "u1 GET /piped\n");

    /* a 4xx with a body, then an upgrade on the same connection that succeeds */
    rc = h_request(c, "GET", "/status/404", hdrs, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 404);
    rc = h_request(c, "GET", "/x", hdrs, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_str_eq(r.body, "u1 GET /x\n");
    cr_assert_eq(h_sends(c, UPGRADE_HEAD), H_OK);
    rc = h_read_response(c, &r, 0);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 101, "upgrade after ordinary requests answered %d", r.status);
    tunnel_ping(c, "late upgrade");
    tunnel_bye(c, "late upgrade");
}

H_TEST(upgrade, upgrade_with_a_body_or_http10_is_not_an_upgrade)
{
    /* docs: only a request without a body from an HTTP/1.1 client is upgraded;
     * otherwise the Upgrade headers are hop-by-hop and dropped, so /upgrade
     * answers 426 */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    int rc = h_request(c, "POST", "/upgrade", "Connection: upgrade\r\nUpgrade: websocket\r\n", "body", 4, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 426, "an upgrade request with a body got %d", r.status);
    rc = h_request(c, "GET", "/after-body", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_str_eq(r.body, "u1 GET /after-body\n");

    h_conn *c10 = h_connect(p->port);
    h_sends(c10, "GET /upgrade HTTP/1.0\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    rc = h_read_response(c10, &r, 0);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 426, "an HTTP/1.0 upgrade request got %d", r.status);
}

H_TEST(upgrade, unsolicited_101_is_a_502)
{
    /* a 101 to a request that asked for no upgrade cannot be relayed */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    int rc = h_request(c, "GET", "/status/101", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK, "no response (%d)", rc);
    cr_assert_eq(r.status, 502, "an unsolicited 101 was answered %d", r.status);
    rc = h_request(c, "GET", "/after", NULL, NULL, 0, &r);
    if (rc == H_ECLOSED) { /* closing after a 502 is allowed: go on on a new connection */
        c = h_connect(p->port);
        rc = h_request(c, "GET", "/after", NULL, NULL, 0, &r);
    }
    cr_assert_eq(rc, H_OK);
    cr_assert_str_eq(r.body, "u1 GET /after\n");
}

H_TEST(upgrade, switch_to_another_protocol_is_a_502)
{
    /* asked for websocket, the upstream switches to something else */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    int rc =
        h_request(c, "GET", "/upgrade?as=h2c", "Connection: upgrade\r\nUpgrade: websocket\r\n", NULL, 0, &r);
    cr_assert_eq(rc, H_OK, "no response (%d)", rc);
    cr_assert_eq(r.status, 502, "a 101 to h2c for a websocket request was answered %d:\n%s", r.status,
                 r.head);
    h_get(p->port, "/after", &r);
    cr_assert_str_eq(r.body, "u1 GET /after\n");
}

/* ---- (c) Upgrade headers that are no upgrade ----------------------------- */

typedef struct token_case {
    char upgrade[64];
} token_case;

ParameterizedTestParameters(upgrade, other_tokens_are_dropped)
{
    static token_case cases[] = {{"h2c"}, {"rw-echo/1"}, {"websocket, h2c"}, {"h2c, websocket"}, {"TLS/1.2"}};
    return cr_make_param_array(token_case, cases, sizeof cases / sizeof cases[0]);
}

H_PTEST(token_case *, tc, upgrade, other_tokens_are_dropped)
{
    /* docs: only websocket is upgraded; other tokens are dropped like any
     * hop-by-hop header, and the request is an ordinary one */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    const char *hdrs = h_fmt("Connection: Upgrade, HTTP2-Settings\r\nUpgrade: %s\r\n"
                             "HTTP2-Settings: AAMAAABkAAQAAP__\r\n",
                             tc->upgrade);
    int rc = h_request(c, "GET", "/upgrade-head", hdrs, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_null(h_echoed(r.body, "Upgrade"), "Upgrade: %s reached the upstream:\n%s", tc->upgrade, r.body);
    cr_assert(!h_list_has(h_echoed(r.body, "Connection"), "upgrade"), "upstream got Connection: upgrade:\n%s",
              r.body);
    cr_assert_null(h_echoed(r.body, "HTTP2-Settings"), "HTTP2-Settings reached the upstream:\n%s", r.body);
    rc = h_request(c, "GET", "/upgrade", hdrs, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 426, "Upgrade: %s was upgraded (%d)", tc->upgrade, r.status);
    rc = h_request(c, "GET", "/after", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK, "the connection did not stay HTTP after a dropped Upgrade: %s", tc->upgrade);
    cr_assert_str_eq(r.body, "u1 GET /after\n");
}

H_TEST(upgrade, upgrade_header_alone_is_dropped)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    int rc = h_request(c, "GET", "/upgrade-head", "Upgrade: h2c\r\n", NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_null(h_echoed(r.body, "Upgrade"),
                   "Upgrade without Connection: upgrade reached the upstream:\n%s", r.body);
    cr_assert(!h_list_has(h_echoed(r.body, "Connection"), "upgrade"), "upstream got Connection: upgrade:\n%s",
              r.body);
    /* /echo too (the generic endpoint) */
    rc = h_request(c, "GET", "/echo", "Upgrade: h2c\r\nConnection: keep-alive\r\n", NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_null(h_echoed(r.body, "Upgrade"), "Upgrade reached the upstream:\n%s", r.body);
    /* and /upgrade itself refuses: nothing was upgraded, the connection goes on */
    rc = h_request(c, "GET", "/upgrade", "Upgrade: h2c\r\n", NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 426, "/upgrade with a lone Upgrade header got %d", r.status);
    cr_assert_str_eq(r.body, "upgrade required\n");
    rc = h_request(c, "GET", "/after", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_str_eq(r.body, "u1 GET /after\n");
}

/* ---- (d) concurrent tunnels ---------------------------------------------- */

#define NTUN 20

H_TEST(upgrade, twenty_concurrent_tunnels)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    /* the ways a client may spell it: token lists, any case (the echoing
     * upstream names the protocol back as the client spelt it) */
    static const char *const heads[] = {
        UPGRADE_HEAD,
        "GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /upgrade HTTP/1.1\r\nhost: x\r\nconnection: UPGRADE\r\nupgrade: WebSocket\r\n\r\n",
        "GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: WEBSOCKET\r\nConnection: TE ,upgrade\r\nTE: "
        "trailers\r\n\r\n",
    };
    tun ts[NTUN];
    for (int i = 0; i < NTUN; i++)
        tun_init(&ts[i], open_tunnel_head(p->port, heads[i % 4], NULL), 128u << 10, (unsigned)i + 2);
    tun_pump(ts, NTUN);
    for (int i = 0; i < NTUN; i++)
        tunnel_ping(ts[i].c, h_fmt("tunnel %d", i));
    for (int i = 0; i < NTUN; i++)
        tunnel_bye(ts[i].c, h_fmt("tunnel %d", i));
    h_stats st = h_upstream_stats(u);
    cr_assert_eq(st.connections, NTUN, "upstream saw %ld connections for %d tunnels", st.connections, NTUN);
}

H_TEST(upgrade, client_abort_frees_tunnels)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL),
                                               .args = {"--admin", h_fmt("127.0.0.1:%d", admin)}});
    h_conn *cs[6];
    for (int i = 0; i < 6; i++) {
        cs[i] = open_tunnel(p->port, NULL);
        tunnel_ping(cs[i], h_fmt("t%d", i));
    }
    cr_assert_eq(active_conns(admin), 6, "active connections with 6 tunnels open");
    /* close half of them (FIN), reset the other half (RST), mid-tunnel */
    for (int i = 0; i < 6; i++) {
        if (i % 2) {
            struct linger lg = {1, 0};
            setsockopt(cs[i]->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        h_sends(cs[i], "unread echo\n");
        h_close(cs[i]);
    }
    long active;
    cr_assert(wait_no_conns(admin, &active),
              "%ld client connections still open 5 s after their clients went away", active);
}

/* ---- (e) idle tunnel timeout --------------------------------------------- */

H_TEST(upgrade, idle_tunnel_closed_after_first_byte_timeout)
{
    h_proxy *p = h_start_basic(NULL, NULL, "    timeouts: {first_byte: 500ms}\n");
    h_conn *c = open_tunnel(p->port, NULL);
    /* traffic keeps it open well past the timeout */
    int64_t t_start = h_now_ms();
    for (int i = 0; h_now_ms() - t_start < 1500; i++) {
        tunnel_ping(c, h_fmt("busy %d", i));
        h_sleep_ms(200);
    }
    tunnel_ping(c, "last");
    int64_t t0 = h_now_ms();
    char *got = NULL;
    bool closed = h_wait_closed(c, 4000, &got);
    int64_t took = h_now_ms() - t0;
    cr_assert(closed, "an idle tunnel was still open %lld ms after its last byte (first_byte 500ms)",
              (long long)took);
    cr_assert(took >= 400 && took <= 2000, "idle tunnel closed after %lld ms, want 500 ms (400..2000)",
              (long long)took);
    cr_assert_str_eq(got, "", "ringway sent [%s] into the tunnel before closing it", got);
    /* ringway goes on serving */
    h_resp r;
    h_get(p->port, "/after", &r);
    cr_assert_str_eq(r.body, "u1 GET /after\n");
}

/* ---- reload and SIGTERM with a tunnel open ------------------------------- */

H_TEST(upgrade, tunnel_survives_reload)
{
    /* docs: on SIGHUP no connection is dropped; running exchanges keep their
     * snapshot. A tunnel is one. */
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_basic_config(u, NULL, NULL));
    h_conn *c = open_tunnel(p->port, NULL);
    tunnel_ping(c, "gen 1");
    h_proxy_write_config(p, h_fmt("%s"
                                  "  - name: v2\n"
                                  "    paths: [{exact: /v2}]\n"
                                  "    respond: {status: 200, body: \"gen 2\"}\n",
                                  h_basic_config(u, NULL, NULL)));
    h_proxy_signal(p, SIGHUP);
    /* an exact path beats the catch-all prefix */
    int64_t t0 = h_now_ms();
    bool reloaded = false;
    while (!reloaded && h_now_ms() - t0 < 5000) {
        h_resp r;
        h_get(p->port, "/v2", &r);
        reloaded = r.body && strcmp(r.body, "gen 2") == 0;
        if (!reloaded)
            h_sleep_ms(50);
    }
    cr_assert(reloaded, "the reload never took");
    tunnel_ping(c, "after reload");
    tun t;
    tun_init(&t, c, 256u << 10, 3);
    tun_pump(&t, 1);
    tunnel_bye(c, "across a reload");
}

/* ---- (f) SIGTERM with a tunnel open -------------------------------------- */

H_TEST(upgrade, sigterm_with_tunnel_open)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL), .drain = "1s"});
    h_conn *c = open_tunnel(p->port, NULL);
    tunnel_ping(c, "before");
    int64_t t0 = h_now_ms();
    h_proxy_signal(p, SIGTERM);
    h_sleep_ms(200);
    tunnel_ping(c, "while draining");
    int st = h_proxy_wait_exit(p, 1000 + 2000);
    int64_t took = h_now_ms() - t0;
    cr_assert_neq(st, -1, "ringway still running %lld ms after SIGTERM with a tunnel open (drain 1s)",
                  (long long)took);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "ringway exit status %d after SIGTERM with a tunnel open",
              WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    cr_assert(h_wait_closed(c, 1000, NULL), "the tunnel stayed open after ringway exited");
}
