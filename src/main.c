/* main.c - command-line flags, start-up and shutdown of ringway. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/un.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ringway/config.h"
#include "ringway/control.h"
#include "ringway/cpus.h"
#include "ringway/log.h"
#include "ringway/alog.h"
#include "ringway/discovery.h"
#include "ringway/handover.h"
#include "ringway/health.h"
#include "ringway/registry.h"
#include "ringway/rstats.h"
#include "ringway/rl_global.h"
#include "ringway/loop.h"
#include "ringway/net.h"
#include "ringway/proxy.h"
#include "ringway/redis.h"
#include "ringway/worker.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ringway [OPTION]...\n"
            "       ringway register --redis URL --service NAME --address IP:PORT [--weight N] [--ttl 10s]\n"
            "       ringway deregister --redis URL --service NAME --address IP:PORT\n"
            "An HTTP/1.1 API gateway: one pinned worker per core, io_uring or epoll.\n"
            "\n"
            "  -c, --config FILE         YAML configuration (default: the embedded default,\n"
            "                            which answers on / and /health)\n"
            "  -l, --listen ADDR:PORT    listen address; repeatable; IPv4 (0.0.0.0:8080),\n"
            "                            IPv6 ([::]:8080) or :PORT; replaces the file's list\n"
            "  -w, --workers N           worker threads (default: CPUs in the affinity mask)\n"
            "      --no-pin              do not pin workers to CPUs\n"
            "      --reuseport-steering MODE\n"
            "                            hash | cpu: how the kernel spreads new connections\n"
            "                            over workers (default hash: a 4-tuple hash; cpu: the\n"
            "                            worker pinned to the CPU that took the SYN)\n"
            "      --io MODE             auto | uring | epoll (default auto: io_uring when\n"
            "                            the kernel allows it, else epoll)\n"
            "      --admin ADDR:PORT     admin API listener (/status, /metrics, POST /reload)\n"
            "      --max-conns N         client connection cap for the process\n"
            "      --shutdown-delay DUR  on SIGTERM, answer /ready 503 but keep serving this\n"
            "                            long before closing the listeners (0s; set it to\n"
            "                            the time a load balancer needs to stop sending)\n"
            "      --drain-timeout DUR   how long SIGTERM waits for in-flight requests (30s)\n"
            "      --watch-config        reload when the config file changes (also a\n"
            "                            Kubernetes ConfigMap mount's symlink swap)\n"
            "      --log-level LEVEL     error | warn | info | debug (default info)\n"
            "      --redis URL           redis://[user:password@]host:port/db: share global\n"
            "                            rate limits across nodes (replaces redis.url)\n"
            "      --sync-interval DUR   how often global limits sync with Redis (100ms)\n"
            "      --access-log WHERE    stdout | stderr | off | a file: one line per request\n"
            "                            (default stdout, JSON; replaces access_log.path)\n"
            "      --upgrade-socket PATH UNIX socket a successor takes the listening sockets\n"
            "                            from (default $RUNTIME_DIRECTORY/upgrade.sock when\n"
            "                            systemd sets it, else off; \"off\" disables)\n"
            "      --upgrade             start as the successor of the ringway listening on\n"
            "                            the upgrade socket: take its listening sockets,\n"
            "                            serve, then it drains and exits; on any failure\n"
            "                            this one exits 1 and the old one keeps serving\n"
            "  -t, --check-config        validate the configuration and exit (0 = valid)\n"
            "  -V, --version             print the version and exit\n"
            "  -h, --help                print this help and exit\n"
            "\n"
            "Signals: SIGHUP reloads the config file; SIGTERM/SIGINT: /ready 503, the\n"
            "shutdown delay, then drain and exit (a second one skips the delay);\n"
            "SIGUSR2: start this binary again with --upgrade (a zero-drop upgrade);\n"
            "SIGUSR1: reopen the access log file.\n"
            "Exit status: 0 drained, 1 error, 2 bad command line, 3 the drain timeout\n"
            "cut requests in flight.\n"
            "Flags override the config file. Durations: 250ms, 10s, 5m, 1h.\n");
}

enum {
    OPT_NO_PIN = 1000,
    OPT_IO,
    OPT_ADMIN,
    OPT_MAX_CONNS,
    OPT_DRAIN,
    OPT_LOG_LEVEL,
    OPT_REDIS,
    OPT_SYNC_INTERVAL,
    OPT_STEERING,
    OPT_SHUTDOWN_DELAY,
    OPT_WATCH_CONFIG,
    OPT_ACCESS_LOG,
    OPT_UPGRADE,
    OPT_UPGRADE_SOCKET
};

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, 'l'},
    {"workers", required_argument, NULL, 'w'},
    {"no-pin", no_argument, NULL, OPT_NO_PIN},
    {"reuseport-steering", required_argument, NULL, OPT_STEERING},
    {"io", required_argument, NULL, OPT_IO},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"shutdown-delay", required_argument, NULL, OPT_SHUTDOWN_DELAY},
    {"watch-config", no_argument, NULL, OPT_WATCH_CONFIG},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"sync-interval", required_argument, NULL, OPT_SYNC_INTERVAL},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"upgrade", no_argument, NULL, OPT_UPGRADE},
    {"upgrade-socket", required_argument, NULL, OPT_UPGRADE_SOCKET},
    {"check-config", no_argument, NULL, 't'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static void raise_nofile(uint32_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t target = (rlim_t)want * 2 + 1024;
    if (rl.rlim_cur >= target)
        return;
    rl.rlim_cur = target < rl.rlim_max ? target : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rw_log_warn("cannot raise the open-file limit: %s", strerror(errno));
}

/* --upgrade: the connection to the old process; start-up failures after
 * it was made tell the old one why (it keeps serving). */
