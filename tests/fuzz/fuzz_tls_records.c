/* fuzz_tls_records.c - libFuzzer driver for the TLS transport (src/core/tls.c):
 * the server side of a connection, the code that moves records between the
 * loop's buffers and BoringSSL, without sockets.
 *
 * The fuzzing seam is the transport itself: rw_tls_accept on a fake fd, then
 * the rw_tr_* calls a client connection makes, over a stand-in for the
 * worker loop defined here (rw_loop_recv, rw_loop_send, rw_loop_defer,
 * rw_loop_cancel, rw_loop_close, the loop buffers and the timer wheel, where
 * an idle turn lets a second pass), which hands the
 * session the fuzzer's bytes as the socket's ciphertext in chunks and takes
 * what it sends. The server uses a fixed ECDSA P-256 test certificate.
 *
 * Input byte 0 selects the mode and the knobs:
 *  - bit 0 clear: the rest is the client's raw ciphertext (ClientHello
 *    parsing, alerts, garbage records);
 *  - bit 0 set: an in-process BoringSSL client completes a real handshake
 *    first, then the rest is a script of steps (client application data,
 *    raw bytes spliced into the stream, server sends, close_notify on either
 *    side, KeyUpdate, a cancelled receive, a change of chunk size), so the
 *    post-handshake record paths run too;
 *  - bit 1: the application receives into its own memory (recv_into) rather
 *    than loop buffers; bit 2: loop buffers of 512 bytes (else 32 KiB), so
 *    plaintext that does not fit stays in the read BIO; bits 3-4: the
 *    application answers every receive with a send, shuts down at the end,
 *    or both; bit 5: a cancelled receive still completes with data.
 * Byte 1: the socket's chunk size (1..256 bytes, 0: as much as is there).
 *
 * Invariants: no crash, leak or hang (a bounded number of loop turns); every
 * loop buffer the session took is given back; the fd is closed exactly once,
 * after the session's own ops completed. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ringway/log.h"
#include "ringway/loop.h"
#include "ringway/tls.h"
#include "ringway/transport.h"

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- logging stand-in ---- */

int rw_log_threshold = RW_LOG_ERROR;

