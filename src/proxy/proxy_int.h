/* proxy_int.h - private to src/proxy: the proxy's per-worker state and its
 * connection objects (client connections, exchanges, upstream connections,
 * input buffers). Everything here belongs to exactly one worker thread. */
#ifndef RINGWAY_PROXY_INT_H
#define RINGWAY_PROXY_INT_H

#include <netinet/in.h>
#include <time.h>
#include <sys/socket.h>

#include "ringway/filters.h"
#include "ringway/instset.h"
#include "ringway/lb.h"
#include "ringway/proxy.h"
#include "ringway/timer.h"
#include "ringway/transport.h"
#include "ringway/worker.h"

typedef struct rw_conn rw_conn;
typedef struct rw_exchange rw_exchange;
typedef struct rw_upconn rw_upconn;
typedef struct rw_pworker rw_pworker;
typedef struct rw_upreq rw_upreq;

/* A head buffer: used only when a message head does not arrive in one read. */
typedef struct rw_hbuf {
    struct rw_hbuf *next; /* free list link */
    uint32_t cap;
    char data[];
} rw_hbuf;

/* Bytes received and not yet consumed, held in a loop buffer or a head buffer. */
typedef struct rw_input {
    char *data;
    uint32_t len;   /* valid bytes from data */
    uint32_t off;   /* consumed bytes */
    int32_t buf_id; /* loop buffer id, -1 when none */
    rw_hbuf *hb;    /* head buffer, NULL when none */
} rw_input;

/* One instance's connection pool inside one worker. */
typedef struct rw_upool {
    rw_upconn *idle; /* most recently used first */
    uint32_t nidle;
    uint32_t nconns;                 /* open (connecting, busy or idle), against max_conns */
    rw_upreq *wait_head, *wait_tail; /* requests waiting for a connection slot */
    void *tls_sess;                  /* TLS services: a session for resumption (owned, rw_tls_session_free) */
} rw_upool;

typedef struct rw_svc_state {
    rw_lb lb;
    rw_upool *pools;   /* one per instance */
    uint32_t *active;  /* requests in flight per instance (least_conn, p2c) */
    uint8_t *excluded; /* scratch for rw_lb_pick, all zero between picks */
    /* This worker's copy of which instances are out of rotation (unhealthy
     * or ejected), re-read from the node-wide state (upstate.h) only when
     * its version moves or a known ejection ends (recheck_at). */
    uint8_t *down;
    uint32_t ndown;
    uint32_t requests; /* exchanges on this service now (the retry budget's base) */
    uint32_t retrying; /* of those, the ones in a retry */
    uint32_t seen_version;
    uint64_t recheck_at;
} rw_svc_state;

/* A worker's view of one snapshot: LB state and upstream pools. */
typedef struct rw_wstate {
    rw_snapshot *snap;
    rw_svc_state *svcs;     /* one per service */
    uint32_t users;         /* exchanges and upstream conns using this state */
    struct rw_wstate *next; /* retiring list */
} rw_wstate;

/* A worker's proxy state (the rw_worker_handler state of rw_proxy_handler):
 * everything here belongs to that worker's thread. */
struct rw_pworker {
    rw_worker *core;
    rw_loop *loop;
    rw_worker_stats *stats; /* the worker's counters */
    rw_server *server;
    int id;
    bool draining;           /* close_idle was called */
    uint32_t drain_grace_ms; /* ... with this grace for idle connections (0: closed at once) */
    rw_wstate *ws;           /* current */
    rw_wstate *retiring;     /* older states with users left */
    uint32_t nconns;         /* client connections */
    uint32_t nupconns;       /* upstream connections */
    uint64_t reqid_seed;
    uint64_t reqid_counter;
    uint64_t rng; /* splitmix64 state: trace and span ids */
    rw_conn *free_conns;
    struct rw_conn_slab *conn_slabs; /* every conn's memory, freed with the worker */
    rw_exchange *free_exchanges;
    rw_hbuf *free_hbufs;
    uint32_t hbuf_cap;
    rw_conn *conns;              /* all live client connections (for drain) */
    struct rw_filter_worker *fw; /* access filters' state: rate-limit shard, token cache */
    rw_filter_result fres;       /* the last request's filter outcome (read while building its head) */
    struct rw_alog_ring *alog;   /* the access log's ring of this worker (NULL: none) */
    time_t alog_sec;             /* the second alog_stamp shows */
    char alog_stamp[24];         /* "YYYY-MM-DDTHH:MM:SS" of alog_sec, UTC */
};