static int ho_conn = -1;

static int start_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int start_failed(const char *fmt, ...)
{
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rw_log_error("%s", msg);
    if (ho_conn >= 0) {
        rw_handover_abort(ho_conn, msg);
        close(ho_conn);
        ho_conn = -1;
        rw_log_error("upgrade failed: the old process keeps serving");
    }
    return 1;
}

/* True when fd is a listening TCP socket bound to want's address and port. */
static bool bound_to(int fd, const rw_sockaddr *want)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int on = 0;
    socklen_t olen = sizeof(on);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) != 0 || !on ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0 || ss.ss_family != want->ss.ss_family)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss,
                                 *b = (const struct sockaddr_in *)&want->ss;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss,
                                  *b = (const struct sockaddr_in6 *)&want->ss;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
    }
    return false;
}

/* True when fd is a UNIX socket bound to path. */
static bool unix_bound_to(int fd, const char *path)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    if (path == NULL || getsockname(fd, (struct sockaddr *)&sa, &len) != 0 || sa.sun_family != AF_UNIX)
        return false;
    return strncmp(sa.sun_path, path, sizeof(sa.sun_path)) == 0;
}

/* What this process takes of the sockets the old one handed over. */
typedef struct inherited {
    rw_listen_fd *data; /* for rw_server_opts.inherit */
    size_t ndata;
    int admin_fd, metrics_fd, upgrade_fd;
} inherited;

/* Matches the handed-over sockets to cfg: data listeners by address (in
 * the order they came: their reuseport group's), admin and metrics_listen
 * by address, the upgrade socket by path. The others are closed: their
 * addresses are not configured any more (connections queued there are
 * the old process's until it drains). Takes every fd in socks. */
