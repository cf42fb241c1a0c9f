/* tls.c - TLS termination over the transport seam (see tls.h).
 *
 * A session is BoringSSL with two memory BIOs: ciphertext the loop received
 * is written into the read BIO, the records BoringSSL writes are moved from
 * the write BIO into the session's output buffer and sent by the loop. The
 * caller's rw_op is never given to the loop: the session submits its own
 * (rop: socket receive into a loop buffer; wop: send of the output buffer;
 * dop/wdop: deferred completions) and completes the caller's op from their
 * callbacks, with the same kinds and results as the plain path:
 *  - receive: the handshake runs inside the first one; ciphertext that
 *    yields no plaintext (handshake, partial record) re-arms the socket
 *    receive; plaintext goes into the loop buffer the ciphertext came in
 *    (RW_OP_RECV, copied into the read BIO first) or the caller's memory
 *    (RW_OP_RECV_INTO); what does not fit stays as records in the read BIO
 *    and the next receive completes from it at the next turn;
 *  - send: encrypts at most RW_TLS_SEND_MAX plaintext bytes and completes,
 *    with that count, once their records are on the socket; several iovecs
 *    that fit one record (a response's head and small body) are gathered
 *    on the stack first, so they cost one record (one seal) instead of one
 *    each;
 *  - shutdown_wr: close_notify, then SHUT_WR once it is sent;
 *  - close: frees the session, after its own ops (cancelled) completed;
 *    after a fatal error (a failed handshake, a bad record) the send of the
 *    alert BoringSSL queued is not cancelled but given up to RW_TLS_LINGER_MS
 *    to reach the client, so it sees e.g. "protocol version" rather than a
 *    bare reset.
 *
 * Fuzzing seam: tests/fuzz/fuzz_tls_records.c drives a session through
 * rw_tls_accept and rw__tls_transport_ops (the rw_tr_* calls) over its own
 * stand-in for the loop calls made here (receive, send, defer, cancel, close,
 * the loop buffers, the timer wheel), feeding the fuzzer's bytes as the
 * client's ciphertext; keep this file's use of the loop to those calls.
 *
 * Server contexts: one SSL_CTX per listener per config (rw_tls_server, freed
 * with the SSL_CTX's last reference). Certificates are a reference-counted
 * set chosen per handshake by SNI and by what the client can verify (ECDSA
 * or RSA) in the select-certificate callback; a reload from the files swaps
 * the set under a mutex taken once per handshake. Session ticket keys are
 * derived from a process-wide random secret and the rotation period's number,
 * so every worker issues and accepts the same tickets without sharing state. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ringway/common.h"
#include "ringway/log.h"
#include "ringway/tls.h"

#define RW_TLS_SEND_MAX 32768u /* plaintext bytes one send encrypts */
#define RW_TLS_GATHER 16384u   /* iovecs up to one record's plaintext are written as one */
#define RW_TLS_MAX_CHAIN 8
#define RW_TLS_MAX_NAMES 64
#define RW_TLS_LINGER_MS 1000 /* how long a closed session's alert may take to send */

static struct {
    atomic_uint_fast64_t handshakes, resumed, handshake_errors, cert_reloads, cert_reload_errors;
    atomic_uint_fast64_t up_handshakes, up_resumed, up_handshake_errors;
    atomic_uint_fast64_t by_suite[RW_TLS_NSUITES + 1]; /* client handshakes by suite; the last: other */
} g_stats;

/* The suites a listener may negotiate (IANA numbers and names), for
 * ringway_tls_connections_total{version,cipher}: a fixed, small label set. */
