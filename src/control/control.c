/* control.c - the control thread: signal handling (reload, drain), config
 * loading with command-line overrides, and the admin listener's loop. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin_int.h"
#include "watch.h"
#include "ringway/control.h"
#include "ringway/filters.h"
#include "ringway/jwks.h"
#include "ringway/log.h"
#include "ringway/tls.h"
#include "ringway/alog.h"
#include "ringway/discovery.h"
#include "ringway/handover.h"
#include "ringway/health.h"
#include "ringway/rl_global.h"

void rw_overrides_init(rw_overrides *o)
{
    memset(o, 0, sizeof(*o));
    o->workers = -1;
    o->io = -1;
    o->max_conns = -1;
    o->drain_timeout_ms = -1;
    o->shutdown_delay_ms = -1;
    o->sync_interval_ms = -1;
}

void rw_overrides_apply(const rw_overrides *o, rw_config *cfg)
{
    if (o->nlisten > 0) {
        /* Point at the overrides' array rather than copying into the config's
         * (sized for the file's list); the overrides outlive every config. */
        cfg->listen = (rw_sockaddr *)o->listen;
        cfg->nlisten = o->nlisten;
        cfg->listen_tls = NULL; /* the file's tls: settings went with its list */
    }
    if (o->workers >= 0)
        cfg->workers = (uint32_t)o->workers;
    if (o->io >= 0)
        cfg->io = o->io;
    if (o->has_admin) {
        cfg->has_admin = true;
        cfg->admin = o->admin;
    }
    if (o->max_conns >= 0)
        cfg->max_conns = (uint32_t)o->max_conns;
    if (o->drain_timeout_ms >= 0)
        cfg->drain_timeout_ms = (uint32_t)o->drain_timeout_ms;
    if (o->shutdown_delay_ms >= 0)
        cfg->shutdown_delay_ms = (uint32_t)o->shutdown_delay_ms;
    if (o->redis_url != NULL)
        cfg->redis.url = (char *)o->redis_url; /* the overrides outlive every config */
    if (o->sync_interval_ms >= 0)
        cfg->redis.sync_interval_ms = (uint32_t)o->sync_interval_ms;
    if (o->access_log != NULL)
        cfg->access_log.path = (char *)o->access_log; /* the overrides outlive every config */
    if (o->upgrade_socket != NULL)
        cfg->upgrade_socket = (char *)o->upgrade_socket; /* the overrides outlive every config */
}

const char *rw_control_upgrade_path(const rw_config *cfg)
{
    static char path[256];
    if (cfg->upgrade_socket != NULL)
        return strcmp(cfg->upgrade_socket, "off") == 0 ? NULL : cfg->upgrade_socket;
    const char *dir = getenv("RUNTIME_DIRECTORY"); /* systemd RuntimeDirectory= (first of a list) */
    if (dir == NULL || dir[0] == '\0')
        return NULL;
    size_t len = strcspn(dir, ":");
    if (snprintf(path, sizeof(path), "%.*s/upgrade.sock", (int)len, dir) >= (int)sizeof(path))
        return NULL;
    return path;
}

void rw_control_shutdown(void)
{
    rw_alog_stop(); /* after the workers: their last lines go out */
    rw_discovery_stop();
    rw_health_stop();
    rw_rl_global_stop();
    rw_filters_gc();
    rw_jwks_shutdown();
}

rw_config *rw_control_load(const char *config_path, const rw_overrides *o, char *err, size_t errlen)
{
    rw_config *cfg = NULL;
    int rc = config_path != NULL
                 ? rw_config_load_file(config_path, &cfg, err, errlen)
                 : rw_config_load_string(rw_config_embedded_default, strlen(rw_config_embedded_default),
                                         "<embedded>", &cfg, err, errlen);
    if (rc != 0)
        return NULL;
    rw_overrides_apply(o, cfg);
    return cfg;
}

int rw_control_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGCHLD);
    signal(SIGPIPE, SIG_IGN);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    return rc == 0 ? 0 : -rc;
}

/* Certificate rotation without a reload: every TLS listener of the running
 * config re-reads its files when they changed (a stat of each, when an
 * inotify event in their directories settled, and once a second anyway; so
 * new handshakes use a new certificate within about 200 ms, a second at
 * most); a broken replacement keeps the old certificates and says why once. */
