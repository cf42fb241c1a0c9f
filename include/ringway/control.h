/* control.h - the control thread: signals, config reload, drain, admin API.
 * It runs on the process's main thread; it never touches a worker's state
 * except through rw_server_* calls. */
#ifndef RINGWAY_CONTROL_H
#define RINGWAY_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "ringway/config.h"
#include "ringway/worker.h"

#define RW_MAX_LISTEN 16
#define RW_EXIT_DRAIN_CUT 3 /* exit status: the drain deadline cut requests in flight */

/* Command-line settings that override the config file (set fields only). */
typedef struct rw_overrides {
    rw_sockaddr listen[RW_MAX_LISTEN];
    size_t nlisten; /* 0: keep the file's */
    long workers;   /* -1: keep */
    int io;         /* -1: keep */
    bool has_admin;
    rw_sockaddr admin;
    long max_conns;             /* -1: keep */
    long drain_timeout_ms;      /* -1: keep */
    long shutdown_delay_ms;     /* -1: keep */
    const char *redis_url;      /* NULL: keep (--redis) */
    long sync_interval_ms;      /* -1: keep */
    const char *access_log;     /* NULL: keep (--access-log) */
    const char *upgrade_socket; /* NULL: keep (--upgrade-socket) */
} rw_overrides;

/* Sets every field of o to "not given". */
void rw_overrides_init(rw_overrides *o);

/* Writes the overrides that are set into cfg. */
void rw_overrides_apply(const rw_overrides *o, rw_config *cfg);

/* Loads config_path (or the embedded default when NULL), applies overrides.
 * Returns the config, or NULL with "file:line: reason" in err. */
rw_config *rw_control_load(const char *config_path, const rw_overrides *o, char *err, size_t errlen);

typedef struct rw_control_opts {
    rw_server *server;
    rw_snapshot *snap;       /* current snapshot: the control thread holds this reference */
    const char *config_path; /* NULL: embedded default (reload re-reads nothing) */
    const rw_overrides *overrides;
    int admin_fd;      /* listening admin socket, or -1 */
    int metrics_fd;    /* the read-only admin listener (metrics_listen), or -1 */
    bool watch_config; /* --watch-config: reload when the file changes (or the file's watch_config) */
    /* Upgrades (handover.h): the listening upgrade socket (-1: none) and
     * its path. rw_control_run closes what it hands over and sets the fds
     * here to -1; upgrade_kept says a successor took the socket file over
     * (then the caller must not unlink it). */
    int upgrade_fd;
    const char *upgrade_path;
    bool upgrade_kept;
    const char *exe;   /* the binary SIGUSR2 starts (the path this one was started from) */
    char *const *argv; /* this process's command line; SIGUSR2 adds --upgrade to it */
} rw_control_opts;

/* The upgrade socket's path for cfg: upgrade_socket (--upgrade-socket
 * overrides it), else $RUNTIME_DIRECTORY/upgrade.sock when systemd set
 * RUNTIME_DIRECTORY, else none. NULL: none ("off"). The text lives in cfg,
 * the environment or the static buffer (one call at a time). */
const char *rw_control_upgrade_path(const rw_config *cfg);
/* Stops the Redis sync and frees what filters left behind (process exit). */
void rw_control_shutdown(void);

/* Runs until SIGTERM/SIGINT and the drain that follows: /ready answers 503
 * at once, listeners keep serving for the shutdown delay, then close and
 * in-flight requests get up to the drain timeout. Signals must already be
 * blocked in every thread (rw_control_block_signals before starting
 * workers). Returns the process exit status: 0 after a clean drain,
 * RW_EXIT_DRAIN_CUT when the deadline cut requests, 1 when a worker died. */
int rw_control_run(rw_control_opts *o);

/* Blocks SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGCHLD and ignores SIGPIPE for the calling thread
 * and threads it creates afterwards. Returns 0 or -errno. */
int rw_control_block_signals(void);

#endif