static const struct {
    uint16_t id;
    const char *version, *name;
} k_suites[RW_TLS_NSUITES] = {
    {0x1301, "TLSv1.3", "TLS_AES_128_GCM_SHA256"},
    {0x1302, "TLSv1.3", "TLS_AES_256_GCM_SHA384"},
    {0x1303, "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"},
    {0xC02B, "TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
    {0xC02C, "TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
    {0xC02F, "TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0xC030, "TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0xCCA8, "TLSv1.2", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xCCA9, "TLSv1.2", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
};

size_t rw_tls_suite_metrics(char *buf, size_t cap)
{
    size_t n = 0;
    int w = snprintf(buf, cap,
                     "# HELP ringway_tls_connections_total Client TLS handshakes completed, by version and "
                     "cipher suite.\n# TYPE ringway_tls_connections_total counter\n");
    n = w > 0 && (size_t)w < cap ? (size_t)w : cap;
    for (size_t i = 0; i <= RW_TLS_NSUITES && n < cap; i++) {
        uint64_t v = atomic_load_explicit(&g_stats.by_suite[i], memory_order_relaxed);
        if (v == 0)
            continue;
        w = snprintf(buf + n, cap - n, "ringway_tls_connections_total{version=\"%s\",cipher=\"%s\"} %llu\n",
                     i < RW_TLS_NSUITES ? k_suites[i].version : "other",
                     i < RW_TLS_NSUITES ? k_suites[i].name : "other", (unsigned long long)v);
        n = w > 0 && n + (size_t)w < cap ? n + (size_t)w : cap;
    }
    return n;
}

/* Counts a completed client handshake under its suite. */
static void count_suite(const SSL *ssl)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    uint16_t id = c != NULL ? SSL_CIPHER_get_protocol_id(c) : 0;
    size_t i = 0;
    while (i < RW_TLS_NSUITES && k_suites[i].id != id)
        i++;
    atomic_fetch_add_explicit(&g_stats.by_suite[i], 1, memory_order_relaxed);
}

void rw_tls_stats_get(rw_tls_stats *out)
{
    out->handshakes = atomic_load_explicit(&g_stats.handshakes, memory_order_relaxed);
    out->resumed = atomic_load_explicit(&g_stats.resumed, memory_order_relaxed);
    out->handshake_errors = atomic_load_explicit(&g_stats.handshake_errors, memory_order_relaxed);
    out->cert_reloads = atomic_load_explicit(&g_stats.cert_reloads, memory_order_relaxed);
    out->cert_reload_errors = atomic_load_explicit(&g_stats.cert_reload_errors, memory_order_relaxed);
    out->up_handshakes = atomic_load_explicit(&g_stats.up_handshakes, memory_order_relaxed);
    out->up_resumed = atomic_load_explicit(&g_stats.up_resumed, memory_order_relaxed);
    out->up_handshake_errors = atomic_load_explicit(&g_stats.up_handshake_errors, memory_order_relaxed);
}

static void count(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- certificates ---- */

typedef struct tls_cred {
    CRYPTO_BUFFER *chain[RW_TLS_MAX_CHAIN];
    size_t nchain;
    EVP_PKEY *key;
    bool ecdsa;
    char *names[RW_TLS_MAX_NAMES]; /* lower case; "*.x" for wildcards */
    size_t nnames;
} tls_cred;

/* The certificates in use: immutable once built, reference-counted. */
typedef struct tls_certset {
    atomic_int refs;
    size_t n;
    tls_cred creds[];
} tls_certset;

struct rw_tls_server {
    SSL_CTX *ctx;             /* our reference; sessions hold theirs */
    pthread_mutex_t mu;       /* guards cur (taken once per handshake) */
    tls_certset *cur;         /* reference owned */
    rw_tls_cert_files *files; /* copies of the paths (malloc'd strings) */
    size_t nfiles;
    uint32_t rotate_s;
    uint8_t ticket_secret[32]; /* ticket keys derive from it: the process's, or SHA-256 of key_file */
    uint64_t files_sig;        /* stat signature of the files last loaded or tried (control thread) */
    char name[96];
};

/* A signature of the files' identities (following symlinks: a Kubernetes
 * Secret's ..data swap changes it); 0 when one cannot be read. */
static uint64_t files_sig(const rw_tls_cert_files *f, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < 2 * n; i++) {
        struct stat st;
        if (stat(i % 2 ? f[i / 2].key_file : f[i / 2].cert_file, &st) != 0)
            return 0;
        uint64_t v[5] = {(uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
                         (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec};
        for (size_t j = 0; j < 5; j++)
            h = (h ^ v[j]) * 0x100000001b3ull;
    }
    return h;
}

static void cred_clear(tls_cred *c)
{
    for (size_t i = 0; i < c->nchain; i++)
        CRYPTO_BUFFER_free(c->chain[i]);
    EVP_PKEY_free(c->key);
    for (size_t i = 0; i < c->nnames; i++)
        free(c->names[i]);
    memset(c, 0, sizeof(*c));
}

static void certset_unref(tls_certset *cs)
{
    if (cs == NULL || atomic_fetch_sub_explicit(&cs->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < cs->n; i++)
        cred_clear(&cs->creds[i]);
    free(cs);
}

/* The first queued BoringSSL error as text (or fallback), clearing the queue. */
static const char *ssl_reason(char *buf, size_t cap, const char *fallback)
{
    uint32_t e = ERR_get_error();
    ERR_clear_error();
    if (e == 0)
        return fallback;
    ERR_error_string_n(e, buf, cap);
    return buf;
}

static int cred_add_name(tls_cred *c, const char *name, size_t len)
{
    if (c->nnames == RW_TLS_MAX_NAMES || len == 0 || len > 253)
        return 0;
    char *s = malloc(len + 1);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < len; i++)
        s[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    s[len] = '\0';
    c->names[c->nnames++] = s;
    return 0;
}

/* The DNS names of x: its subjectAltName entries, else its CN. */
static int cred_names(tls_cred *c, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (gens != NULL) {
        int rc = 0;
        for (size_t i = 0; i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
            if (g->type == GEN_DNS)
                rc = cred_add_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                                   (size_t)ASN1_STRING_length(g->d.dNSName));
        }
        GENERAL_NAMES_free(gens);
        if (rc != 0 || c->nnames > 0)
            return rc;
    }
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    return n > 0 ? cred_add_name(c, cn, (size_t)n) : 0;
}

/* Loads one certificate chain and key into c; -1 with err naming the file. */
static int cred_load(tls_cred *c, const rw_tls_cert_files *f, char *err, size_t errlen)
{
    char why[160];
    X509 *leaf = NULL;
    int rc = -1;
    BIO *b = BIO_new_file(f->cert_file, "r");
    if (b == NULL) {
        snprintf(err, errlen, "cert_file %s: cannot read it: %s", f->cert_file, strerror(errno));
        ERR_clear_error();
        return -1;
    }
    for (;;) {
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (x == NULL)
            break;
        uint8_t *der = NULL;
        int len = i2d_X509(x, &der);
        CRYPTO_BUFFER *cb = len > 0 ? CRYPTO_BUFFER_new(der, (size_t)len, NULL) : NULL;
        OPENSSL_free(der);
        if (cb == NULL || c->nchain == RW_TLS_MAX_CHAIN) {
            CRYPTO_BUFFER_free(cb);
            X509_free(x);
            snprintf(err, errlen, "cert_file %s: %s", f->cert_file,
                     cb == NULL ? "cannot encode a certificate" : "chain longer than 8 certificates");
            goto out;
        }
        c->chain[c->nchain++] = cb;
        if (leaf == NULL)
            leaf = x;
        else
            X509_free(x);
    }
    ERR_clear_error(); /* the end of the file reads as an error */
    if (leaf == NULL) {
        snprintf(err, errlen, "cert_file %s: no PEM certificate in it", f->cert_file);
        goto out;
    }
    BIO_free(b);
    b = BIO_new_file(f->key_file, "r");
    if (b == NULL) {
        snprintf(err, errlen, "key_file %s: cannot read it: %s", f->key_file, strerror(errno));
        ERR_clear_error();
        goto out;
    }
    c->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    if (c->key == NULL) {
        snprintf(err, errlen, "key_file %s: no PEM private key in it (%s)", f->key_file,
                 ssl_reason(why, sizeof(why), "unreadable"));
        goto out;
    }
    int type = EVP_PKEY_id(c->key);
    if (type != EVP_PKEY_EC && type != EVP_PKEY_RSA) {
        snprintf(err, errlen, "key_file %s: only ECDSA and RSA keys are supported", f->key_file);
        goto out;
    }
    c->ecdsa = type == EVP_PKEY_EC;
    if (X509_check_private_key(leaf, c->key) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "key_file %s does not match cert_file %s", f->key_file, f->cert_file);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        snprintf(err, errlen, "cert_file %s: the certificate has expired", f->cert_file);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
        rw_log_warn("tls: cert_file %s is not valid yet", f->cert_file);
    if (cred_names(c, leaf) != 0) {
        snprintf(err, errlen, "cert_file %s: out of memory", f->cert_file);
        goto out;
    }
    rc = 0;
out:
    X509_free(leaf);
    BIO_free(b);
    if (rc != 0)
        cred_clear(c);
    return rc;
}

static tls_certset *certset_load(const rw_tls_cert_files *files, size_t n, char *err, size_t errlen)
{
    tls_certset *cs = calloc(1, sizeof(*cs) + n * sizeof(tls_cred));
    if (cs == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&cs->refs, 1);
    for (size_t i = 0; i < n; i++) {
        if (cred_load(&cs->creds[i], &files[i], err, errlen) != 0) {
            certset_unref(cs);
            return NULL;
        }
        cs->n = i + 1;
    }
    return cs;
}

/* 2: exact, 1: wildcard covering host, 0: no. */
static int name_match(const char *pat, const char *host)
{
    if (strcasecmp(pat, host) == 0)
        return 2;
    if (pat[0] != '*' || pat[1] != '.')
        return 0;
    const char *dot = strchr(host, '.');
    return dot != NULL && dot != host && strcasecmp(pat + 1, dot) == 0 ? 1 : 0;
}

/* The best credential for host (NULL: the default's name) of the wanted kind. */
static const tls_cred *pick(const tls_certset *cs, const char *host, bool ecdsa_ok)
{
    const tls_cred *best = NULL;
    int best_score = 0;
    if (host == NULL && cs->creds[0].nnames > 0)
        host = cs->creds[0].names[0];
    for (size_t i = 0; host != NULL && i < cs->n; i++) {
        const tls_cred *c = &cs->creds[i];
        int m = 0;
        for (size_t j = 0; j < c->nnames; j++) {
            int k = name_match(c->names[j], host);
            m = k > m ? k : m;
        }
        if (m == 0)
            continue;
        /* by match quality, then a kind the client takes (ECDSA first) */
        int score = m * 4 + (c->ecdsa ? (ecdsa_ok ? 2 : 0) : 1);
        if (score > best_score) {
            best = c;
            best_score = score;
        }
    }
    if (best == NULL || (best->ecdsa && !ecdsa_ok)) {
        if (best == NULL)
            best = &cs->creds[0];
    }
    return best;
}

/* Whether the ClientHello lets us sign with ECDSA: an ECDSA signature
 * algorithm, and for TLS 1.2 an ECDHE-ECDSA suite (or TLS 1.3 offered). */
static bool hello_ecdsa_ok(const SSL_CLIENT_HELLO *h)
{
    const uint8_t *d;
    size_t len;
    bool sig = false, suite = false;
    if (SSL_early_callback_ctx_extension_get(h, TLSEXT_TYPE_signature_algorithms, &d, &len) && len >= 2) {
        for (size_t i = 2; i + 1 < len; i += 2) {
            uint16_t alg = (uint16_t)(d[i] << 8 | d[i + 1]);
            if (SSL_get_signature_algorithm_key_type(alg) == EVP_PKEY_EC)
                sig = true;
        }
    }
    if (!sig)
        return false;
    if (SSL_early_callback_ctx_extension_get(h, TLSEXT_TYPE_supported_versions, &d, &len) && len >= 1) {
        for (size_t i = 1; i + 1 < len; i += 2)
            if (d[i] == 0x03 && d[i + 1] == 0x04)
                suite = true;
    }
    for (size_t i = 0; !suite && i + 1 < h->cipher_suites_len; i += 2) {
        uint16_t cs = (uint16_t)(h->cipher_suites[i] << 8 | h->cipher_suites[i + 1]);
        suite = cs == 0xC02B || cs == 0xC02C || cs == 0xCCA9;
    }
    return suite;
}

static int g_srv_index = -1;
static int g_sess_index = -1; /* SSL ex_data: its tls_sess (client sessions) */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static uint8_t g_ticket_secret[32];

static void srv_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)index;
    (void)argl;
    (void)argp;
    rw_tls_server *s = ptr;
    if (s == NULL)
        return;
    certset_unref(s->cur);
    for (size_t i = 0; i < s->nfiles; i++) {
        free((char *)s->files[i].cert_file);
        free((char *)s->files[i].key_file);
    }
    free(s->files);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void tls_init_once(void)
{
    g_srv_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, srv_free_cb);
    g_sess_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    RAND_bytes(g_ticket_secret, sizeof(g_ticket_secret));
}

static rw_tls_server *srv_of(const SSL *ssl)
{
    return SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_srv_index);
}

static enum ssl_select_cert_result_t select_cert(const SSL_CLIENT_HELLO *h)
{
    SSL *ssl = h->ssl;
    rw_tls_server *s = srv_of(ssl);
    pthread_mutex_lock(&s->mu);
    tls_certset *cs = s->cur;
    atomic_fetch_add_explicit(&cs->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->mu);
    const tls_cred *c = pick(cs, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), hello_ecdsa_ok(h));
    int ok = SSL_set_chain_and_key(ssl, c->chain, c->nchain, c->key, NULL);
    certset_unref(cs);
    return ok ? ssl_select_cert_success : ssl_select_cert_error;
}

