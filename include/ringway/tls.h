/* tls.h - TLS termination: server contexts built from a listener's tls:
 * settings, and the RW_TRANSPORT_TLS kind of the transport seam (records
 * through BoringSSL with memory BIOs, ciphertext moved by the worker's loop).
 *
 * Ownership: a config owns its listeners' rw_tls_server (rw_tls_server_free
 * drops that reference; connections keep their own, so a server outlives the
 * config while its connections last). A TLS transport owns its session, freed
 * by rw_tr_close. BoringSSL types stay out of this header. */
#ifndef RINGWAY_TLS_H
#define RINGWAY_TLS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringway/loop.h"
#include "ringway/transport.h"

typedef struct rw_tls_server rw_tls_server;

/* One certificate of a listener: a PEM chain (leaf first) and its key. */
typedef struct rw_tls_cert_files {
    const char *cert_file;
    const char *key_file;
} rw_tls_cert_files;

/* What a server context is built from. */
typedef struct rw_tls_server_opts {
    const rw_tls_cert_files *certs; /* the first is the default (no or unknown SNI) */
    size_t ncerts;
    bool min_tls13;              /* refuse TLS 1.2 */
    bool tickets;                /* session tickets (stateless resumption) */
    uint32_t ticket_rotate_s;    /* ticket key lifetime: current + previous accepted */
    const char *ticket_key_file; /* a secret shared by a fleet (>= 32 bytes), or NULL: one per process */
    const char *name;            /* for log lines: the listener's address */
    const char *client_ca_file;  /* mTLS: CAs that verify client certificates (NULL: none asked) */
    int client_verify;           /* enum rw_tls_client_verify */
} rw_tls_server_opts;

/* listen[].tls.client_verify */
enum rw_tls_client_verify { RW_TLS_CV_OFF = 0, RW_TLS_CV_OPTIONAL, RW_TLS_CV_REQUIRED };

/* Loads the certificates and builds a server context; NULL with the reason
 * (naming the file) in err. Refuses a key that does not match its
 * certificate, an expired certificate and keys other than ECDSA and RSA. */
rw_tls_server *rw_tls_server_new(const rw_tls_server_opts *o, char *err, size_t errlen);
/* Drops the caller's reference. NULL is allowed. */
void rw_tls_server_free(rw_tls_server *s);
/* Re-reads s's certificate files; on success new handshakes use them, on
 * failure the old ones stay and err says why. Control thread. Returns 0 or -1. */
int rw_tls_server_reload_certs(rw_tls_server *s, char *err, size_t errlen);
/* Reloads s's certificates when their files changed since the last load or
 * try (stat of each file, following symlinks): 0 unchanged, 1 reloaded, -1
 * the new files are refused (err says why; the old certificates stay).
 * Control thread. */
int rw_tls_server_poll_files(rw_tls_server *s, char *err, size_t errlen);
/* The listener address s was built for (for log lines). */
const char *rw_tls_server_name(const rw_tls_server *s);
/* The directories of s's certificate and key files (for a file watch):
 * calls fn once per distinct directory. */
void rw_tls_server_dirs(const rw_tls_server *s, void (*fn)(const char *dir, void *arg), void *arg);

/* Makes t a server-side TLS transport on accepted socket fd, driven by loop
 * l; the handshake runs inside the first receive. Returns 0, or -1 when out
 * of memory (t untouched: the caller still owns fd). */
int rw_tls_accept(rw_tls_server *s, rw_loop *l, rw_transport *t, int fd);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256" into buf for a TLS transport whose
 * handshake is done; returns the length (0: none). */
size_t rw_tls_describe(const rw_transport *t, char *buf, size_t cap);
/* The client's verified certificate on a server transport (mTLS): its
 * subject (RFC 2253), its SANs ("DNS:a, IP:1.2.3.4, ...") and its SHA-256
 * fingerprint (64 lower-case hex digits), computed once at the handshake and
 * valid while t is open. False (outputs untouched) when there is none. */