static void poll_certs(const rw_config *cfg)
{
    for (size_t i = 0; i < cfg->nlisten_tls; i++) {
        rw_tls_cfg *t = cfg->tls_all[i];
        if (t == NULL || t->server == NULL)
            continue;
        char err[512];
        int rc = rw_tls_server_poll_files(t->server, err, sizeof(err));
        if (rc > 0)
            rw_log_info("tls %s: certificates reloaded from their files", rw_tls_server_name(t->server));
        else if (rc < 0)
            rw_log_warn("tls %s: keeping the old certificates: %s", rw_tls_server_name(t->server), err);
    }
}

static void certs_watch_dir(const char *dir, void *arg)
{
    rw_dirwatch_add(arg, dir);
}

/* Points the certificate watch at the directories of cfg's TLS listeners. */
static void certs_watch_update(rw_dirwatch *w, const rw_config *cfg)
{
    rw_dirwatch_clear(w);
    for (size_t i = 0; i < cfg->nlisten_tls; i++)
        if (cfg->tls_all[i] != NULL && cfg->tls_all[i]->server != NULL)
            rw_tls_server_dirs(cfg->tls_all[i]->server, certs_watch_dir, w);
}

static bool same_listeners(const rw_config *a, const rw_config *b)
{
    if (a->nlisten != b->nlisten)
        return false;
    for (size_t i = 0; i < a->nlisten; i++)
        if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
            return false;
    return true;
}

static uint64_t reloads_ok, reloads_failed;
static time_t last_load_ok;

void rw__control_reload_stats(uint64_t *ok, uint64_t *failed, time_t *last_ok)
{
    *ok = reloads_ok;
    *failed = reloads_failed;
    *last_ok = last_load_ok;
}

static int control_reload(rw_control_opts *o, char *msg, size_t msglen);

int rw__control_reload(rw_control_opts *o, char *msg, size_t msglen)
{
    int rc = control_reload(o, msg, msglen);
    if (rc == 0) {
        reloads_ok++;
        last_load_ok = time(NULL);
    } else {
        reloads_failed++;
    }
    return rc;
}

static int control_reload(rw_control_opts *o, char *msg, size_t msglen)
{
    if (o->config_path == NULL) {
        snprintf(msg, msglen, "reload: running on the embedded default config; nothing to reload");
        rw_log_info("%s", msg);
        return 0;
    }
    char err[1024];
    rw_config *cfg = rw_control_load(o->config_path, o->overrides, err, sizeof(err));
    if (cfg == NULL) {
        snprintf(msg, msglen, "reload failed, keeping the running config: %s", err);
        rw_log_error("%s", msg);
        return -1;
    }
    if (!same_listeners(cfg, o->snap->cfg))
        rw_log_warn("reload: listen addresses changed; they take effect only on restart");
    if (cfg->workers != o->snap->cfg->workers || cfg->io != o->snap->cfg->io)
        rw_log_warn("reload: workers/io changed; they take effect only on restart");
    rw_snapshot *snap = rw_snapshot_new(cfg, o->snap->generation + 1, err, sizeof(err));
    if (snap == NULL) {
        rw_config_free(cfg);
        snprintf(msg, msglen, "reload failed, keeping the running config: %s", err);
        rw_log_error("%s", msg);
        return -1;
    }
    rw_discovery_apply(snap);
    rw_snapshot *found = rw_discovery_overlay(snap, snap->generation + 1);
    if (found != NULL) {
        rw_snapshot_unref(snap);
        snap = found;
    }
    char aerr[300];
    if (rw_alog_configure(&cfg->access_log, aerr, sizeof(aerr)) != 0)
        rw_log_error("%s; the access log keeps its old destination", aerr);
    rw_server_publish(o->server, snap);
    rw_snapshot_unref(o->snap);
    o->snap = snap;
    rw_rl_global_apply(cfg);
    rw_health_apply(snap);
    snprintf(msg, msglen, "reloaded %s (generation %llu): %zu routes, %zu services", o->config_path,
             (unsigned long long)snap->generation, cfg->nroutes, cfg->nservices);
    rw_log_info("%s", msg);
    return 0;
}

/* Publishes what discovery found, as a snapshot derived from the running one. */
static void discovery_publish(rw_control_opts *o)
{
    rw_snapshot *snap = rw_discovery_overlay(o->snap, o->snap->generation + 1);
    if (snap == NULL)
        return;
    rw_server_publish(o->server, snap);
    rw_snapshot_unref(o->snap);
    o->snap = snap;
    rw_health_apply(snap);
}