/* ALPN: http/1.1 when offered, else no ALPN (h2 is not spoken here). */
static int alpn_select(SSL *ssl, const uint8_t **out, uint8_t *outlen, const uint8_t *in, unsigned inlen,
                       void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = (uint8_t)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Ticket keys of period number epoch: AES-256 and HMAC-SHA256 keys derived
 * from secret (the process's, or a fleet's key_file); the key name carries a
 * tag of the secret and the epoch, so another secret's tickets are not ours. */
static void ticket_keys(const uint8_t secret[32], uint64_t epoch, uint8_t aes[32], uint8_t mac[32],
                        uint8_t name[16])
{
    uint8_t msg[12];
    unsigned len = 32;
    memcpy(msg, "rwtk", 4);
    for (int i = 0; i < 8; i++)
        msg[4 + i] = (uint8_t)(epoch >> (56 - 8 * i));
    HMAC(EVP_sha256(), secret, 32, msg, sizeof(msg), aes, &len);
    msg[3] = 'm';
    HMAC(EVP_sha256(), secret, 32, msg, sizeof(msg), mac, &len);
    msg[3] = 'n';
    uint8_t tag[32];
    HMAC(EVP_sha256(), secret, 32, msg, 4, tag, &len);
    memcpy(name, tag, 8);
    memcpy(name + 8, msg + 4, 8);
}

/* A fleet's ticket secret: SHA-256 of the file's bytes (at least 32, e.g.
 * `openssl rand 48 > ticket.key`), so every node with the file derives the
 * same keys for the same period. 0, or -1 with the reason. */
static int ticket_secret_load(const char *path, uint8_t out[32], char *err, size_t errlen)
{
    uint8_t buf[4096];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "session_tickets.key_file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf), f);
    bool more = n == sizeof(buf) && fgetc(f) != EOF;
    fclose(f);
    if (n < 32 || more) {
        snprintf(err, errlen, "session_tickets.key_file %s: %s", path,
                 more ? "more than 4096 bytes" : "fewer than 32 bytes (make one with: openssl rand 48)");
        OPENSSL_cleanse(buf, sizeof(buf));
        return -1;
    }
    SHA256(buf, n, out);
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

static int ticket_cb(SSL *ssl, uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *ctx, HMAC_CTX *hctx,
                     int encrypt)
{
    rw_tls_server *s = srv_of(ssl);
    uint64_t now_epoch = (uint64_t)time(NULL) / s->rotate_s;
    uint8_t aes[32], mac[32], name[16];
    if (encrypt) {
        ticket_keys(s->ticket_secret, now_epoch, aes, mac, name);
        memcpy(key_name, name, 16);
        RAND_bytes(iv, EVP_MAX_IV_LENGTH);
        if (!EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, aes, iv) ||
            !HMAC_Init_ex(hctx, mac, sizeof(mac), EVP_sha256(), NULL))
            return -1;
        return 1;
    }
    uint64_t epoch = 0;
    for (int i = 0; i < 8; i++)
        epoch = epoch << 8 | key_name[8 + i];
    if (epoch != now_epoch && epoch + 1 != now_epoch)
        return 0; /* expired or not ours: a full handshake */
    ticket_keys(s->ticket_secret, epoch, aes, mac, name);
    if (CRYPTO_memcmp(name, key_name, 16) != 0)
        return 0;
    if (!HMAC_Init_ex(hctx, mac, sizeof(mac), EVP_sha256(), NULL) ||
        !EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, aes, iv))
        return -1;
    return epoch == now_epoch ? 1 : 2; /* 2: renew, issued with the previous key */
}