bool rw_tls_peer_cert(const rw_transport *t, rw_str *subject, rw_str *san, rw_str *sha256);
/* Whether t resumed a session (handshake done). */
bool rw_tls_resumed(const rw_transport *t);

/* ---- client side (upstream TLS) ----
 *
 * A client context is one per service per config (owned by the config,
 * rw_tls_client_free; sessions keep a reference to it, so it outlives the
 * config while its connections last). */
typedef struct rw_tls_client rw_tls_client;

typedef struct rw_tls_client_opts {
    const char *ca_file;   /* the trust store (PEM); NULL: the system bundle */
    const char *cert_file; /* a client certificate for upstream mTLS (NULL: none) */
    const char *key_file;  /* its key (with cert_file) */
    bool verify;           /* check the chain and the host name */
    const char *name;      /* for log lines: the service's name */
} rw_tls_client_opts;

/* The system trust store loaded when ca_file is not given (Debian's bundle;
 * BoringSSL's own default path is not used). */
#define RW_TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

/* Builds a client context; NULL with the reason (naming the file) in err. */
rw_tls_client *rw_tls_client_new(const rw_tls_client_opts *o, char *err, size_t errlen);
/* Drops the caller's reference. NULL is allowed. */
void rw_tls_client_free(rw_tls_client *c);

/* The errors a client handshake completes with (negative in the op). */
#define RW_TLS_EVERIFY EKEYREJECTED /* the peer's certificate was refused (chain or name) */
#define RW_TLS_EHANDSHAKE EPROTO    /* any other handshake failure */

/* Makes t a client-side TLS transport on connected socket fd. sni: the
 * configured server name (NULL: host when it is a name, none for an IP
 * literal); the certificate must match sni, else host (a name or an IP
 * literal), when the context verifies. resume: a cached session
 * (rw_tls_session_take) offered for resumption (NULL: none; not consumed).
 * Returns 0, or -1 when out of memory (t untouched). */
int rw_tls_connect(rw_tls_client *c, rw_loop *l, rw_transport *t, int fd, const char *sni, const char *host,
                   void *resume);
/* Runs a client transport's handshake: op completes with 0 once it is done,
 * or a negative errno (-RW_TLS_EVERIFY, -RW_TLS_EHANDSHAKE, a socket error,
 * -ECONNRESET for an EOF, -ECANCELED). Cancel it with rw_tr_cancel. */
void rw_tls_handshake(rw_loop *l, rw_transport *t, rw_op *op);
/* Moves the newest resumable session t received (if any) into *slot,
 * freeing the one there. Loop thread; slot belongs to that thread. */
void rw_tls_session_take(rw_transport *t, void **slot);
/* Frees a session from rw_tls_session_take. NULL is allowed. */
void rw_tls_session_free(void *sess);
/* Why t's last handshake failed, for log lines ("" when it did not). */
const char *rw_tls_failure(const rw_transport *t);

/* Process-wide counters (relaxed atomics). */
#define RW_TLS_NSUITES 9 /* the suites a listener negotiates (TLS 1.3: 3, TLS 1.2: 6) */
/* Writes ringway_tls_connections_total{version,cipher} (client handshakes
 * completed, by suite) at buf; returns the length (at most cap). Any thread. */
size_t rw_tls_suite_metrics(char *buf, size_t cap);

typedef struct rw_tls_stats {
    uint64_t handshakes;          /* completed */
    uint64_t resumed;             /* of which resumptions */
    uint64_t handshake_errors;    /* failed (protocol errors, refused versions/ciphers) */
    uint64_t cert_reloads;        /* certificate sets replaced from the files */
    uint64_t cert_reload_errors;  /* replacements refused (the old certificates stay) */
    uint64_t up_handshakes;       /* upstream (client side) handshakes completed */
    uint64_t up_resumed;          /* of which resumptions */
    uint64_t up_handshake_errors; /* upstream handshakes failed (verification included) */
} rw_tls_stats;
/* Reads the counters. */
void rw_tls_stats_get(rw_tls_stats *out);

#endif