static int inherit_match(const rw_config *cfg, const char *upath, rw_ho_sock *socks, size_t n, inherited *in)
{
    *in = (inherited){.admin_fd = -1, .metrics_fd = -1, .upgrade_fd = -1};
    in->data = malloc(sizeof(*in->data) * (n ? n : 1));
    if (in->data == NULL) {
        for (size_t i = 0; i < n; i++)
            close(socks[i].fd);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        rw_ho_sock *s = &socks[i];
        bool used = false;
        if (s->role == RW_HO_DATA) {
            for (size_t a = 0; a < cfg->nlisten && !used; a++)
                if (bound_to(s->fd, &cfg->listen[a])) {
                    in->data[in->ndata++] = (rw_listen_fd){.fd = s->fd, .addr = (uint32_t)a, .slot = s->slot};
                    used = true;
                }
        } else if (s->role == RW_HO_ADMIN || s->role == RW_HO_METRICS) {
            if (cfg->has_admin && in->admin_fd < 0 && bound_to(s->fd, &cfg->admin)) {
                in->admin_fd = s->fd;
                used = true;
            } else if (cfg->has_metrics_listen && in->metrics_fd < 0 &&
                       bound_to(s->fd, &cfg->metrics_listen)) {
                in->metrics_fd = s->fd;
                used = true;
            }
        } else if (s->role == RW_HO_UPGRADE && in->upgrade_fd < 0 && unix_bound_to(s->fd, upath)) {
            in->upgrade_fd = s->fd;
            used = true;
        }
        if (!used) {
            rw_log_info("upgrade: %s (%s) is not in this config: not listening there",
                        s->text[0] ? s->text : "a socket",
                        s->role == RW_HO_DATA      ? "listen"
                        : s->role == RW_HO_ADMIN   ? "admin"
                        : s->role == RW_HO_METRICS ? "metrics_listen"
                                                   : "upgrade socket");
            close(s->fd);
        }
    }
    return 0;
}

/* The path of the running binary, so SIGUSR2 starts what is installed there
 * now (a package upgrade replaced the file) rather than this process's own
 * image (/proc/self/exe, the old inode). */