void rw_log(int level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

/* ---- the loop stand-in ---- */

#define FAKE_FD 1000
#define NBUF 8
#define MAX_DEFER 16
#define MAX_TURNS 20000

struct rw_loop {
    rw_op *deferred[MAX_DEFER]; /* rw_loop_defer, completed at the next turn */
    int ndeferred;
    rw_op *recv_op; /* the pending socket receive (one at a time) */
    rw_op *send_op; /* the pending socket send */
    uint32_t buf_size;
    bool used[NBUF];
    char *bufs; /* NBUF * buf_size */
    int closes;
    /* the socket: ciphertext from the client, delivered in chunks */
    uint8_t *in;
    size_t in_len, in_off, in_cap;
    size_t chunk; /* 0: all there is */
    bool eof;     /* the client is gone once in is drained */
    bool data_after_cancel;
    SSL *client;       /* in-process client (script mode), or NULL */
    rw_timers *timers; /* one wheel for all inputs (empty between them) */
    uint64_t now;
};

rw_timers *rw_loop_timers(rw_loop *l)
{
    return l->timers;
}

uint64_t rw_loop_now(const rw_loop *l)
{
    return l->now;
}

static void complete(rw_op *op, int res)
{
    op->flags = 0;
    op->cb(op, res);
}

void rw_loop_recv(rw_loop *l, rw_op *op, int fd)
{
    FUZZ_CHECK(fd == FAKE_FD && l->closes == 0 && l->recv_op == NULL);
    op->kind = RW_OP_RECV;
    op->buf = NULL;
    op->flags = RW_OPF_PENDING;
    op->gen++;
    l->recv_op = op;
}

void rw_loop_recv_into(rw_loop *l, rw_op *op, int fd, char *dst, uint32_t len)
{
    (void)l, (void)op, (void)fd, (void)dst, (void)len;
    FUZZ_CHECK(!"the TLS session receives ciphertext into loop buffers only");
}

void rw_loop_send(rw_loop *l, rw_op *op, int fd, struct iovec *iov, int iovcnt)
{
    FUZZ_CHECK(fd == FAKE_FD && l->closes == 0 && l->send_op == NULL);
    memset(&op->msg, 0, sizeof(op->msg));
    op->msg.msg_iov = iov;
    op->msg.msg_iovlen = (size_t)iovcnt;
    op->kind = RW_OP_SEND;
    op->flags = RW_OPF_PENDING;
    op->gen++;
    l->send_op = op;
}

void rw_loop_defer(rw_loop *l, rw_op *op)
{
    FUZZ_CHECK(l->ndeferred < MAX_DEFER);
    op->kind = RW_OP_NOP;
    op->flags = RW_OPF_PENDING;
    op->gen++;
    l->deferred[l->ndeferred++] = op;
}

void rw_loop_cancel(rw_loop *l, rw_op *op)
{
    (void)l;
    if (!(op->flags & RW_OPF_PENDING) || (op->flags & RW_OPF_CANCEL))
        return;
    op->flags |= RW_OPF_CANCEL; /* completes at the next turn */
}

void rw_loop_close(rw_loop *l, int fd)
{
    FUZZ_CHECK(fd == FAKE_FD && l->recv_op == NULL && l->send_op == NULL);
    l->closes++;
}

char *rw_loop_buf(rw_loop *l, uint32_t id)
{
    FUZZ_CHECK(id < NBUF);
    return l->bufs + (size_t)id * l->buf_size;
}

uint32_t rw_loop_buf_size(const rw_loop *l)
{
    return l->buf_size;
}

bool rw_loop_buf_take(rw_loop *l, uint32_t *id)
{
    for (uint32_t i = 0; i < NBUF; i++)
        if (!l->used[i]) {
            l->used[i] = true;
            *id = i;
            return true;
        }
    return false;
}

void rw_loop_buf_release(rw_loop *l, uint32_t id)
{
    FUZZ_CHECK(id < NBUF && l->used[id]);
    l->used[id] = false;
}

static void in_append(rw_loop *l, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    if (l->in_len + n > l->in_cap) {
        size_t cap = (l->in_len + n) * 2;
        uint8_t *q = realloc(l->in, cap);
        FUZZ_CHECK(q != NULL);
        l->in = q;
        l->in_cap = cap;
    }
    memcpy(l->in + l->in_len, p, n);
    l->in_len += n;
}

/* Moves what the client wrote into the socket's incoming bytes. */
static void client_flush(rw_loop *l)
{
    BIO *w = SSL_get_wbio(l->client);
    uint8_t tmp[4096];
    int n;
    while ((n = BIO_read(w, tmp, sizeof(tmp))) > 0)
        in_append(l, tmp, (size_t)n);
}

/* Lets the client consume what the server sent and answer. */
static void client_pump(rw_loop *l)
{
    uint8_t tmp[16384];
    if (!SSL_is_init_finished(l->client))
        SSL_do_handshake(l->client);
    while (SSL_is_init_finished(l->client) && SSL_read(l->client, tmp, sizeof(tmp)) > 0)
        ;
    ERR_clear_error();
    client_flush(l);
}

/* One loop turn: the deferred ops queued before it, then the socket. Returns
 * whether anything completed. */
static bool turn(rw_loop *l)
{
    bool did = false;
    int n = l->ndeferred;
    rw_op *q[MAX_DEFER];
    memcpy(q, l->deferred, sizeof(rw_op *) * (size_t)n);
    l->ndeferred = 0;
    for (int i = 0; i < n; i++) {
        did = true;
        complete(q[i], (q[i]->flags & RW_OPF_CANCEL) ? -ECANCELED : 0);
    }
    if (l->send_op != NULL) {
        rw_op *op = l->send_op;
        l->send_op = NULL;
        did = true;
        if (op->flags & RW_OPF_CANCEL) {
            complete(op, -ECANCELED);
        } else {
            size_t len = 0;
            for (size_t i = 0; i < op->msg.msg_iovlen; i++) {
                size_t k = op->msg.msg_iov[i].iov_len;
                if (l->chunk != 0 && len + k > l->chunk * 4)
                    k = l->chunk * 4 - len; /* a short send */
                if (l->client != NULL)
                    FUZZ_CHECK(BIO_write(SSL_get_rbio(l->client), op->msg.msg_iov[i].iov_base, (int)k) ==
                               (int)k);
                len += k;
                if (k < op->msg.msg_iov[i].iov_len)
                    break;
            }
            if (l->client != NULL)
                client_pump(l);
            complete(op, (int)len);
        }
    }
    if (l->recv_op != NULL) {
        rw_op *op = l->recv_op;
        size_t avail = l->in_len - l->in_off;
        bool cancelled = (op->flags & RW_OPF_CANCEL) != 0;
        if (cancelled && !(l->data_after_cancel && avail > 0)) {
            l->recv_op = NULL;
            complete(op, -ECANCELED);
            return true;
        }
        if (avail == 0 && !l->eof)
            return did;
        uint32_t id = 0;
        if (avail > 0 && !rw_loop_buf_take(l, &id))
            return did; /* no buffer: the kernel would wait too */
        l->recv_op = NULL;
        if (avail == 0) {
            complete(op, 0);
            return true;
        }
        size_t k = avail;
        if (l->chunk != 0 && k > l->chunk)
            k = l->chunk;
        if (k > l->buf_size)
            k = l->buf_size;
        memcpy(rw_loop_buf(l, id), l->in + l->in_off, k);
        l->in_off += k;
        op->buf = rw_loop_buf(l, id);
        op->buf_id = id;
        complete(op, (int)k);
        did = true;
    }
    return did;
}

/* ---- the application: a client connection's use of the transport ---- */

typedef struct app {
    rw_loop *l;
    rw_transport t;
    rw_op rd, wr;
    char dst[700]; /* recv_into target */
    bool into, echo;
    bool rd_done; /* EOF or an error: no more receives */
    bool open;
} app;

static void app_read(app *a);

static void app_send(app *a, const uint8_t *p, size_t n)
{
    static struct iovec iov[2];
    if (!a->open || (a->wr.flags & RW_OPF_PENDING) || n == 0)
        return;
    iov[0].iov_base = (void *)p;
    iov[0].iov_len = n / 2;
    iov[1].iov_base = (void *)(p + n / 2);
    iov[1].iov_len = n - n / 2;
    rw_tr_send(a->l, &a->t, &a->wr, iov, 2);
}

static void on_rd(rw_op *op, int res)
{
    app *a = op->data;
    FUZZ_CHECK(a->open);
    if (res > 0 && op->kind == RW_OP_RECV) {
        FUZZ_CHECK(op->buf == rw_loop_buf(a->l, op->buf_id) && (uint32_t)res <= a->l->buf_size);
        rw_loop_buf_release(a->l, op->buf_id);
    } else if (res > 0) {
        FUZZ_CHECK((uint32_t)res <= op->dst_len);
    } else if (op->kind == RW_OP_RECV) {
        FUZZ_CHECK(op->buf == NULL);
    }
    if (res <= 0) {
        a->rd_done = true;
        return;
    }
    if (a->echo) {
        static const uint8_t resp[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        app_send(a, resp, sizeof(resp) - 1);
    }
    app_read(a);
}

static void on_wr(rw_op *op, int res)
{
    app *a = op->data;
    FUZZ_CHECK(a->open && res <= 32768);
}

static void app_read(app *a)
{
    if (!a->open || a->rd_done || (a->rd.flags & RW_OPF_PENDING))
        return;
    if (a->into)
        rw_tr_recv_into(a->l, &a->t, &a->rd, a->dst, sizeof(a->dst));
    else
        rw_tr_recv(a->l, &a->t, &a->rd);
}

/* Turns until nothing completes; then time passes (timers fire) and it goes on. */
static void run(rw_loop *l, int max)
{
    for (int i = 0; i < max; i++) {
        if (turn(l))
            continue;
        if (l->timers->count == 0)
            return;
        l->now += 1000;
        rw_timers_run(l->timers, l->now);
    }
}

/* ---- setup ---- */

static const char k_cert[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBljCCATugAwIBAgIUaRL/5y3ykLkvCBPZF+9ui+v7/BIwCgYIKoZIzj0EAwIw\n"
                             "FDESMBAGA1UEAwwJZnV6ei50ZXN0MCAXDTI2MTIwNzE4MTAyOVoYDzIxMjYxMTEz\n"
                             "MTgxMDI5WjAUMRIwEAYDVQQDDAlmdXp6LnRlc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
                             "PQMBBwNCAASNQ3zDkG66Nw9ePyfYxmxAXhB7fN7kcuXAgnW7b/QAwLa4fZcRPINL\n"
                             "BWcuvbQ7/iBFLZE8tD5SPC/ofT6VZHS1o2kwZzAdBgNVHQ4EFgQUZsC/CKlTX/GU\n"
                             "7ZXb4AiJIFPpIlswHwYDVR0jBBgwFoAUZsC/CKlTX/GU7ZXb4AiJIFPpIlswDwYD\n"
                             "VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglmdXp6LnRlc3QwCgYIKoZIzj0EAwID\n"
                             "SQAwRgIhAPqH+eA+N5VD2wbvcDapv6GuBbc/Hvarv7GEH3YwT4qJAiEA6am+wpUs\n"
                             "+VSzyNzJdQr9BZ+aDdxHRolwWheyOo//i7o=\n"
                             "-----END CERTIFICATE-----\n";
static const char k_key[] = "-----BEGIN PRIVATE KEY-----\n"
                            "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwm+2n4aJgQLqemmj\n"
                            "r47PKMqU1u59IvNMFOV+clYgxbShRANCAASNQ3zDkG66Nw9ePyfYxmxAXhB7fN7k\n"
                            "cuXAgnW7b/QAwLa4fZcRPINLBWcuvbQ7/iBFLZE8tD5SPC/ofT6VZHS1\n"
                            "-----END PRIVATE KEY-----\n";

static rw_tls_server *g_srv;
static rw_timers g_timers;
static SSL_CTX *g_cctx;

static void write_tmp(char *path, const char *text)
{
    int fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char cert[] = "/tmp/rw-fuzz-tls-crt-XXXXXX", key[] = "/tmp/rw-fuzz-tls-key-XXXXXX";
    write_tmp(cert, k_cert);
    write_tmp(key, k_key);
    rw_tls_cert_files f = {.cert_file = cert, .key_file = key};
    rw_tls_server_opts o = {
        .certs = &f, .ncerts = 1, .tickets = true, .ticket_rotate_s = 3600, .name = "fuzz"};
    char err[256];
    g_srv = rw_tls_server_new(&o, err, sizeof(err));
    unlink(cert);
    unlink(key);
    if (g_srv == NULL) {
        fprintf(stderr, "fuzz_tls_records: %s\n", err);
        abort();
    }
    FUZZ_CHECK(rw_timers_init(&g_timers, 0) == 0);
    g_cctx = SSL_CTX_new(TLS_method());
    FUZZ_CHECK(g_cctx != NULL);
    SSL_CTX_set_verify(g_cctx, SSL_VERIFY_NONE, NULL);
    return 0;
}

/* Script steps (byte 0: op, byte 1: length, then that many bytes of data). */
enum { S_CLIENT_DATA, S_RAW, S_SERVER_SEND, S_CHUNK, S_CLIENT_CLOSE, S_SERVER_SHUT, S_CANCEL, S_KEY_UPDATE };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char bufs_small[NBUF * 512], *bufs_big;
    if (size < 2)
        return 0;
    if (bufs_big == NULL)
        bufs_big = malloc((size_t)NBUF * 32768);
    FUZZ_CHECK(bufs_big != NULL);
    uint8_t sel = data[0];
    rw_loop l = {.buf_size = (sel & 4) ? 512 : 32768, .chunk = data[1], .data_after_cancel = (sel & 32) != 0};
    l.bufs = (sel & 4) ? bufs_small : bufs_big;
    l.timers = &g_timers;
    l.now = g_timers.now;
    app a = {.l = &l, .into = (sel & 2) != 0, .echo = (sel & 8) != 0, .open = true};
    a.rd.cb = on_rd;
    a.wr.cb = on_wr;
    a.rd.data = a.wr.data = &a;
    FUZZ_CHECK(rw_tls_accept(g_srv, &l, &a.t, FAKE_FD) == 0);
    const uint8_t *p = data + 2, *end = data + size;
    if (!(sel & 1)) {
        in_append(&l, p, (size_t)(end - p));
        l.eof = true;
        app_read(&a);
        run(&l, MAX_TURNS);
    } else {
        l.client = SSL_new(g_cctx);
        BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
        FUZZ_CHECK(l.client != NULL && r != NULL && w != NULL);
        BIO_set_mem_eof_return(r, -1);
        SSL_set_bio(l.client, r, w);
        SSL_set_connect_state(l.client);
        SSL_set_tlsext_host_name(l.client, "fuzz.test");
        client_pump(&l);
        app_read(&a);
        run(&l, 64);
        while (end - p >= 2 && !a.rd_done) {
            uint8_t op = p[0] % 8;
            size_t n = p[1];
            p += 2;
            if (n > (size_t)(end - p))
                n = (size_t)(end - p);
            switch (op) {
            case S_CLIENT_DATA:
                if (SSL_is_init_finished(l.client) && n > 0)
                    SSL_write(l.client, p, (int)n);
                client_flush(&l);
                break;
            case S_RAW:
                in_append(&l, p, n);
                break;
            case S_SERVER_SEND:
                app_send(&a, p, n);
                break;
            case S_CHUNK:
                l.chunk = n;
                break;
            case S_CLIENT_CLOSE:
                SSL_shutdown(l.client);
                client_flush(&l);
                break;
            case S_SERVER_SHUT:
                rw_tr_shutdown_wr(&a.t);
                break;
            case S_CANCEL:
                if (a.rd.flags & RW_OPF_PENDING)
                    rw_tr_cancel(&l, &a.t, &a.rd);
                break;
            case S_KEY_UPDATE:
                if (SSL_is_init_finished(l.client))
                    SSL_key_update(l.client, SSL_KEY_UPDATE_REQUESTED);
                client_flush(&l);
                break;
            }
            ERR_clear_error();
            p += n;
            run(&l, 64);
            if (!(a.rd.flags & RW_OPF_PENDING) && !a.rd_done && op != S_CANCEL)
                app_read(&a);
        }
        l.eof = true;
        run(&l, MAX_TURNS);
    }
    if (sel & 16)
        rw_tr_shutdown_wr(&a.t);
    if (a.wr.flags & RW_OPF_PENDING)
        rw_tr_cancel(&l, &a.t, &a.wr);
    run(&l, MAX_TURNS);
    /* Like the proxy: close once the caller's ops completed. */
    FUZZ_CHECK(!((a.rd.flags | a.wr.flags) & RW_OPF_PENDING) || l.ndeferred == 0);
    if (a.rd.flags & RW_OPF_PENDING)
        rw_tr_cancel(&l, &a.t, &a.rd);
    run(&l, MAX_TURNS);
    FUZZ_CHECK(!((a.rd.flags | a.wr.flags) & RW_OPF_PENDING));
    a.open = false;
    rw_tr_close(&l, &a.t);
    run(&l, MAX_TURNS);
    FUZZ_CHECK(l.closes == 1 && l.recv_op == NULL && l.send_op == NULL && l.ndeferred == 0);
    for (int i = 0; i < NBUF; i++)
        FUZZ_CHECK(!l.used[i]);
#ifdef FUZZ_TRACE
    fprintf(stderr, "client handshake done: %d, in %zu bytes\n",
            l.client ? SSL_is_init_finished(l.client) : -1, l.in_len);
#endif
    FUZZ_CHECK(g_timers.count == 0);
    SSL_free(l.client);
    free(l.in);
    ERR_clear_error();
    return 0;
}