/* The deadlines of a shutdown; its stage is admin.state (what /status and
 * /ready report), driven by rw_control_run. */
typedef struct shutdown {
    uint64_t delay_end; /* RW_ADMIN_SHUTTING: when the listeners close */
    uint64_t deadline;  /* RW_ADMIN_DRAINING: when what is left gets cut */
} shutdown_t;

/* idle_grace_ms: 0 closes idle keep-alive connections at once (SIGTERM: the
 * listeners close, a client must go elsewhere anyway); a handover gives them
 * that long, answering their next request with Connection: close. */
static void start_drain(rw_control_opts *o, shutdown_t *sd, rw_admin *admin, uint64_t now,
                        uint32_t idle_grace_ms)
{
    admin->state = RW_ADMIN_DRAINING;
    sd->deadline = now + o->snap->cfg->drain_timeout_ms;
    rw_log_info("draining: listeners closed, in-flight requests have up to %u ms",
                o->snap->cfg->drain_timeout_ms);
    rw_server_drain(o->server, idle_grace_ms);
}

static void on_stop_signal(rw_control_opts *o, shutdown_t *sd, rw_admin *admin, int signo, uint64_t now)
{
    const char *name = signo == SIGTERM ? "SIGTERM" : "SIGINT";
    if (admin->state == RW_ADMIN_DRAINING) {
        rw_log_warn("%s during the drain: exiting now", name);
        sd->deadline = now;
        return;
    }
    rw_server_set_unready(o->server); /* /ready answers 503 from here on */
    uint32_t delay = o->snap->cfg->shutdown_delay_ms;
    if (admin->state == RW_ADMIN_SHUTTING) {
        rw_log_info("%s during the shutdown delay: draining now", name);
        start_drain(o, sd, admin, now, 0);
        return;
    }
    if (delay > 0) {
        admin->state = RW_ADMIN_SHUTTING;
        sd->delay_end = now + delay;
        rw_log_info("%s: /ready answers 503; still serving for the shutdown delay (%u ms), then draining",
                    name, delay);
        return;
    }
    rw_log_info("%s: shutting down", name);
    start_drain(o, sd, admin, now, 0);
}

/* The drain deadline passed: cut what is left and say what was cut. */
static int cut_and_exit(rw_control_opts *o)
{
    rw_server_force(o->server);
    uint64_t until = rw_mono_ms() + 2000;
    while (!rw_server_drained(o->server) && rw_mono_ms() < until)
        poll(NULL, 0, 10);
    rw_worker_stats st;
    rw_server_stats(o->server, &st);
    if (st.cut_requests > 0) {
        rw_log_warn(
            "drain timeout: %llu requests were still in flight and were cut (%llu WebSocket tunnels closed)",
            (unsigned long long)st.cut_requests, (unsigned long long)st.cut_tunnels);
        return RW_EXIT_DRAIN_CUT;
    }
    rw_log_warn("drain timeout: closed %llu WebSocket tunnels; no request was in flight",
                (unsigned long long)st.cut_tunnels);
    return 0;
}

/* Starts or stops following the config file, as --watch-config and the
 * running config's watch_config say. */
static void watch_update(rw_control_opts *o, rw_watch *w, bool *watching)
{
    bool want = o->watch_config || o->snap->cfg->watch_config;
    if (want && o->config_path == NULL) {
        if (!*watching && o->watch_config)
            rw_log_warn("--watch-config: running on the embedded default config; nothing to watch");
        return;
    }
    if (want && !*watching) {
        if (rw_watch_init(w, o->config_path, o->snap->cfg->source_hash, rw_mono_ms()) == 0) {
            *watching = true;
            rw_log_info("watching %s: a change is reloaded", o->config_path);
        } else {
            rw_log_warn("watch_config: cannot watch %s", o->config_path);
        }
    } else if (!want && *watching) {
        rw_watch_free(w);
        *watching = false;
        rw_log_info("no longer watching %s", o->config_path);
    }
}

/* An upgrade in progress: the connection to the new process (-1: none),
 * its pid, and the child SIGUSR2 started (0: none). */
typedef struct upgrade {
    int conn;
    pid_t peer;
    pid_t child;
    bool handed_over; /* to peer: this process drains */
} upgrade_t;

#define RW_HO_IDLE_GRACE_MS 1000