static const char *self_exe(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    static const char del[] = " (deleted)";
    size_t len = (size_t)n;
    if (len > sizeof(del) - 1 && strcmp(path + len - (sizeof(del) - 1), del) == 0)
        path[len - (sizeof(del) - 1)] = '\0';
    return path;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "register") == 0 || strcmp(argv[1], "deregister") == 0))
        return rw_registry_main(argc - 1, argv + 1);
    const char *config_path = NULL;
    bool check_only = false, pin = true, watch_config = false, upgrade = false;
    int steering = RW_STEER_HASH;
    rw_overrides ov;
    rw_overrides_init(&ov);
    int opt;
    while ((opt = getopt_long(argc, argv, "c:l:w:tVh", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            if (ov.nlisten == RW_MAX_LISTEN) {
                fprintf(stderr, "ringway: at most %d --listen addresses\n", RW_MAX_LISTEN);
                return 2;
            }
            if (rw_parse_sockaddr(optarg, &ov.listen[ov.nlisten]) != 0) {
                fprintf(stderr, "ringway: --listen %s: expected ADDR:PORT, [V6]:PORT or :PORT\n", optarg);
                return 2;
            }
            ov.nlisten++;
            break;
        case 'w':
            if (parse_long(optarg, 1, 1024, &ov.workers) != 0) {
                fprintf(stderr, "ringway: --workers %s: expected a number from 1 to 1024\n", optarg);
                return 2;
            }
            break;
        case OPT_NO_PIN:
            pin = false;
            break;
        case OPT_STEERING:
            if (strcmp(optarg, "hash") == 0)
                steering = RW_STEER_HASH;
            else if (strcmp(optarg, "cpu") == 0)
                steering = RW_STEER_CPU;
            else {
                fprintf(stderr, "ringway: --reuseport-steering %s: expected hash or cpu\n", optarg);
                return 2;
            }
            break;
        case OPT_IO:
            if (strcmp(optarg, "auto") == 0)
                ov.io = RW_IO_AUTO;
            else if (strcmp(optarg, "uring") == 0 || strcmp(optarg, "io_uring") == 0)
                ov.io = RW_IO_URING;
            else if (strcmp(optarg, "epoll") == 0)
                ov.io = RW_IO_EPOLL;
            else {
                fprintf(stderr, "ringway: --io %s: expected auto, uring or epoll\n", optarg);
                return 2;
            }
            break;
        case OPT_ADMIN:
            if (rw_parse_sockaddr(optarg, &ov.admin) != 0) {
                fprintf(stderr, "ringway: --admin %s: expected ADDR:PORT\n", optarg);
                return 2;
            }
            ov.has_admin = true;
            break;
        case OPT_MAX_CONNS:
            if (parse_long(optarg, 1, 10000000, &ov.max_conns) != 0) {
                fprintf(stderr, "ringway: --max-conns %s: expected a positive number\n", optarg);
                return 2;
            }
            break;
        case OPT_DRAIN: {
            uint64_t ms;
            if (rw_parse_duration_ms(optarg, &ms) != 0 || ms > 86400000ull) {
                fprintf(stderr, "ringway: --drain-timeout %s: expected a duration like 30s\n", optarg);
                return 2;
            }
            ov.drain_timeout_ms = (long)ms;
            break;
        }
        case OPT_WATCH_CONFIG:
            watch_config = true;
            break;
        case OPT_SHUTDOWN_DELAY: {
            uint64_t ms;
            if (rw_parse_duration_ms(optarg, &ms) != 0 || ms > 3600000ull) {
                fprintf(stderr, "ringway: --shutdown-delay %s: expected a duration up to 1h, like 5s\n",
                        optarg);
                return 2;
            }
            ov.shutdown_delay_ms = (long)ms;
            break;
        }
        case OPT_REDIS: {
            char why[256];
            rw_redis_url u;
            if (rw_redis_url_parse(optarg, &u, why, sizeof(why)) != 0) {
                fprintf(stderr, "ringway: --redis %s: %s (expected redis://[user:password@]host:port/db)\n",
                        optarg, why);
                return 2;
            }
            ov.redis_url = optarg;
            break;
        }
        case OPT_ACCESS_LOG:
            if (*optarg == '\0') {
                fprintf(stderr, "ringway: --access-log: expected stdout, stderr, off or a file path\n");
                return 2;
            }
            ov.access_log = optarg;
            break;
        case OPT_UPGRADE:
            upgrade = true;
            break;
        case OPT_UPGRADE_SOCKET:
            if (*optarg == '\0' || strlen(optarg) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                fprintf(stderr, "ringway: --upgrade-socket: expected a path of 1 to %zu bytes, or off\n",
                        sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
                return 2;
            }
            ov.upgrade_socket = optarg;
            break;
        case OPT_SYNC_INTERVAL: {
            uint64_t ms;
            if (rw_parse_duration_ms(optarg, &ms) != 0 || ms < 1 || ms > 60000) {
                fprintf(stderr,
                        "ringway: --sync-interval %s: expected a duration from 1ms to 60s (a bare number is "
                        "ms)\n",
                        optarg);
                return 2;
            }
            ov.sync_interval_ms = (long)ms;
            break;
        }
        case OPT_LOG_LEVEL:
            if (rw_log_parse_level(optarg, &rw_log_threshold) != 0) {
                fprintf(stderr, "ringway: --log-level %s: expected error, warn, info or debug\n", optarg);
                return 2;
            }
            break;
        case 't':
            check_only = true;
            break;
        case 'V':
            printf("ringway %s\n", RW_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringway: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    char err[1280];
    rw_config *cfg = rw_control_load(config_path, &ov, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "ringway: %s\n", err);
        return 1;
    }
    rw_cpu_budget cpus;
    rw_cpu_budget_get(&cpus);
    int nworkers = cfg->workers > 0 ? (int)cfg->workers : cpus.workers;
    if (cfg->workers > 0)
        snprintf(cpus.why, sizeof(cpus.why), "set: %u", cfg->workers);
    rw_rstats_init(nworkers); /* statistics slots: one per worker */
    rw_snapshot *snap = rw_snapshot_new(cfg, 1, err, sizeof(err));
    if (snap == NULL) {
        fprintf(stderr, "ringway: %s\n", err);
        rw_config_free(cfg);
        return 1;
    }
    if (check_only) {
        printf("ringway: configuration %s is valid: %zu routes, %zu services\n",
               config_path ? config_path : "<embedded>", cfg->nroutes, cfg->nservices);
        rw_snapshot_unref(snap);
        rw_control_shutdown();
        return 0;
    }

    int backend = RW_BACKEND_EPOLL;
    if (cfg->io == RW_IO_URING) {
        if (!rw_uring_available()) {
            rw_log_error("--io uring: io_uring is not available here (kernel too old, "
                         "kernel.io_uring_disabled, or a seccomp profile); use --io epoll or auto");
            rw_snapshot_unref(snap);
            return 1;
        }
        backend = RW_BACKEND_URING;
    } else if (cfg->io == RW_IO_AUTO) {
        if (rw_uring_available())
            backend = RW_BACKEND_URING;
        else
            rw_log_warn("io_uring is not available here; using epoll");
    }
    raise_nofile(cfg->max_conns);
    if (rw_control_block_signals() != 0) {
        rw_log_error("cannot block signals");
        rw_snapshot_unref(snap);
        return 1;
    }
    const char *upath = rw_control_upgrade_path(cfg);
    inherited in = {.admin_fd = -1, .metrics_fd = -1, .upgrade_fd = -1};
    pid_t old_pid = 0;
    if (upgrade) {
        /* The config is loaded and checked: only now disturb the old one. */
        rw_ho_sock *socks = NULL;
        size_t nsocks = 0;
        if (upath == NULL) {
            rw_log_error(
                "--upgrade: no upgrade socket to take over from (--upgrade-socket PATH or upgrade_socket:)");
            rw_snapshot_unref(snap);
            return 1;
        }
        ho_conn = rw_handover_connect(upath, &old_pid, err, sizeof(err));
        if (ho_conn < 0) {
            rw_log_error("--upgrade: %s; nothing changed", err);
            rw_snapshot_unref(snap);
            return 1;
        }
        if (rw_handover_receive(ho_conn, &socks, &nsocks, &old_pid, err, sizeof(err)) != 0 ||
            inherit_match(cfg, upath, socks, nsocks, &in) != 0) {
            if (socks == NULL && err[0] == '\0')
                snprintf(err, sizeof(err), "out of memory");
            free(socks);
            rw_snapshot_unref(snap);
            return start_failed("--upgrade: %s", err);
        }
        free(socks);
        rw_log_info("upgrade: took %zu listening sockets (%zu data) from pid %d", nsocks, in.ndata,
                    (int)old_pid);
    }
    int admin_fd = in.admin_fd, metrics_fd = in.metrics_fd, upgrade_fd = in.upgrade_fd;
    int status = 1;
    rw_server *server = NULL;
    if (cfg->has_admin && admin_fd < 0) {
        admin_fd = rw_net_listen(&cfg->admin, 64, 0);
        if (admin_fd < 0) {
            start_failed("cannot listen on admin address %s: %s", cfg->admin.text, strerror(-admin_fd));
            goto out;
        }
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    if (cfg->has_metrics_listen && metrics_fd < 0) {
        metrics_fd = rw_net_listen(&cfg->metrics_listen, 64, 0);
        if (metrics_fd < 0) {
            start_failed("cannot listen on metrics_listen %s: %s", cfg->metrics_listen.text,
                         strerror(-metrics_fd));
            goto out;
        }
    }
    if (upath != NULL && upgrade_fd < 0) {
        upgrade_fd = rw_handover_listen(upath, err, sizeof(err));
        if (upgrade_fd < 0) {
            start_failed("%s", err);
            goto out;
        }
    }
    /* Discovered instances from the start when the sources answer quickly. */
    rw_discovery_apply(snap);
    rw_discovery_wait_first(2000);
    rw_snapshot *found = rw_discovery_overlay(snap, snap->generation + 1);
    if (found != NULL) {
        rw_snapshot_unref(snap);
        snap = found;
    }
    if (rw_alog_start(nworkers, &cfg->access_log, err, sizeof(err)) != 0) {
        start_failed("%s", err);
        goto out;
    }
    rw_server_opts so = {
        .handler = &rw_proxy_handler,
        .seed = seed,
        .nworkers = nworkers,
        .pin = pin,
        .steering = steering,
        .backend = backend,
        .max_conns = cfg->max_conns,
        .listen = cfg->listen,
        .nlisten = cfg->nlisten,
        .inherit = in.data,
        .ninherit = in.ndata,
    };
    server = rw_server_new(&so, snap, err, sizeof(err));
    in.ndata = 0; /* the server took them, whatever happened */
    if (server == NULL) {
        start_failed("%s", err);
        goto out;
    }
    int rc = rw_server_start(server);
    if (rc != 0) {
        start_failed("cannot start workers: %s", strerror(-rc));
        goto out;
    }
    char addrs[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < cfg->nlisten && off < sizeof(addrs) - 1; i++)
        off += (size_t)snprintf(addrs + off, sizeof(addrs) - off, "%s%s", i ? " " : "", cfg->listen[i].text);
    rw_log_info("ringway %s: %d workers (%s) on %s (%s%s%s), config %s; listening on %s%s%s", RW_VERSION,
                nworkers, cpus.why, backend == RW_BACKEND_URING ? "io_uring" : "epoll",
                pin ? "pinned" : "not pinned", cfg->io == RW_IO_AUTO ? ", auto" : "",
                steering == RW_STEER_CPU ? ", reuseport cpu steering" : "", cfg->source, addrs,
                cfg->has_admin ? "; admin on " : "", cfg->has_admin ? cfg->admin.text : "");
    if (ho_conn >= 0) {
        /* Ready when every worker runs its loop (accepting on the shared
         * sockets, next to the old process); then the old one stops. */
        uint64_t until = rw_mono_ms() + 10000;
        while (!rw_server_ready(server) && !rw_server_failed(server) && rw_mono_ms() < until)
            poll(NULL, 0, 5);
        if (!rw_server_ready(server)) {
            start_failed("--upgrade: the workers did not start");
            goto out;
        }
        if (rw_handover_ready(ho_conn, upgrade_fd >= 0 && in.upgrade_fd == upgrade_fd, 5000, err,
                              sizeof(err)) == 0)
            rw_log_info("upgrade: serving; the old process (pid %d) drains and exits", (int)old_pid);
        else
            rw_log_warn("upgrade: serving, but %s", err);
        close(ho_conn);
        ho_conn = -1;
    }
    rw_control_opts co = {
        .server = server,
        .snap = snap,
        .config_path = config_path,
        .overrides = &ov,
        .admin_fd = admin_fd,
        .metrics_fd = metrics_fd,
        .watch_config = watch_config,
        .upgrade_fd = upgrade_fd,
        .upgrade_path = upath,
        .exe = self_exe(),
        .argv = argv,
    };
    rw_rl_global_apply(cfg);
    rw_health_apply(snap);
    status = rw_control_run(&co);
    snap = co.snap;
    admin_fd = co.admin_fd;
    metrics_fd = co.metrics_fd;
    upgrade_fd = co.upgrade_fd;
    if (upgrade_fd >= 0)
        rw_handover_unlink(upath, upgrade_fd); /* not handed over: nobody else uses the file */
out:
    rw_server_free(server);
    rw_snapshot_unref(snap);
    rw_control_shutdown();
    for (size_t i = 0; i < in.ndata; i++)
        close(in.data[i].fd);
    free(in.data);
    if (admin_fd >= 0)
        close(admin_fd);
    if (metrics_fd >= 0)
        close(metrics_fd);
    if (upgrade_fd >= 0)
        close(upgrade_fd);
    if (ho_conn >= 0)
        close(ho_conn);
    if (server != NULL)
        rw_log_info("stopped");
    return status;
}