/* Why ringway answered a request itself, when the status alone does not say. */
enum rw_ex_error {
    RW_EXERR_NONE = 0,
    RW_EXERR_CONNECT_REFUSED,
    RW_EXERR_CONNECT_FAILED,
    RW_EXERR_CONNECT_TIMEOUT,
    RW_EXERR_FIRST_BYTE_TIMEOUT,
    RW_EXERR_TOTAL_TIMEOUT,
    RW_EXERR_QUEUE_TIMEOUT,
    RW_EXERR_UPSTREAM_RESET,
    RW_EXERR_INVALID_RESPONSE,
    RW_EXERR_OVERLOADED,
    RW_EXERR_NO_INSTANCE,
    RW_EXERR_CLIENT_CLOSED,
    RW_EXERR_TLS_VERIFY,    /* the upstream's certificate was refused (chain or name) */
    RW_EXERR_TLS_HANDSHAKE, /* the upstream TLS handshake failed otherwise */
    RW_EXERR__COUNT
};

enum rw_conn_state {
    RW_C_IDLE = 0, /* keep-alive, waiting for a request */
    RW_C_HEAD,     /* reading a request head */
    RW_C_BUSY,     /* an exchange runs */
    RW_C_LINGER,   /* final response sent, draining input before close */
    RW_C_CLOSING,
};

/* A client connection: owned by its worker, on w->conns while open and on
 * w->free_conns after (its memory is one slot of a worker's conn slab). Kept
 * small, since every idle keep-alive connection costs one: fields are ordered
 * so that there are no padding holes. */
struct rw_conn {
    rw_pworker *w;
    rw_transport tr; /* the socket and what travels on it */
    uint8_t state;
    uint8_t pending;  /* ops in flight */
    bool close_after; /* close once the current response is sent */
    uint8_t sending;  /* what the pending client write carries (SENT_*) */
    rw_op rd, wr;
    rw_timer timer;
    rw_input in;
    rw_input held; /* an upstream's input a pending client send still reads */
    rw_exchange *ex;
    struct iovec iov[3]; /* sends of canned and error responses (rw__c_send takes at most 3) */
    int iovcnt;
    uint32_t requests;
    rw_conn *next, *prev; /* worker's live list / free list */
    uint8_t peer_len;
    char peer[INET6_ADDRSTRLEN]; /* numeric client address, for X-Forwarded-For and hashing */
};

/* Client connections are carved from slabs of RW_CONN_SLAB (one malloc
 * header per slab instead of one per connection); a slab is never freed
 * before its worker is (rw_server_free). */
#define RW_CONN_SLAB 64
typedef struct rw_conn_slab {
    struct rw_conn_slab *next;
    rw_conn conns[RW_CONN_SLAB];
} rw_conn_slab;

/* How an upstream attempt failed, for the retry decision. */
enum rw_upfail {
    RW_UPFAIL_CONNECT = 1, /* no connection: nothing was sent */
    RW_UPFAIL_STALE,       /* a reused connection failed before any response byte */
    RW_UPFAIL_OTHER,       /* anything else: never retried */
};

/* The upstream client's owner interface (the way h2o's HTTP client calls its
 * owner back): upstream.c knows a request only as an rw_upreq and reports
 * everything through these callbacks; the proxy's exchange embeds the
 * rw_upreq and implements them. */
typedef struct rw_upowner {
    /* A connection is the request's (r->up): send the request. */
    void (*ready)(rw_upreq *r);
    /* The last rw__upconn_send completed (res: bytes, or 0 for an empty send). */
    void (*sent)(rw_upreq *r, int res);
    /* Response bytes arrived in r->up->in (res > 0), or EOF (0) or an error (< 0). */
    void (*data)(rw_upreq *r, int res);
    /* The attempt failed (r->up is already gone); how: enum rw_upfail. */
    void (*failed)(rw_upreq *r, int err, bool timeout, int how);
    /* The request waited timeouts.queue for a connection slot. */
    void (*queue_timeout)(rw_upreq *r);
    /* The connection's timer fired while it served r: true when the owner
     * dealt with it (an idle tunnel), false to fail the attempt as a timeout. */
    bool (*timer)(rw_upreq *r);
    /* r's connection is closing while a send of the owner's may still read
     * its input: the owner may move the buffers out of in. */
    void (*closing)(rw_upreq *r, rw_input *in);
} rw_upowner;

/* A request as the upstream client sees it: which instance, its pool, its
 * place in the pool's wait queue. Embedded by its owner. */