/* A successor connected: hand it every listening socket. */
static void upgrade_accept(rw_control_opts *o, upgrade_t *up, rw_admin *admin)
{
    char err[300];
    pid_t peer = 0;
    int conn = rw_handover_accept(o->upgrade_fd, &peer, err, sizeof(err));
    if (conn < 0) {
        if (err[0] != '\0')
            rw_log_error("upgrade: %s", err);
        return;
    }
    if (up->conn >= 0 || admin->state != RW_ADMIN_RUNNING) {
        rw_log_warn("upgrade: refused pid %d: %s", (int)peer,
                    up->conn >= 0 ? "another upgrade is in progress" : "this process is shutting down");
        close(conn);
        return;
    }
    size_t nl = rw_server_listeners(o->server, NULL, 0);
    rw_listen_fd *lf = malloc(sizeof(*lf) * (nl ? nl : 1));
    rw_ho_sock *socks = malloc(sizeof(*socks) * (nl + 3));
    if (lf == NULL || socks == NULL) {
        rw_log_error("upgrade: out of memory");
        free(lf);
        free(socks);
        close(conn);
        return;
    }
    nl = rw_server_listeners(o->server, lf, nl);
    const rw_config *cfg = o->snap->cfg;
    size_t n = 0;
    for (size_t i = 0; i < nl; i++) {
        socks[n] = (rw_ho_sock){.fd = lf[i].fd, .role = RW_HO_DATA, .addr = lf[i].addr, .slot = lf[i].slot};
        snprintf(socks[n].text, sizeof(socks[n].text), "%.51s", cfg->listen[lf[i].addr].text);
        n++;
    }
    if (o->admin_fd >= 0) {
        socks[n] = (rw_ho_sock){.fd = o->admin_fd, .role = RW_HO_ADMIN};
        snprintf(socks[n++].text, sizeof(socks[0].text), "%.51s", cfg->admin.text);
    }
    if (o->metrics_fd >= 0) {
        socks[n] = (rw_ho_sock){.fd = o->metrics_fd, .role = RW_HO_METRICS};
        snprintf(socks[n++].text, sizeof(socks[0].text), "%.51s", cfg->metrics_listen.text);
    }
    socks[n] = (rw_ho_sock){.fd = o->upgrade_fd, .role = RW_HO_UPGRADE};
    snprintf(socks[n++].text, sizeof(socks[0].text), "%.51s", o->upgrade_path);
    int rc = rw_handover_send(conn, socks, n, err, sizeof(err));
    free(lf);
    free(socks);
    if (rc != 0) {
        rw_log_error("upgrade: pid %d: %s; still serving", (int)peer, err);
        close(conn);
        return;
    }
    rw_log_info("upgrade: handed %zu listening sockets to pid %d; serving until it is ready", n, (int)peer);
    up->conn = conn;
    up->peer = peer;
}

/* The new process answered (or went away). */
static void upgrade_answer(rw_control_opts *o, upgrade_t *up, shutdown_t *sd, rw_admin *admin, uint64_t now)
{
    bool kept = false;
    char text[600];
    int rc = rw_handover_poll(up->conn, &kept, text, sizeof(text));
    if (rc == 0)
        return;
    if (rc != RW_HO_READY) {
        rw_log_error("upgrade failed: pid %d %s%s; still serving", (int)up->peer,
                     rc == RW_HO_ABORT ? "gave up: " : "", text);
        close(up->conn);
        up->conn = -1;
        return;
    }
    /* The new process accepts on the same sockets: stop accepting and
     * close this process's copies; their queues stay with it. No
     * shutdown delay: nothing changes for a load balancer. */
    up->handed_over = true;
    o->upgrade_kept = kept;
    rw__admin_stop_listening(admin);
    if (o->upgrade_fd >= 0) {
        if (!kept) /* the new process listens elsewhere: this path is ours to remove */
            rw_handover_unlink(o->upgrade_path, o->upgrade_fd);
        close(o->upgrade_fd);
    }
    o->upgrade_fd = -1;
    rw_server_set_unready(o->server);
    rw_log_info("upgrade: pid %d serves now; this process (pid %d) stops accepting and drains", (int)up->peer,
                (int)getpid());
    start_drain(o, sd, admin, now, RW_HO_IDLE_GRACE_MS);
    rw_handover_send_draining(up->conn);
    close(up->conn);
    up->conn = -1;
}

