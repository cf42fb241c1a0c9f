/* admin_int.h - private: the admin listener, driven by the control thread's
 * poll loop, and the reload it shares with SIGHUP. */
#ifndef RINGWAY_ADMIN_INT_H
#define RINGWAY_ADMIN_INT_H

#include <poll.h>
#include <stdint.h>
#include <time.h>

#include "ringway/control.h"

#define RW_ADMIN_MAX_CONNS 64
#define RW_ADMIN_IN_CAP 8192

/* What the process is doing, as /status and /ready tell it. */
enum rw_admin_state {
    RW_ADMIN_RUNNING = 0,
    RW_ADMIN_SHUTTING, /* SIGTERM seen, --shutdown-delay running: /ready 503, still serving */
    RW_ADMIN_DRAINING, /* listeners closed, in-flight requests finishing */
};

/* One admin client connection. */
typedef struct rw_admin_conn {
    int fd;           /* -1: slot free */
    bool writing;     /* a response is going out */
    bool close_after; /* close once it is out */
    bool read_only;   /* came in on metrics_listen: GET/HEAD of read-only endpoints only */
    uint32_t in_len;
    uint64_t deadline; /* monotonic ms */
    uint64_t since;    /* when this slot's current head started (eviction order) */
    char *out;         /* the response being written (malloc'd) */
    size_t out_len, out_off;
    char in[RW_ADMIN_IN_CAP];
} rw_admin_conn;

typedef struct rw_admin {
    rw_control_opts *ctl;
    int fd;        /* listening socket, -1 when none */
    int mfd;       /* the read-only listener (metrics_listen), -1 when none */
    bool loopback; /* fd is bound to a loopback address */
    time_t started;
    int state;        /* enum rw_admin_state, set by the control loop */
    uint64_t evicted; /* connections closed to make room (cap reached) */
    rw_admin_conn conns[RW_ADMIN_MAX_CONNS];
} rw_admin;

/* Sets up a: the admin listener fd and the read-only one mfd (either may be
 * -1; both are made non-blocking and stay the caller's). */
void rw__admin_init(rw_admin *a, rw_control_opts *ctl, int fd, int mfd);
/* Fills pfd (room for cap entries) with the listener and the connections;
 * returns how many it used. */
int rw__admin_pollfds(rw_admin *a, struct pollfd *pfd, int cap);
/* Stops accepting on the admin and metrics listeners (handed over to a
 * successor): closes this process's copies; open connections finish. */
void rw__admin_stop_listening(rw_admin *a);
/* Handles poll's results for the n entries rw__admin_pollfds filled, and
 * the deadlines that passed by now (monotonic ms). */
void rw__admin_events(rw_admin *a, const struct pollfd *pfd, int n, uint64_t now);
/* Milliseconds until the nearest connection deadline, or -1 when none. */
int rw__admin_next_timeout(const rw_admin *a, uint64_t now);
/* Closes every admin connection (the listener stays the caller's). */
void rw__admin_close_all(rw_admin *a);
/* Reloads the config (SIGHUP, POST /reload, a watched file's change); 0 or
 * -1, message in msg. Counted (rw__control_reload_stats). */
int rw__control_reload(rw_control_opts *o, char *msg, size_t msglen);
/* Reloads that worked and that failed, and when the config was last loaded
 * successfully (start-up included), for /metrics. */
void rw__control_reload_stats(uint64_t *ok, uint64_t *failed, time_t *last_ok);

/* dashboard.c: the /dashboard page (static, NUL-terminated) and its length. */
extern const char rw_dashboard_html[];
extern const size_t rw_dashboard_html_len;

#endif