/* Instance i of service svc in ws's snapshot. */
#define RW_INST(ws, svc, i) (&(ws)->snap->insts[(svc)]->v[(i)])

struct rw_upreq {
    const rw_upowner *owner;
    rw_pworker *w;
    rw_wstate *ws; /* the snapshot state it routed with (counted in ws->users) */
    const rw_service_cfg *svc_cfg;
    int svc, inst;
    rw_upconn *up;           /* the connection serving it, or NULL */
    bool want_fresh;         /* retrying: do not take a pooled connection */
    bool counted;            /* holds one svcs[svc].active[inst] */
    bool queued;             /* waiting in the pool's queue */
    rw_upreq *qnext, *qprev; /* the pool's wait queue */
    rw_timer queue_timer;    /* waiting for a connection slot (timeouts.queue) */
};

enum rw_up_state {
    RW_U_CONNECTING = 0,
    RW_U_ACTIVE,
    RW_U_IDLE,
    RW_U_CLOSING,
};

struct rw_upconn {
    rw_pworker *w;
    rw_wstate *ws;
    int svc, inst;
    rw_transport tr; /* the socket and what travels on it (fd -1: none) */
    uint8_t state;
    uint8_t pending;
    bool reused;    /* served a request before this one */
    bool got_bytes; /* response bytes arrived for the current request */
    rw_op rd, wr;
    rw_timer timer;
    rw_input in;
    rw_input held;       /* a client's input a pending upstream send still reads */
    rw_upreq *req;       /* the request it serves, or NULL */
    struct iovec iov[3]; /* rw__upconn_send takes at most 3: head, body, end of a chunked body */
    int iovcnt;
    rw_upconn *next, *prev; /* idle list */
};

struct rw_exchange {
    rw_conn *c;
    rw_upreq ur; /* its upstream side (svc, inst, connection, queue) */
    int route;
    const rw_route_cfg *rt;
    rw_str hsts;   /* the route's Strict-Transport-Security line on a TLS connection, else empty */
    uint8_t tries; /* attempts made (the keep-alive race's retry not counted) */
    uint16_t tried[RW_MAX_ATTEMPTS]; /* instances tried, to avoid on retry */
    bool stale_retried;              /* the keep-alive race was retried once */
    bool retrying;                   /* counted in the service's retries in flight (the budget) */
    bool counted_svc;                /* counted in the service's requests (the budget's base) */
    rw_timer retry_timer;            /* retries.backoff */
    uint64_t hash;                   /* load-balancing key, computed while the head is readable */
    int err_status;                  /* an error to send once the pending 100-continue is out */
    const char *err_msg;
    char errbuf[1024]; /* ringway's own error responses (ex->out may be in flight upstream) */
    char rl_hdrs[112]; /* RateLimit-* lines for the response (filters with headers: true) */
    uint8_t rl_len;
    uint32_t host_off, host_len; /* the Host value inside out, patched on retry */
    int method;
    int minor;
    bool keep_alive; /* client connection persists after this exchange */
    bool expect_continue;
    bool head_sent_up;   /* request head fully written upstream */
    bool req_done;       /* request body fully forwarded */
    bool req_abandoned;  /* response finished first: stop forwarding the body */
    bool resp_head_done; /* response head parsed */
    bool resp_head_sent; /* started answering the client */
    bool resp_done;      /* response body fully received from upstream */
    bool upgrade;        /* the client asked for a protocol upgrade */
    bool tunnel;         /* 101 relayed: bytes flow both ways until a close */
    bool c_eof, u_eof;   /* tunnel half-closes seen */
    bool dechunk;        /* HTTP/1.0 client, chunked response: send the data only */
    int req_body;
    uint64_t req_left; /* RW_BODY_LENGTH: bytes still to forward */
    uint64_t req_total;
    uint32_t req_inflight;  /* client input bytes being sent upstream */
    uint32_t resp_inflight; /* upstream input bytes being sent to the client */
    /* The send in flight owns the whole buffer it reads (moved to up->held /
     * c->held), so the source reads ahead into a fresh one meanwhile. */
    bool req_held, resp_held;
    rw_chunked req_chunk;
    int resp_body;
    uint64_t resp_left;
    rw_chunked resp_chunk;
    int status;
    uint64_t start_ms;
    rw_timer total_timer;
    char reqid[RW_REQID_MAX + 1]; /* the request id (a sane client one, or minted) */
    uint8_t reqid_len;
    uint8_t tp_len;    /* 0, or RW_TRACEPARENT_LEN: traceparent sent upstream (trace_context) */
    bool tp_restarted; /* the client's traceparent was missing or invalid: tracestate dropped */
    int16_t tp_hdr;    /* index of the client's traceparent header, -1: none */
    char tp[RW_TRACEPARENT_LEN];
    /* The access log (access.c): the request's part, escaped at the start;
     * what the end adds. */
    uint16_t alog_len;
    uint8_t err_kind;  /* enum rw_ex_error: why ringway answered itself */
    uint8_t ratelimit; /* enum rw_rl_seen */
    uint8_t auth_fail; /* enum rw_auth_fail: why the access filters refused */
    bool local;        /* ringway made the answer (an error, a respond route, /health) */
    int16_t consumer;  /* index into cfg->consumers, -1: none */
    int32_t t_connect,
        t_first_byte; /* ms from the start to a connected upstream / its response head; -1: never */
    uint32_t head_len;
    uint64_t bytes_out; /* sent to the client */
    uint32_t out_len;
    uint32_t out_cap;
    char *out;           /* head buffer for the rewritten request / response head */
    rw_http_request req; /* parsed request; slices point into c->in */
    rw_http_response resp;
    rw_exchange *next;   /* free list */
    char alog_req[2048]; /* not cleared per exchange: alog_len says what is valid */
};