/* SIGUSR2: start the binary this process came from, with the same command
 * line plus --upgrade; it connects back to the upgrade socket. */
static void upgrade_spawn(rw_control_opts *o, upgrade_t *up, const rw_admin *admin)
{
    if (o->upgrade_fd < 0 || o->exe == NULL || o->argv == NULL) {
        rw_log_warn("SIGUSR2: no upgrade socket (--upgrade-socket, upgrade_socket:); not upgrading");
        return;
    }
    if (admin->state != RW_ADMIN_RUNNING || up->child > 0 || up->conn >= 0) {
        rw_log_warn("SIGUSR2: %s; not upgrading",
                    admin->state != RW_ADMIN_RUNNING ? "shutting down" : "an upgrade is in progress");
        return;
    }
    size_t argc = 0;
    bool has = false;
    while (o->argv[argc] != NULL)
        has |= strcmp(o->argv[argc++], "--upgrade") == 0;
    char **av = calloc(argc + 2, sizeof(char *));
    if (av == NULL) {
        rw_log_error("SIGUSR2: out of memory");
        return;
    }
    for (size_t i = 0; i < argc; i++)
        av[i] = o->argv[i];
    if (!has)
        av[argc] = "--upgrade";
    posix_spawnattr_t at;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    int rc = posix_spawnattr_init(&at);
    if (rc == 0) {
        /* The child must not inherit this process's blocked signals. */
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &dfl);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        pid_t pid = 0;
        extern char **environ;
        rc = posix_spawn(&pid, o->exe, NULL, &at, av, environ);
        posix_spawnattr_destroy(&at);
        if (rc == 0) {
            up->child = pid;
            rw_log_info("SIGUSR2: started %s --upgrade as pid %d", o->exe, (int)pid);
        }
    }
    if (rc != 0)
        rw_log_error("SIGUSR2: cannot start %s: %s; still serving", o->exe, strerror(rc));
    free(av);
}

/* SIGCHLD: reap; a SIGUSR2 child that ends before it took over failed. */
static void upgrade_reap(upgrade_t *up)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid != up->child)
            continue;
        up->child = 0;
        if (up->handed_over && pid == up->peer)
            continue; /* it served, then stopped: its own business now */
        if (WIFEXITED(st))
            rw_log_error("upgrade failed: the new process (pid %d) exited with status %d before taking over; "
                         "still serving",
                         (int)pid, WEXITSTATUS(st));
        else
            rw_log_error(
                "upgrade failed: the new process (pid %d) died of signal %d before taking over; still "
                "serving",
                (int)pid, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
}