static const char k_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

rw_tls_server *rw_tls_server_new(const rw_tls_server_opts *o, char *err, size_t errlen)
{
    char why[160];
    pthread_once(&g_once, tls_init_once);
    if (o->ncerts == 0) {
        snprintf(err, errlen, "certificates: at least one is needed");
        return NULL;
    }
    rw_tls_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->name, sizeof(s->name), "%s", o->name != NULL ? o->name : "tls");
    s->rotate_s = o->ticket_rotate_s > 0 ? o->ticket_rotate_s : 12 * 3600;
    memcpy(s->ticket_secret, g_ticket_secret, sizeof(s->ticket_secret));
    if (o->ticket_key_file != NULL &&
        ticket_secret_load(o->ticket_key_file, s->ticket_secret, err, errlen) != 0)
        goto fail;
    s->files = calloc(o->ncerts, sizeof(*s->files));
    if (s->files == NULL)
        goto oom;
    for (size_t i = 0; i < o->ncerts; i++) {
        s->files[i].cert_file = strdup(o->certs[i].cert_file);
        s->files[i].key_file = strdup(o->certs[i].key_file);
        s->nfiles = i + 1;
        if (s->files[i].cert_file == NULL || s->files[i].key_file == NULL)
            goto oom;
    }
    s->files_sig = files_sig(s->files, s->nfiles);
    s->cur = certset_load(s->files, s->nfiles, err, errlen);
    if (s->cur == NULL)
        goto fail;
    s->ctx = SSL_CTX_new(TLS_method());
    if (s->ctx == NULL || !SSL_CTX_set_ex_data(s->ctx, g_srv_index, s))
        goto oom;
    /* From here the SSL_CTX owns s: SSL_CTX_free frees it (srv_free_cb). */
    SSL_CTX *ctx = s->ctx;
    if (!SSL_CTX_set_min_proto_version(ctx, o->min_tls13 ? TLS1_3_VERSION : TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_strict_cipher_list(ctx, k_ciphers)) {
        snprintf(err, errlen, "cannot configure TLS: %s", ssl_reason(why, sizeof(why), "?"));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (o->client_verify != RW_TLS_CV_OFF) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca_file);
        if (names == NULL || !SSL_CTX_load_verify_locations(ctx, o->client_ca_file, NULL)) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(err, errlen, "client_ca_file %s: %s", o->client_ca_file,
                     ssl_reason(why, sizeof(why), "no PEM certificate"));
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx,
                           SSL_VERIFY_PEER |
                               (o->client_verify == RW_TLS_CV_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           NULL);
    }
    SSL_CTX_set_select_certificate_cb(ctx, select_cert);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    SSL_CTX_set_early_data_enabled(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* stateless: tickets only */
    SSL_CTX_set_session_id_context(ctx, (const uint8_t *)"ringway", 7);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (o->tickets) {
        SSL_CTX_set_tlsext_ticket_key_cb(ctx, ticket_cb);
        SSL_CTX_set_timeout(ctx, s->rotate_s);
        SSL_CTX_set_session_psk_dhe_timeout(ctx, s->rotate_s);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    return s;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (s->ctx != NULL) {
        SSL_CTX_free(s->ctx);
        return NULL;
    }
    srv_free_cb(NULL, s, NULL, 0, 0, NULL);
    return NULL;
}

void rw_tls_server_free(rw_tls_server *s)
{
    if (s != NULL)
        SSL_CTX_free(s->ctx);
}

int rw_tls_server_reload_certs(rw_tls_server *s, char *err, size_t errlen)
{
    tls_certset *cs = certset_load(s->files, s->nfiles, err, errlen);
    if (cs == NULL) {
        count(&g_stats.cert_reload_errors);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    tls_certset *old = s->cur;
    s->cur = cs;
    pthread_mutex_unlock(&s->mu);
    certset_unref(old);
    count(&g_stats.cert_reloads);
    return 0;
}

int rw_tls_server_poll_files(rw_tls_server *s, char *err, size_t errlen)
{
    uint64_t sig = files_sig(s->files, s->nfiles);
    if (sig == s->files_sig)
        return 0;
    s->files_sig = sig; /* a failure is reported once per change */
    if (sig == 0) {
        snprintf(err, errlen, "a certificate or key file cannot be read");
        count(&g_stats.cert_reload_errors);
        return -1;
    }
    return rw_tls_server_reload_certs(s, err, errlen) == 0 ? 1 : -1;
}

const char *rw_tls_server_name(const rw_tls_server *s)
{
    return s->name;
}

void rw_tls_server_dirs(const rw_tls_server *s, void (*fn)(const char *dir, void *arg), void *arg)
{
    char seen[16][512];
    size_t nseen = 0;
    for (size_t i = 0; i < 2 * s->nfiles; i++) {
        const char *p = i % 2 ? s->files[i / 2].key_file : s->files[i / 2].cert_file;
        char dir[512];
        const char *slash = strrchr(p, '/');
        if (slash == NULL)
            snprintf(dir, sizeof(dir), ".");
        else if (slash == p)
            snprintf(dir, sizeof(dir), "/");
        else
            snprintf(dir, sizeof(dir), "%.*s", (int)(slash - p), p);
        bool dup = false;
        for (size_t j = 0; j < nseen && !dup; j++)
            dup = strcmp(seen[j], dir) == 0;
        if (dup)
            continue;
        if (nseen < RW_ARRAY_LEN(seen))
            snprintf(seen[nseen++], sizeof(seen[0]), "%s", dir);
        fn(dir, arg);
    }
}

/* ---- sessions: the transport kind ---- */

typedef struct tls_sess {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    rw_loop *l;
    int fd;
    rw_op rop;   /* socket receive (loop buffer) */
    rw_op wop;   /* socket send of out[out_off..out_len) */
    rw_op dop;   /* deferred completion of urd */
    rw_op wdop;  /* deferred completion of uwr */
    rw_op *urd;  /* the caller's pending receive */
    rw_op *uwr;  /* the caller's pending send */
    int uwr_res; /* what uwr completes with once out is sent */
    int rerr;    /* sticky: 0, or the receive side's end (1: EOF) or -errno */
    int werr;    /* sticky send error */
    char *out;   /* ciphertext being sent (malloc'd, kept for the connection) */
    uint32_t out_len, out_off, out_cap;
    struct iovec wiov;
    bool handshaken;
    bool fin_wanted;    /* shutdown_wr: SHUT_WR once out is sent */
    bool orphan;        /* the transport closed: free once our ops completed */
    bool client;        /* connect state (an upstream connection) */
    bool hs_op;         /* urd is rw_tls_handshake's op: completes with 0 once handshaken */
    const char *fail;   /* why the handshake failed (a static string), or NULL */
    SSL_SESSION *fresh; /* client: the newest resumable session received (owned) */
    char *peer_subject; /* server with mTLS: the client certificate's subject (malloc'd), or NULL */
    char *peer_san;     /* ... its SANs (malloc'd, may be "") */
    char peer_fp[65];   /* ... its SHA-256 fingerprint in hex */
    bool fatal;         /* a fatal error: out may hold BoringSSL's alert */
    rw_timer linger;    /* bounds an orphan's wait for its alert's send */
} tls_sess;

static void sess_free(tls_sess *s)
{
    rw_timer_cancel(rw_loop_timers(s->l), &s->linger);
    SSL_SESSION_free(s->fresh);
    free(s->peer_subject);
    free(s->peer_san);
    SSL_free(s->ssl);
    free(s->out);
    rw_loop_close(s->l, s->fd);
    free(s);
}

/* An orphan goes once none of its ops is pending. */
static bool orphan_done(tls_sess *s)
{
    if (!s->orphan)
        return false;
    if (!((s->rop.flags | s->wop.flags | s->dop.flags | s->wdop.flags) & RW_OPF_PENDING))
        sess_free(s);
    return true;
}

/* Delivers a caller op's completion (the last thing its caller does with s:
 * the callback may close the transport). */
static void user_complete(rw_op *op, int res)
{
    op->flags = 0;
    op->cb(op, res);
}

static void complete_rd(tls_sess *s, int res)
{
    rw_op *op = s->urd;
    s->urd = NULL;
    if (s->hs_op) { /* a handshake op: 0 once handshaken, else an error (an EOF too) */
        s->hs_op = false;
        op->buf = NULL;
        if (res >= 0)
            res = s->handshaken ? 0 : -ECONNRESET;
    }
    if (res <= 0 && op->kind == RW_OP_RECV)
        op->buf = NULL;
    user_complete(op, res);
}

/* Moves the records BoringSSL wrote to out and sends them (unless a send is
 * in flight: they wait in the write BIO for its completion). */
static void flush_out(tls_sess *s)
{
    if ((s->wop.flags & RW_OPF_PENDING) || s->werr != 0)
        return;
    size_t pend = BIO_pending(s->wbio);
    if (pend > 0) {
        if (s->out_len == s->out_off)
            s->out_len = s->out_off = 0;
        if (s->out_len + pend > s->out_cap) {
            size_t cap = s->out_len + pend < 4096 ? 4096 : s->out_len + pend;
            char *p = realloc(s->out, cap);
            if (p == NULL) {
                s->werr = -ENOMEM;
                return;
            }
            s->out = p;
            s->out_cap = (uint32_t)cap;
        }
        int n = BIO_read(s->wbio, s->out + s->out_len, (int)pend);
        if (n > 0)
            s->out_len += (uint32_t)n;
    }
    if (s->out_off < s->out_len) {
        s->wiov.iov_base = s->out + s->out_off;
        s->wiov.iov_len = s->out_len - s->out_off;
        rw_loop_send(s->l, &s->wop, s->fd, &s->wiov, 1);
    }
}

static int ssl_fail(tls_sess *s, int r, const char *what)
{
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 1;
    char why[160];
    s->fatal = true;
    if (!s->handshaken && s->client) {
        count(&g_stats.up_handshake_errors);
        long v = SSL_get_verify_result(s->ssl);
        uint32_t code = ERR_peek_error();
        const char *why_s = code != 0 ? ERR_reason_error_string(code) : NULL;
        ERR_clear_error();
        if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            s->fail = v != X509_V_OK ? X509_verify_cert_error_string(v) : why_s;
            return -RW_TLS_EVERIFY;
        }
        s->fail = why_s != NULL ? why_s : (e == SSL_ERROR_SYSCALL ? "EOF" : "handshake failed");
        return -RW_TLS_EHANDSHAKE;
    }
    if (!s->handshaken)
        count(&g_stats.handshake_errors);
    rw_log_debug("tls: %s failed: %s", what,
                 ssl_reason(why, sizeof(why), e == SSL_ERROR_SYSCALL ? "EOF" : "?"));
    return -EPROTO;
}

enum { DELIVERED, NEED_MORE, RETRY_LATER };

/* Records the client certificate a server handshake verified (mTLS): once
 * per connection, never per request. Out of memory leaves none. */
static void peer_cert_info(tls_sess *s)
{
    X509 *x = SSL_get_peer_certificate(s->ssl);
    if (x == NULL)
        return;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL || !X509_digest(x, EVP_sha256(), md, &mdlen) || mdlen != 32 ||
        X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) < 0 || BIO_write(b, "", 1) != 1)
        goto out;
    const uint8_t *p;
    size_t len;
    if (!BIO_mem_contents(b, &p, &len) || (s->peer_subject = strdup((const char *)p)) == NULL)
        goto out;
    (void)BIO_reset(b);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (size_t i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const char *kind = g->type == GEN_DNS     ? "DNS"
                           : g->type == GEN_EMAIL ? "email"
                           : g->type == GEN_URI   ? "URI"
                                                  : NULL;
        char ip[64];
        const char *v = NULL;
        int vlen = 0;
        if (kind != NULL) {
            v = (const char *)ASN1_STRING_get0_data(g->d.ia5);
            vlen = ASN1_STRING_length(g->d.ia5);
        } else if (g->type == GEN_IPADD) {
            int n = ASN1_STRING_length(g->d.ip);
            if (inet_ntop(n == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.ip), ip, sizeof(ip)) ==
                NULL)
                continue;
            kind = "IP";
            v = ip;
            vlen = (int)strlen(ip);
        } else {
            continue;
        }
        bool bad = false; /* a header value: no control characters */
        for (int k = 0; k < vlen && !bad; k++)
            bad = (unsigned char)v[k] < 0x20 || v[k] == 0x7f;
        if (bad)
            continue;
        BIO_printf(b, "%s%s:%.*s", BIO_pending(b) > 0 ? ", " : "", kind, vlen, v);
    }
    GENERAL_NAMES_free(gens);
    if (BIO_write(b, "", 1) != 1 || !BIO_mem_contents(b, &p, &len) ||
        (s->peer_san = strdup((const char *)p)) == NULL) {
        free(s->peer_subject);
        s->peer_subject = NULL;
        goto out;
    }
    for (size_t i = 0; i < 32; i++) {
        s->peer_fp[2 * i] = "0123456789abcdef"[md[i] >> 4];
        s->peer_fp[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    s->peer_fp[64] = '\0';
out:
    ERR_clear_error();
    BIO_free(b);
    X509_free(x);
}

/* Completes urd from what the read BIO holds (buf: a loop buffer the caller
 * may have, its ciphertext already copied out; -1 none). */
static int try_deliver(tls_sess *s, int64_t buf)
{
    if (!s->handshaken) {
        int r = SSL_do_handshake(s->ssl);
        flush_out(s);
        if (r != 1) {
            if (SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ) {
                if (buf >= 0)
                    rw_loop_buf_release(s->l, (uint32_t)buf);
                return NEED_MORE;
            }
            s->rerr = ssl_fail(s, r, "handshake");
            goto end;
        }
        s->handshaken = true;
        count(s->client ? &g_stats.up_handshakes : &g_stats.handshakes);
        if (SSL_session_reused(s->ssl))
            count(s->client ? &g_stats.up_resumed : &g_stats.resumed);
        if (!s->client) {
            peer_cert_info(s);
            count_suite(s->ssl);
        }
        if (s->hs_op) {
            if (buf >= 0)
                rw_loop_buf_release(s->l, (uint32_t)buf);
            complete_rd(s, 0);
            return DELIVERED;
        }
    }
    rw_op *op = s->urd;
    int got = 0, r = 0;
    if (op->kind == RW_OP_RECV_INTO) {
        r = SSL_read(s->ssl, op->dst, (int)op->dst_len);
        got = r > 0 ? r : 0;
    } else {
        uint32_t id;
        if (buf >= 0) {
            id = (uint32_t)buf;
        } else if (!rw_loop_buf_take(s->l, &id)) {
            return RETRY_LATER;
        }
        buf = id;
        char *p = rw_loop_buf(s->l, id);
        uint32_t cap = rw_loop_buf_size(s->l);
        while ((uint32_t)got < cap && (r = SSL_read(s->ssl, p + got, (int)(cap - (uint32_t)got))) > 0)
            got += r;
        op->buf = p;
        op->buf_id = id;
    }
    flush_out(s); /* a KeyUpdate or an alert */
    if (got > 0) {
        complete_rd(s, got);
        return DELIVERED;
    }
    if (SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ) {
        if (buf >= 0)
            rw_loop_buf_release(s->l, (uint32_t)buf);
        return NEED_MORE;
    }
    s->rerr = ssl_fail(s, r, "read");
end:
    if (buf >= 0)
        rw_loop_buf_release(s->l, (uint32_t)buf);
    complete_rd(s, s->rerr > 0 ? 0 : s->rerr);
    return DELIVERED;
}

static void arm_read(tls_sess *s)
{
    rw_loop_recv(s->l, &s->rop, s->fd);
}

static void on_rop(rw_op *op, int res)
{
    tls_sess *s = RW_CONTAINER_OF(op, tls_sess, rop);
    bool got_buf = res > 0;
    rw_loop *l = s->l;
    uint32_t id = op->buf_id;
    if (orphan_done(s)) { /* s may be gone */
        if (got_buf)
            rw_loop_buf_release(l, id);
        return;
    }
    if (s->urd->flags & RW_OPF_CANCEL) {
        if (got_buf)
            rw_loop_buf_release(s->l, op->buf_id);
        complete_rd(s, -ECANCELED);
        return;
    }
    if (res <= 0) {
        if (res == 0)
            s->rerr = 1;
        complete_rd(s, res); /* EOF (a truncation without close_notify reads the same) or the error */
        return;
    }
    if (BIO_write(s->rbio, op->buf, res) != res) {
        rw_loop_buf_release(s->l, op->buf_id);
        complete_rd(s, -ENOMEM);
        return;
    }
    int64_t buf = s->urd->kind == RW_OP_RECV ? (int64_t)op->buf_id : -1;
    if (buf < 0)
        rw_loop_buf_release(s->l, op->buf_id);
    int r = try_deliver(s, buf);
    if (r == NEED_MORE)
        arm_read(s);
    else if (r == RETRY_LATER)
        rw_loop_defer(s->l, &s->dop); /* not reached with a buffer in hand */
}

static void on_dop(rw_op *op, int res)
{
    tls_sess *s = RW_CONTAINER_OF(op, tls_sess, dop);
    if (orphan_done(s))
        return;
    if (res == -ECANCELED || (s->urd->flags & RW_OPF_CANCEL)) {
        complete_rd(s, -ECANCELED);
        return;
    }
    if (s->rerr != 0) {
        complete_rd(s, s->rerr > 0 ? 0 : s->rerr);
        return;
    }
    int r = try_deliver(s, -1);
    if (r == NEED_MORE)
        arm_read(s);
    else if (r == RETRY_LATER)
        rw_loop_defer(s->l, &s->dop); /* no free buffer this turn: the next one */
}

static void start_read(rw_loop *l, tls_sess *s, rw_op *op)
{
    (void)l;
    op->flags = RW_OPF_PENDING;
    op->gen++;
    s->urd = op;
    if (s->rerr != 0 || BIO_pending(s->rbio) > 0 || SSL_pending(s->ssl) > 0)
        rw_loop_defer(s->l, &s->dop); /* records already here (or the end): at the next turn */
    else
        arm_read(s);
}

static void tls_recv(rw_loop *l, rw_transport *t, rw_op *op)
{
    op->kind = RW_OP_RECV;
    op->buf = NULL;
    start_read(l, t->session, op);
}

static void tls_recv_into(rw_loop *l, rw_transport *t, rw_op *op, char *dst, uint32_t len)
{
    op->kind = RW_OP_RECV_INTO;
    op->dst = dst;
    op->dst_len = len;
    start_read(l, t->session, op);
}

static void complete_wr(tls_sess *s, int res)
{
    rw_op *op = s->uwr;
    s->uwr = NULL;
    user_complete(op, (op->flags & RW_OPF_CANCEL) ? -ECANCELED : res);
}

static void on_wop(rw_op *op, int res)
{
    tls_sess *s = RW_CONTAINER_OF(op, tls_sess, wop);
    if (s->orphan && res > 0 && rw_timer_armed(&s->linger) && s->out_off + (uint32_t)res < s->out_len) {
        s->out_off += (uint32_t)res; /* the rest of the alert's records */
        flush_out(s);
        return;
    }
    if (orphan_done(s))
        return;
    if (res < 0) {
        s->werr = res;
        s->out_len = s->out_off = 0;
        if (s->uwr != NULL)
            complete_wr(s, res);
        return;
    }
    s->out_off += (uint32_t)res;
    if (s->out_off < s->out_len || BIO_pending(s->wbio) > 0) {
        flush_out(s);
        return;
    }
    s->out_len = s->out_off = 0;
    if (s->fin_wanted) {
        s->fin_wanted = false;
        shutdown(s->fd, SHUT_WR);
    }
    if (s->uwr != NULL)
        complete_wr(s, s->uwr_res);
}

static void on_wdop(rw_op *op, int res)
{
    tls_sess *s = RW_CONTAINER_OF(op, tls_sess, wdop);
    (void)res;
    if (orphan_done(s))
        return;
    complete_wr(s, s->uwr_res);
}

static void tls_send(rw_loop *l, rw_transport *t, rw_op *op, struct iovec *iov, int iovcnt)
{
    tls_sess *s = t->session;
    (void)l;
    op->kind = RW_OP_SEND;
    op->flags = RW_OPF_PENDING;
    op->gen++;
    s->uwr = op;
    int done = 0;
    if (s->werr != 0) {
        s->uwr_res = s->werr;
    } else if (!s->handshaken) {
        s->uwr_res = -EPROTO;
    } else {
        size_t total = 0;
        for (int i = 0; i < iovcnt && total <= RW_TLS_GATHER; i++)
            total += iov[i].iov_len;
        char gather[RW_TLS_GATHER];
        if (iovcnt > 1 && total > 0 && total <= RW_TLS_GATHER) {
            size_t off = 0;
            for (int i = 0; i < iovcnt; i++) {
                memcpy(gather + off, iov[i].iov_base, iov[i].iov_len);
                off += iov[i].iov_len;
            }
            int r = SSL_write(s->ssl, gather, (int)total);
            if (r <= 0) {
                int e = ssl_fail(s, r, "write");
                done = e > 0 ? -EPIPE : e;
            } else {
                done = r;
            }
            iovcnt = 0; /* all written (or failed) */
        }
        for (int i = 0; i < iovcnt && (uint32_t)done < RW_TLS_SEND_MAX; i++) {
            size_t n = iov[i].iov_len;
            if (n > RW_TLS_SEND_MAX - (uint32_t)done)
                n = RW_TLS_SEND_MAX - (uint32_t)done;
            if (n == 0)
                continue;
            int r = SSL_write(s->ssl, iov[i].iov_base, (int)n);
            if (r <= 0) {
                if (done == 0) {
                    int e = ssl_fail(s, r, "write");
                    done = e > 0 ? -EPIPE : e;
                }
                break;
            }
            done += r;
            if ((size_t)r < n)
                break;
        }
        s->uwr_res = done;
        flush_out(s);
        if (s->werr != 0)
            s->uwr_res = s->werr;
    }
    if (!(s->wop.flags & RW_OPF_PENDING))
        rw_loop_defer(s->l, &s->wdop); /* nothing to send: complete at the next turn */
}

static void tls_shutdown_wr(rw_transport *t)
{
    tls_sess *s = t->session;
    if (s->handshaken && s->werr == 0) {
        SSL_shutdown(s->ssl); /* close_notify into the write BIO */
        flush_out(s);
    }
    if (s->wop.flags & RW_OPF_PENDING)
        s->fin_wanted = true;
    else
        shutdown(s->fd, SHUT_WR);
}

static void tls_cancel(rw_loop *l, rw_transport *t, rw_op *op)
{
    tls_sess *s = t->session;
    if (!(op->flags & RW_OPF_PENDING) || (op->flags & RW_OPF_CANCEL))
        return;
    op->flags |= RW_OPF_CANCEL;
    if (op == s->urd) {
        if (s->rop.flags & RW_OPF_PENDING)
            rw_loop_cancel(l, &s->rop);
        if (s->dop.flags & RW_OPF_PENDING)
            rw_loop_cancel(l, &s->dop);
    } else if (op == s->uwr) {
        if (s->wop.flags & RW_OPF_PENDING)
            rw_loop_cancel(l, &s->wop);
        if (s->wdop.flags & RW_OPF_PENDING)
            rw_loop_cancel(l, &s->wdop);
    }
}

static void on_linger(rw_timer *tm)
{
    tls_sess *s = RW_CONTAINER_OF(tm, tls_sess, linger);
    rw_loop_cancel(s->l, &s->wop); /* the client does not read: give up */
}

static void tls_close(rw_loop *l, rw_transport *t)
{
    tls_sess *s = t->session;
    s->orphan = true;
    rw_loop_cancel(l, &s->rop);
    if (s->fatal && (s->wop.flags & RW_OPF_PENDING) && s->werr == 0)
        rw_timer_set(rw_loop_timers(l), &s->linger, rw_loop_now(l) + RW_TLS_LINGER_MS);
    else
        rw_loop_cancel(l, &s->wop);
    rw_loop_cancel(l, &s->dop);
    rw_loop_cancel(l, &s->wdop);
    orphan_done(s);
}

const rw_transport_ops rw__tls_transport_ops = {
    .recv = tls_recv,
    .recv_into = tls_recv_into,
    .send = tls_send,
    .shutdown_wr = tls_shutdown_wr,
    .close = tls_close,
    .cancel = tls_cancel,
};

/* A session on fd, with its BIOs and ops; NULL when out of memory. */
static tls_sess *sess_new(SSL_CTX *ctx, rw_loop *l, int fd)
{
    tls_sess *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->ssl = SSL_new(ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_mem_eof_return(s->rbio, -1); /* empty means "more to come", not EOF */
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    s->l = l;
    s->fd = fd;
    s->rop.cb = on_rop;
    s->wop.cb = on_wop;
    s->dop.cb = on_dop;
    s->wdop.cb = on_wdop;
    rw_timer_init(&s->linger, on_linger);
    s->rop.data = s->wop.data = s->dop.data = s->wdop.data = s;
    return s;
}

int rw_tls_accept(rw_tls_server *srv, rw_loop *l, rw_transport *t, int fd)
{
    tls_sess *s = sess_new(srv->ctx, l, fd);
    if (s == NULL)
        return -1;
    SSL_set_accept_state(s->ssl);
    t->fd = fd;
    t->kind = RW_TRANSPORT_TLS;
    t->session = s;
    return 0;
}

size_t rw_tls_describe(const rw_transport *t, char *buf, size_t cap)
{
    if (t->kind != RW_TRANSPORT_TLS || t->session == NULL || cap == 0)
        return 0;
    const tls_sess *s = t->session;
    const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
    if (!s->handshaken || c == NULL)
        return 0;
    int n = snprintf(buf, cap, "%s %s", SSL_get_version(s->ssl), SSL_CIPHER_standard_name(c));
    return n < 0 ? 0 : ((size_t)n >= cap ? cap - 1 : (size_t)n);
}

bool rw_tls_peer_cert(const rw_transport *t, rw_str *subject, rw_str *san, rw_str *sha256)
{
    const tls_sess *s = t->kind == RW_TRANSPORT_TLS ? t->session : NULL;
    if (s == NULL || s->peer_subject == NULL)
        return false;
    *subject = (rw_str){s->peer_subject, strlen(s->peer_subject)};
    *san = (rw_str){s->peer_san, strlen(s->peer_san)};
    *sha256 = (rw_str){s->peer_fp, 64};
    return true;
}

bool rw_tls_resumed(const rw_transport *t)
{
    const tls_sess *s = t->kind == RW_TRANSPORT_TLS ? t->session : NULL;
    return s != NULL && s->handshaken && SSL_session_reused(s->ssl);
}

/* ---- client side: upstream TLS ---- */

struct rw_tls_client {
    SSL_CTX *ctx; /* our reference; sessions hold theirs */
};

/* Keeps the newest resumable session of a client connection (TLS 1.3 sends
 * tickets after the handshake, so SSL_get1_session is not enough). */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    tls_sess *s = SSL_get_ex_data(ssl, g_sess_index);
    if (s == NULL || !SSL_SESSION_is_resumable(sess))
        return 0;
    SSL_SESSION_free(s->fresh);
    s->fresh = sess;
    return 1; /* we own the reference */
}

static const uint8_t k_alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

rw_tls_client *rw_tls_client_new(const rw_tls_client_opts *o, char *err, size_t errlen)
{
    char why[160];
    pthread_once(&g_once, tls_init_once);
    rw_tls_client *c = calloc(1, sizeof(*c));
    SSL_CTX *ctx = c != NULL ? SSL_CTX_new(TLS_method()) : NULL;
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->ctx = ctx;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        SSL_CTX_set_alpn_protos(ctx, k_alpn_http11, sizeof(k_alpn_http11)) != 0) {
        snprintf(err, errlen, "cannot configure TLS: %s", ssl_reason(why, sizeof(why), "?"));
        goto fail;
    }
    const char *ca = o->ca_file != NULL ? o->ca_file : RW_TLS_SYSTEM_CA;
    if ((o->verify || o->ca_file != NULL) && !SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
        snprintf(err, errlen, "ca_file %s: %s", ca, ssl_reason(why, sizeof(why), "cannot be loaded"));
        goto fail;
    }
    if (o->cert_file != NULL) {
        if (!SSL_CTX_use_certificate_chain_file(ctx, o->cert_file)) {
            snprintf(err, errlen, "cert_file %s: %s", o->cert_file,
                     ssl_reason(why, sizeof(why), "cannot be loaded"));
            goto fail;
        }
        if (o->key_file == NULL || !SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) ||
            !SSL_CTX_check_private_key(ctx)) {
            snprintf(err, errlen, "key_file %s: %s", o->key_file != NULL ? o->key_file : "(none)",
                     ssl_reason(why, sizeof(why), "missing, unreadable or not the key of cert_file"));
            goto fail;
        }
    }
    SSL_CTX_set_verify(ctx, o->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    return c;
fail:
    ERR_clear_error();
    rw_tls_client_free(c);
    return NULL;
}