/* conn.c: takes over an accepted client connection (already counted). */
void rw__conn_accepted(rw_pworker *w, int fd, size_t listener);
void rw__worker_close_idle(rw_pworker *w, uint32_t grace_ms);
void rw__worker_close_all(rw_pworker *w);
/* upstream.c: pools, connections and the wait queue, for rw_upreq owners */
int rw__wstate_new(rw_pworker *w, rw_snapshot *snap, rw_wstate **out);
void rw__wstate_put(rw_pworker *w, rw_wstate *ws);
void rw__wstate_close_idle(rw_pworker *w, rw_wstate *ws);
/* Moves old's idle connections to the current state where it still has
 * their instances (rw__upconn_release does the same for busy ones as they
 * finish); closes the others. */
void rw__wstate_move_idle(rw_pworker *w, rw_wstate *old);
/* Gets a pooled or new connection to instance r->inst for r, or queues r
 * for one (max_conns); r->owner->ready is called once it has one. */
void rw__upconn_acquire(rw_upreq *r);
/* r is done with its connection: back to the pool (or to the first waiter)
 * when reusable, else closed. */
void rw__upconn_release(rw_upconn *u, bool reusable);
void rw__upconn_send(rw_upconn *u, struct iovec *iov, int iovcnt);
void rw__upconn_recv(rw_upconn *u);
void rw__upconn_timeout(rw_upconn *u, uint32_t ms);
void rw__upconn_close(rw_upconn *u);
/* Takes r off its pool's wait queue (if it is on it). */
void rw__upconn_dequeue(rw_upreq *r);
/* Moves unconsumed input into a head buffer so more can be appended; -1 on ENOMEM. */
int rw__input_to_hbuf(rw_pworker *w, rw_input *in);
/* Marks n input bytes consumed; releases the buffers once all are. */
void rw__input_consume(rw_pworker *w, rw_input *in, uint32_t n);
/* Arms a receive that appends to in (head buffer) or fills a fresh loop buffer. */
void rw__input_recv(rw_loop *l, rw_op *op, rw_transport *t, rw_input *in);
/* Takes a receive completion's bytes into in. */
void rw__input_take(rw_input *in, rw_op *op, int res);
/* Moves all of *from (buffers included) into *to, which must be empty; *from
 * is left empty. */
void rw__input_move(rw_input *to, rw_input *from);
/* ---- small helpers shared by conn.c, exchange.c and tunnel.c ---- */

/* 64 random-looking bits for ids (splitmix64; not for secrets). */
static inline uint64_t pw_rand(rw_pworker *w)
{
    w->rng += 0x9E3779B97F4A7C15ull;
    return rw_mix64(w->rng);
}

static inline rw_timers *timers(rw_pworker *w)
{
    return rw_loop_timers(w->loop);
}

static inline uint64_t now_ms(rw_pworker *w)
{
    return rw_loop_now(w->loop);
}

static inline const rw_config *cfg_of(rw_pworker *w)
{
    return w->ws->snap->cfg;
}

/* The request id's header name, or an empty slice when ids are off. */
static inline rw_str reqid_header(rw_pworker *w)
{
    const rw_request_id_cfg *rc = &cfg_of(w)->request_id;
    return rc->enabled ? (rw_str){rc->header, rc->header_len} : (rw_str){NULL, 0};
}