int rw_control_run(rw_control_opts *o)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGCHLD);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd == -1) {
        rw_log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    static rw_admin admin; /* big (its connections' buffers): not on the stack */
    rw__admin_init(&admin, o, o->admin_fd, o->metrics_fd);
    last_load_ok = time(NULL);
    static rw_watch watch;
    bool watching = false;
    watch_update(o, &watch, &watching);
    shutdown_t sd = {0};
    upgrade_t up = {.conn = -1};
    int status = 0;
    static rw_dirwatch certs;
    rw_dirwatch_init(&certs, rw_mono_ms());
    const rw_config *certs_cfg = NULL; /* the config certs watches the directories of */
    uint64_t certs_gen = 0;
    struct pollfd pfd[6 + 2 + RW_ADMIN_MAX_CONNS];
    for (;;) {
        uint64_t now = rw_mono_ms();
        if (o->snap->cfg != certs_cfg || o->snap->generation != certs_gen) {
            certs_cfg = o->snap->cfg;
            certs_gen = o->snap->generation;
            certs_watch_update(&certs, certs_cfg);
        }
        pfd[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = watching ? rw_watch_fd(&watch) : -1, .events = POLLIN};
        pfd[2] = (struct pollfd){.fd = rw_discovery_fd(), .events = POLLIN};
        /* A second upgrade waits in the socket's backlog until this one ends. */
        pfd[3] = (struct pollfd){.fd = up.conn < 0 && admin.state == RW_ADMIN_RUNNING ? o->upgrade_fd : -1,
                                 .events = POLLIN};
        pfd[4] = (struct pollfd){.fd = up.conn, .events = POLLIN};
        pfd[5] =
            (struct pollfd){.fd = certs_cfg->nlisten_tls > 0 ? rw_dirwatch_fd(&certs) : -1, .events = POLLIN};
        int nadmin = rw__admin_pollfds(&admin, pfd + 6, (int)RW_ARRAY_LEN(pfd) - 6);
        /* Wake for the next admin deadline, the end of the shutdown delay,
         * drain progress, and otherwise once a second (collector, health). */
        int timeout = admin.state == RW_ADMIN_DRAINING ? 50 : 1000;
        if (admin.state == RW_ADMIN_SHUTTING)
            timeout = (int)RW_MIN((uint64_t)timeout, sd.delay_end > now ? sd.delay_end - now : 0);
        int at = rw__admin_next_timeout(&admin, now);
        if (at >= 0 && at < timeout)
            timeout = at;
        if (watching && rw_watch_timeout(&watch, now) < timeout)
            timeout = rw_watch_timeout(&watch, now);
        if (certs_cfg->nlisten_tls > 0 && rw_dirwatch_timeout(&certs, now) < timeout)
            timeout = rw_dirwatch_timeout(&certs, now);
        int n = poll(pfd, (nfds_t)(6 + nadmin), timeout);
        if (n == -1 && errno != EINTR) {
            rw_log_error("poll: %s", strerror(errno));
            status = 1;
            break;
        }
        now = rw_mono_ms();
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGUSR1) {
                    rw_alog_reopen(); /* logrotate moved the file */
                } else if (si.ssi_signo == SIGHUP) {
                    if (admin.state != RW_ADMIN_RUNNING) {
                        rw_log_info("SIGHUP while shutting down: not reloading");
                        continue;
                    }
                    char msg[1280];
                    rw_log_info("SIGHUP: reloading configuration");
                    rw__control_reload(o, msg, sizeof(msg));
                    watch_update(o, &watch, &watching);
                } else if (si.ssi_signo == SIGUSR2) {
                    upgrade_spawn(o, &up, &admin);
                } else if (si.ssi_signo == SIGCHLD) {
                    upgrade_reap(&up);
                } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                    on_stop_signal(o, &sd, &admin, (int)si.ssi_signo, now);
                }
            }
        }
        if (watching && n > 0 && (pfd[1].revents & POLLIN))
            rw_watch_events(&watch, now);
        if (watching && admin.state == RW_ADMIN_RUNNING && rw_watch_changed(&watch, now)) {
            char msg[1280];
            rw_log_info("%s changed: reloading", o->config_path);
            rw__control_reload(o, msg, sizeof(msg));
            watch_update(o, &watch, &watching);
        }
        if (n > 0 && (pfd[2].revents & POLLIN)) {
            /* Listeners serve until the drain: discovery applies until then.
             * The overlay reads the eventfd either way (or poll would spin). */
            if (admin.state != RW_ADMIN_DRAINING)
                discovery_publish(o);
            else
                rw_snapshot_unref(rw_discovery_overlay(o->snap, o->snap->generation + 1));
        }
        rw__admin_events(&admin, pfd + 6, n > 0 ? nadmin : 0, now);
        /* After the admin's events: a handover closes the admin listeners. */
        if (n > 0 && up.conn >= 0 && (pfd[4].revents & (POLLIN | POLLHUP | POLLERR)))
            upgrade_answer(o, &up, &sd, &admin, now);
        if (n > 0 && pfd[3].fd >= 0 && (pfd[3].revents & POLLIN))
            upgrade_accept(o, &up, &admin);
        if (n > 0 && (pfd[5].revents & POLLIN))
            rw_dirwatch_events(&certs, now);
        if (rw_dirwatch_due(&certs, now))
            poll_certs(o->snap->cfg);
        rw_filters_gc(); /* configs and tables the workers have let go of */
        if (rw_server_failed(o->server)) {
            rw_log_error("a worker stopped unexpectedly: exiting");
            status = 1;
            break;
        }
        if (admin.state == RW_ADMIN_SHUTTING && now >= sd.delay_end)
            start_drain(o, &sd, &admin, now, 0);
        if (admin.state == RW_ADMIN_DRAINING) {
            if (rw_server_drained(o->server)) {
                rw_log_info("drained: all connections finished");
                break;
            }
            if (now >= sd.deadline) {
                status = cut_and_exit(o);
                break;
            }
        }
    }
    if (up.conn >= 0)
        close(up.conn);
    rw__admin_close_all(&admin);
    if (watching)
        rw_watch_free(&watch);
    rw_dirwatch_free(&certs);
    close(sfd);
    return status;
}