void rw_tls_client_free(rw_tls_client *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ctx);
    free(c);
}

static bool ip_literal(const char *h)
{
    uint8_t a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

int rw_tls_connect(rw_tls_client *c, rw_loop *l, rw_transport *t, int fd, const char *sni, const char *host,
                   void *resume)
{
    const char *check = sni != NULL ? sni : host;
    if (sni == NULL && host != NULL && !ip_literal(host))
        sni = host;
    tls_sess *s = sess_new(c->ctx, l, fd);
    if (s == NULL)
        return -1;
    s->client = true;
    SSL_set_connect_state(s->ssl);
    bool ok = SSL_set_ex_data(s->ssl, g_sess_index, s);
    if (ok && sni != NULL)
        ok = SSL_set_tlsext_host_name(s->ssl, sni);
    if (ok && check != NULL && SSL_get_verify_mode(s->ssl) != SSL_VERIFY_NONE) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(s->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = ip_literal(check) ? X509_VERIFY_PARAM_set1_ip_asc(vp, check)
                               : X509_VERIFY_PARAM_set1_host(vp, check, strlen(check));
    }
    if (ok && resume != NULL)
        ok = SSL_set_session(s->ssl, resume);
    if (!ok) {
        SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return -1;
    }
    t->fd = fd;
    t->kind = RW_TRANSPORT_TLS;
    t->session = s;
    return 0;
}

void rw_tls_handshake(rw_loop *l, rw_transport *t, rw_op *op)
{
    tls_sess *s = t->session;
    (void)l;
    op->kind = RW_OP_RECV;
    op->buf = NULL;
    op->flags = RW_OPF_PENDING;
    op->gen++;
    s->urd = op;
    s->hs_op = true;
    int r = SSL_do_handshake(s->ssl); /* the ClientHello into the write BIO */
    flush_out(s);
    if (r != 1 && SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ)
        s->rerr = ssl_fail(s, r, "handshake");
    if (s->rerr != 0 || s->werr != 0) {
        if (s->rerr == 0)
            s->rerr = s->werr;
        rw_loop_defer(s->l, &s->dop); /* completes with the error at the next turn */
    } else {
        arm_read(s);
    }
}

void rw_tls_session_take(rw_transport *t, void **slot)
{
    tls_sess *s = t->kind == RW_TRANSPORT_TLS ? t->session : NULL;
    if (s == NULL || s->fresh == NULL)
        return;
    SSL_SESSION_free(*slot);
    *slot = s->fresh;
    s->fresh = NULL;
}

void rw_tls_session_free(void *sess)
{
    SSL_SESSION_free(sess);
}

const char *rw_tls_failure(const rw_transport *t)
{
    const tls_sess *s = t->kind == RW_TRANSPORT_TLS ? t->session : NULL;
    return s != NULL && s->fail != NULL ? s->fail : "";
}