static inline void count_status(rw_pworker *w, int status)
{
    int cls = status / 100;
    w->stats->responses[(cls >= 1 && cls <= 5) ? cls : 0]++;
}

static const char hexdig[] = "0123456789abcdef";

/* conn.c */
enum { SENT_FINAL = 1, SENT_CONTINUE, SENT_RESPONSE, SENT_TUNNEL_HEAD }; /* what c->sending carries */
void rw__c_close(rw_conn *c);
/* Arms a read of the next request head (or more body bytes) into c->in. */
void rw__c_read_head(rw_conn *c);
/* Sends iov (at most 3 non-empty entries) to the client; c->sending says what for. */
void rw__c_send(rw_conn *c, struct iovec *iov, int iovcnt);
/* Sets the connection's one timer (0 cancels it). */
void rw__c_timer(rw_conn *c, uint32_t ms);
/* The response to the current request has been written. */
void rw__c_request_done(rw_conn *c);
/* The persistence of the response to ex (rw_http_persist); marks the
 * connection to close when it says so. */
int rw__ex_persist(rw_exchange *ex);
/* Answers with a prebuilt response (its persistence variant). */
void rw__send_canned(rw_exchange *ex, const rw_canned *cn);
/* Answers with ringway's own JSON error; extra header lines (each with its CRLF) may be added. */
void rw__ex_send_error(rw_exchange *ex, int status, const char *msg);
void rw__ex_send_error_x(rw_exchange *ex, int status, const char *msg, const char *extra, size_t extra_len);
/* route.https_redirect on a plain listener: 308 to https://host[:port]target
 * (port omitted when 443). host is the request's Host without its port. */
void rw__ex_send_https_redirect(rw_exchange *ex, rw_str host, uint16_t port);
/* access.c */
/* Counts ex into this worker's slots of its route and service (rstats.h). */
void rw__stats_count(rw_exchange *ex);
/* Whether the access log writes lines now (its ring exists, the config's path is not "off"). */
bool rw__alog_on(const rw_pworker *w);
/* Escapes the request's part of ex's line while its head is readable. */
void rw__alog_begin(rw_exchange *ex);
/* Writes ex's line into the worker's ring (sampling and errors_only applied). */
void rw__alog_end(rw_exchange *ex);
/* pick.c */
enum { RW_PICK_NONE = 0, RW_PICK_OK = 1, RW_PICK_OVERFLOW = 2, RW_PICK_EMPTY = 3 };
/* Picks ex's next instance into ex->ur.inst (and records it as tried):
 * RW_PICK_OK, RW_PICK_NONE, RW_PICK_OVERFLOW (all at max_requests) or
 * RW_PICK_EMPTY (the service has no instance). */
int rw__ex_pick(rw_exchange *ex);
/* Tells outlier detection how the attempt on ex's instance ended
 * (RW_FAILON_* kind, 0: a success). */
void rw__ex_outcome(rw_exchange *ex, uint32_t kind);
/* Whether an attempt that failed this way (RW_FAILON_*) may be made again. */
bool rw__ex_may_retry(rw_exchange *ex, uint32_t kind);
/* GET, HEAD, PUT, DELETE, OPTIONS, TRACE. */
bool rw__idempotent(int method);
/* exchange.c */
rw_exchange *rw__ex_get(rw_conn *c);
void rw__ex_put(rw_exchange *ex);
/* Picks or mints the request id (parsed: the head may be read). */
void rw__make_reqid(rw_exchange *ex, bool parsed);
/* A request head of head_len bytes is parsed in ex->req: route and start it. */
void rw__ex_start(rw_conn *c, rw_exchange *ex, size_t head_len);
/* More request body bytes are in c->in. */
void rw__ex_client_body(rw_exchange *ex);
/* Starts answering once the response head is parsed and our head is out. */
void rw__ex_try_forward_head(rw_exchange *ex);
/* Sends what the upstream input holds of the response (the previous send is done). */
void rw__ex_forward_response(rw_exchange *ex);
/* tunnel.c */
void rw__tunnel_start(rw_exchange *ex);
void rw__tunnel_c2u(rw_exchange *ex);
void rw__tunnel_u2c(rw_exchange *ex);
void rw__tunnel_close_if_done(rw_exchange *ex);
/* buffers */
rw_hbuf *rw__hbuf_get(rw_pworker *w);
void rw__hbuf_put(rw_pworker *w, rw_hbuf *hb);
void rw__input_release(rw_pworker *w, rw_input *in);

#endif
