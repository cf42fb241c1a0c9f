/* harness.c - see harness.h. */
#include "harness.h"

#include <criterion/hooks.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64
#define MAX_OBJS 256

/* Everything a test process started or allocated, so cleanup can undo it.
 * One test per process (Criterion forks), so plain globals are enough. */
static struct {
    bool ready;
    char tmpdir[128];
    pid_t pids[MAX_PROCS]; /* every child still to reap */
    int npids;
    pid_t pgroups[MAX_PROCS]; /* process groups of commands */
    int npgroups;
    h_proxy *proxies[MAX_PROCS];
    int nproxies;
    h_conn *conns[MAX_OBJS];
    int nconns;
    void **allocs;
    size_t nallocs, capallocs;
    int file_serial;
} G;

static bool g_atexit_set;

/* ---- memory owned by the test -------------------------------------------- */

static void *track(void *p)
{
    if (!p) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    if (G.nallocs == G.capallocs) {
        size_t ncap = G.capallocs ? G.capallocs * 2 : 64;
        void **na = realloc(G.allocs, ncap * sizeof *na);
        if (!na)
            abort();
        G.allocs = na;
        G.capallocs = ncap;
    }
    G.allocs[G.nallocs++] = p;
    return p;
}

static void *h_zalloc(size_t n)
{
    return track(calloc(1, n));
}

static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) == -1)
        s = NULL;
    return track(s);
}

char *h_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(fmt, ap);
    va_end(ap);
    return s;
}

char *h_repeat(size_t n, char ch)
{
    char *s = track(malloc(n + 1));
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

const char *h_tmpdir(void)
{
    return G.tmpdir;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap *= 2;
            char *ns = realloc(s, cap);
            if (!ns) {
                free(s);
                fclose(f);
                return NULL;
            }
            s = ns;
        }
        size_t r = fread(s + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

char *h_write_file(const char *name, const char *text)
{
    char *path = h_fmt("%s/%s", G.tmpdir, name);
    char *tmp = h_fmt("%s.tmp%d", path, G.file_serial++);
    FILE *f = fopen(tmp, "wb");
    cr_assert(f != NULL, "cannot write %s: %s", tmp, strerror(errno));
    fwrite(text, 1, strlen(text), f);
    cr_assert(fclose(f) == 0, "cannot write %s", tmp);
    cr_assert(rename(tmp, path) == 0, "rename %s: %s", tmp, strerror(errno));
    return path;
}

const char *h_io(void)
{
    const char *io = getenv("RW_TEST_IO");
    return io && *io ? io : "auto";
}

const char *h_binary(void)
{
    const char *b = getenv("RW_BINARY");
    cr_assert(b && *b, "RW_BINARY is not set (run through meson test)");
    cr_assert(access(b, X_OK) == 0, "RW_BINARY=%s is not executable: %s", b, strerror(errno));
    return b;
}

static const char *upstream_binary(void)
{
    const char *b = getenv("RW_UPSTREAM");
    cr_assert(b && *b, "RW_UPSTREAM is not set (run through meson test)");
    cr_assert(access(b, X_OK) == 0, "RW_UPSTREAM=%s is not executable: %s", b, strerror(errno));
    return b;
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd != -1, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

bool h_have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

unsigned char h_pattern_byte(uint64_t i)
{
    return (unsigned char)((uint32_t)(i * 2654435761u) >> 24);
}

uint64_t h_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t h_pattern_fnv(uint64_t n)
{
    uint64_t h = H_FNV_INIT;
    for (uint64_t i = 0; i < n; i++) {
        h ^= h_pattern_byte(i);
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- processes ---------------------------------------------------------- */

static void kill_everything(void)
{
    for (int i = 0; i < G.npgroups; i++)
        kill(-G.pgroups[i], SIGKILL);
    for (int i = 0; i < G.npids; i++) {
        kill(G.pids[i], SIGKILL);
        waitpid(G.pids[i], NULL, 0);
    }
    G.npids = 0;
    G.npgroups = 0;
}

static void forget_pid(pid_t pid)
{
    for (int i = 0; i < G.npids; i++)
        if (G.pids[i] == pid) {
            G.pids[i] = G.pids[--G.npids];
            return;
        }
}

static void child_prepare(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
}

static int open_out(const char *path)
{
    return path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                : open("/dev/null", O_WRONLY | O_CLOEXEC);
}

/* Forks and execs argv with stdout to out_fd (or out_path) and stderr to err_path. */
static pid_t spawn(char *const argv[], int out_fd, const char *out_path, const char *err_path, bool own_group)
{
    pid_t parent = getpid();
    cr_assert(G.npids < MAX_PROCS, "too many child processes");
    pid_t pid = fork();
    cr_assert(pid != -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (own_group)
            setpgid(0, 0);
        child_prepare(parent);
        int o = out_fd >= 0 ? out_fd : open_out(out_path);
        int e = open_out(err_path);
        if (o == -1 || e == -1)
            _exit(126);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull != -1)
            dup2(devnull, STDIN_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    G.pids[G.npids++] = pid;
    if (own_group) {
        setpgid(pid, pid);
        G.pgroups[G.npgroups++] = pid;
    }
    return pid;
}

/* waitpid with a timeout; returns the status, or -1 when still running. */
static int wait_pid(pid_t pid, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            forget_pid(pid);
            return st;
        }
        if (r == -1 && errno != EINTR) {
            forget_pid(pid);
            return 0;
        }
        if (h_now_ms() >= deadline)
            return -1;
        h_sleep_ms(5);
    }
}

static int status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* ---- setup and teardown -------------------------------------------------- */

static bool uring_available(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0)
        return false;
    close((int)fd);
    return true;
}

/* Without io_uring the whole uring suite is skipped: exit 77 before any test
 * runs, which meson reports as SKIP (each test would skip anyway, but then the
 * run would count as passed). */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    if (strcmp(h_io(), "uring") == 0 && !uring_available()) {
        fprintf(stderr, "io_uring is not available here (io_uring_setup: %s): skipping\n", strerror(errno));
        exit(77);
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void at_exit_kill(void)
{
    kill_everything();
}

void h_setup(void)
{
    memset(&G, 0, sizeof G);
    signal(SIGPIPE, SIG_IGN);
    if (!g_atexit_set) {
        atexit(at_exit_kill);
        g_atexit_set = true;
    }
    if (strcmp(h_io(), "uring") == 0 && !uring_available())
        cr_skip_test("io_uring is not available here (io_uring_setup: %s)", strerror(errno));
    snprintf(G.tmpdir, sizeof G.tmpdir, "/tmp/rwtest.XXXXXX");
    if (!mkdtemp(G.tmpdir))
        cr_skip_test("mkdtemp: %s", strerror(errno));
    G.ready = true;
}

void h_cleanup(void)
{
    for (int i = 0; i < G.nconns; i++)
        if (G.conns[i]->fd >= 0) {
            close(G.conns[i]->fd);
            G.conns[i]->fd = -1;
        }
    kill_everything();
    if (G.ready && G.tmpdir[0]) {
        const char *keep = getenv("RW_TEST_KEEP");
        if (keep && *keep)
            fprintf(stderr, "harness: kept %s\n", G.tmpdir);
        else
            nftw(G.tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    for (int i = 0; i < G.nconns; i++)
        free(G.conns[i]->buf);
    for (size_t i = 0; i < G.nallocs; i++)
        free(G.allocs[i]);
    free(G.allocs);
    memset(&G, 0, sizeof G);
}

/* The last n bytes of the proxy's log, for failure messages. */
static char *log_tail(const h_proxy *p, size_t n)
{
    char *all = h_proxy_log(p);
    size_t l = strlen(all);
    return l > n ? all + l - n : all;
}

void h_done(void)
{
    for (int i = 0; i < G.nconns; i++)
        if (G.conns[i]->fd >= 0) {
            close(G.conns[i]->fd);
            G.conns[i]->fd = -1;
        }
    for (int i = 0; i < G.nproxies; i++) {
        h_proxy *p = G.proxies[i];
        if (p->running) {
            int64_t t0 = h_now_ms();
            int st = h_proxy_stop(p, 0);
            cr_assert(st != -1, "ringway (pid %d) did not exit within %d ms of SIGTERM\nlog tail:\n%s",
                      (int)p->pid, p->drain_ms + 2000, log_tail(p, 3000));
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "ringway exited with status %d (after SIGTERM, %lld ms)\nlog tail:\n%s",
                      status_code(st), (long long)(h_now_ms() - t0), log_tail(p, 3000));
        }
        if (!p->expect_errors) {
            char *errs = h_proxy_log_errors(p);
            cr_assert(errs == NULL, "ringway logged errors:\n%s", errs);
        }
    }
}

/* ---- rw_upstream -------------------------------------------------------- */

/* Spawns rw_upstream for u (u->name) listening on listen, with extra args;
 * sets u->pid and u->port. */
static void upstream_spawn(h_upstream *u, const char *listen, char **extra, int nextra)
{
    const char *bin = upstream_binary();
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--listen";
    argv[n++] = (char *)listen;
    argv[n++] = "--name";
    argv[n++] = u->name;
    for (int i = 0; i < nextra && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    int pfd[2];
    cr_assert(pipe2(pfd, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    char *err_path = h_fmt("%s/upstream-%s.log", G.tmpdir, u->name);
    u->pid = spawn(argv, pfd[1], NULL, err_path, false);
    close(pfd[1]);

    char line[64];
    size_t got = 0;
    int64_t deadline = h_now_ms() + 5000;
    while (got < sizeof line - 1 && (got == 0 || line[got - 1] != '\n')) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int left = (int)(deadline - h_now_ms());
        cr_assert(left > 0 && poll(&p, 1, left) == 1, "rw_upstream %s did not print its port", u->name);
        ssize_t r = read(pfd[0], line + got, sizeof line - 1 - got);
        cr_assert(r > 0, "rw_upstream %s exited before printing its port", u->name);
        got += (size_t)r;
    }
    line[got] = '\0';
    close(pfd[0]);
    cr_assert(sscanf(line, "PORT %d", &u->port) == 1 && u->port > 0, "rw_upstream said: %s", line);
}

h_upstream *h_upstream_start(const char *name, ...)
{
    char *extra[24];
    int n = 0;
    va_list ap;
    va_start(ap, name);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 24)
        extra[n++] = (char *)a;
    va_end(ap);
    h_upstream *u = h_zalloc(sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    upstream_spawn(u, "127.0.0.1:0", extra, n);
    return u;
}

void h_upstream_restart(h_upstream *u)
{
    cr_assert(u->pid <= 0, "h_upstream_restart: %s is still running", u->name);
    upstream_spawn(u, h_fmt("127.0.0.1:%d", u->port), NULL, 0);
}

/* Closes a connection no test code holds (h_get's own) and frees its
 * buffer: a test that polls with thousands of GETs must neither fill the
 * tracked list nor leak the buffers of connections past it. */
static void conn_free(h_conn *c)
{
    h_close(c);
    for (int i = G.nconns; i-- > 0;) {
        if (G.conns[i] == c) {
            G.conns[i] = G.conns[--G.nconns];
            break;
        }
    }
    free(c->buf); /* c itself is tracked (h_zalloc): freed at cleanup */
    c->buf = NULL;
}
static int raw_get(int port, const char *target, h_resp *r)
{
    h_conn *c = h_try_connect("127.0.0.1", port);
    if (!c)
        return H_EIO;
    c->timeout_ms = 5000;
    int rc = h_request(c, "GET", target, "Connection: close\r\n", NULL, 0, r);
    conn_free(c);
    return rc;
}

h_stats h_upstream_stats(const h_upstream *u)
{
    h_resp r;
    int rc = raw_get(u->port, "/stats", &r);
    cr_assert(rc == H_OK && r.status == 200, "GET /stats on upstream %s failed (%d)", u->name, rc);
    h_stats s = {
        .connections = h_json_long(r.body, "connections"),
        .requests = h_json_long(r.body, "requests"),
        .completed = h_json_long(r.body, "completed"),
        .accepted = h_json_long(r.body, "accepted"),
        .health = h_json_long(r.body, "health"),
    };
    h_resp_free(&r);
    return s;
}

void h_upstream_reset(const h_upstream *u)
{
    h_resp r;
    int rc = raw_get(u->port, "/stats/reset", &r);
    cr_assert(rc == H_OK && r.status == 200, "GET /stats/reset on upstream %s failed", u->name);
    h_resp_free(&r);
}

void h_upstream_kill(h_upstream *u)
{
    if (u->pid > 0) {
        kill(u->pid, SIGKILL);
        waitpid(u->pid, NULL, 0);
        forget_pid(u->pid);
        u->pid = 0;
    }
}

/* ---- redis-server -------------------------------------------------------- */

void h_redis_start(h_redis *r, int port)
{
    r->port = port ? port : h_free_port();
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", r->port);
    char *log = h_fmt("%s/redis-%d.log", G.tmpdir, r->port);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *f = freopen(log, "a", stdout);
        (void)f;
        dup2(STDOUT_FILENO, STDERR_FILENO);
        execlp("redis-server", "redis-server", "--port", portbuf, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 100; i++) { /* until it accepts */
        h_conn *c = h_try_connect("127.0.0.1", r->port);
        if (c != NULL) {
            h_close(c);
            return;
        }
        h_sleep_ms(50);
    }
    cr_assert_fail("redis-server did not start on %d (is it installed?)", r->port);
}

void h_redis_stop(h_redis *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

bool h_have_redis(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

/* ---- ringway ------------------------------------------------------------ */

static int parse_duration_ms(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (strcmp(end, "ms") == 0 || *end == '\0')
        return (int)v;
    if (strcmp(end, "s") == 0)
        return (int)(v * 1000);
    if (strcmp(end, "m") == 0)
        return (int)(v * 60000);
    return 30000;
}

char *h_proxy_log(const h_proxy *p)
{
    char *s = read_file(p->log_path, NULL);
    return track(s ? s : strdup(""));
}

bool h_proxy_log_contains(const h_proxy *p, const char *needle)
{
    return strstr(h_proxy_log(p), needle) != NULL;
}

int h_proxy_log_count(const h_proxy *p, const char *needle)
{
    int n = 0;
    for (const char *at = h_proxy_log(p); (at = strstr(at, needle)) != NULL; at += strlen(needle))
        n++;
    return n;
}

bool h_proxy_wait_log(const h_proxy *p, const char *needle, int count, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        if (h_proxy_log_count(p, needle) >= count)
            return true;
        h_sleep_ms(10);
    } while (h_now_ms() < deadline);
    return false;
}

char *h_proxy_log_errors(const h_proxy *p)
{
    char *log = h_proxy_log(p);
    char *out = NULL;
    size_t outlen = 0;
    FILE *m = open_memstream(&out, &outlen);
    bool any = false;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, " error ") || strstr(line, "[error]")) {
            fprintf(m, "  %s\n", line);
            any = true;
        }
    }
    fclose(m);
    track(out);
    return any ? out : NULL;
}

long h_proc_status(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = read_file(path, NULL);
    if (!s)
        return -1;
    long v = -1;
    size_t fl = strlen(field);
    for (char *line = s; line && *line;) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
            break;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    free(s);
    return v;
}

void h_proxy_write_config(h_proxy *p, const char *config)
{
    char *path = h_write_file("ringway.yaml", config);
    if (!p->config_path)
        p->config_path = path;
}

void h_proxy_signal(h_proxy *p, int sig)
{
    cr_assert(p->running, "ringway is not running");
    kill(p->pid, sig);
}

int h_proxy_wait_exit(h_proxy *p, int timeout_ms)
{
    if (!p->running)
        return p->exit_status;
    int st = wait_pid(p->pid, timeout_ms);
    if (st != -1) {
        p->running = false;
        p->exit_status = st;
    }
    return st;
}

int h_proxy_stop(h_proxy *p, int timeout_ms)
{
    if (!p->running)
        return p->exit_status;
    if (timeout_ms <= 0)
        timeout_ms = p->drain_ms + 2000;
    kill(p->pid, SIGTERM);
    int st = h_proxy_wait_exit(p, timeout_ms);
    if (st == -1) {
        kill(p->pid, SIGKILL);
        wait_pid(p->pid, 5000);
        p->running = false;
        p->exit_status = -1;
    }
    return st;
}

bool h_wait_status(int port, const char *path, int want_status, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        h_conn *c = h_try_connect("127.0.0.1", port);
        if (c) {
            c->timeout_ms = 1000;
            h_resp r;
            int rc = h_request(c, "GET", path, "Connection: close\r\n", NULL, 0, &r);
            conn_free(c);
            if (rc == H_OK) {
                int st = r.status;
                h_resp_free(&r);
                if (st == want_status)
                    return true;
            }
        }
        h_sleep_ms(10);
    } while (h_now_ms() < deadline);
    return false;
}

h_proxy *h_proxy_start(const h_proxy_opts *o)
{
    const char *bin = h_binary();
    h_proxy *p = h_zalloc(sizeof *p);
    cr_assert(G.nproxies < MAX_PROCS, "too many proxies");
    G.proxies[G.nproxies++] = p;
    p->expect_errors = o->expect_errors;
    if (o->config)
        p->config_path = h_write_file("ringway.yaml", o->config);
    const char *drain = o->drain ? o->drain : "2s";
    p->drain_ms = *drain ? parse_duration_ms(drain) : 30000;

    for (int attempt = 0; attempt < 3; attempt++) {
        char *argv[64];
        int n = 0;
        argv[n++] = (char *)bin;
        if (p->config_path) {
            argv[n++] = "--config";
            argv[n++] = p->config_path;
        }
        p->port = 0;
        if (!o->no_listen) {
            p->port = h_free_port();
            argv[n++] = "--listen";
            argv[n++] = h_fmt("127.0.0.1:%d", p->port);
        }
        if (o->workers >= 0) {
            argv[n++] = "--workers";
            argv[n++] = h_fmt("%d", o->workers ? o->workers : 1);
        }
        if (!o->no_io) {
            argv[n++] = "--io";
            argv[n++] = (char *)h_io();
        }
        argv[n++] = "--log-level";
        argv[n++] = (char *)(o->log_level ? o->log_level : "info");
        if (*drain) {
            argv[n++] = "--drain-timeout";
            argv[n++] = (char *)drain;
        }
        for (int i = 0; i < 16 && o->args[i]; i++)
            argv[n++] = (char *)o->args[i];
        argv[n] = NULL;

        p->log_path = h_fmt("%s/ringway-%d.log", G.tmpdir, G.nproxies);
        p->out_path = h_fmt("%s/ringway-%d.out", G.tmpdir, G.nproxies);
        p->pid = spawn(argv, -1, p->out_path, p->log_path, false);
        p->running = true;
        if (o->no_wait || o->no_listen)
            return p;

        int64_t deadline = h_now_ms() + 10000;
        bool exited = false;
        while (h_now_ms() < deadline) {
            if (h_proxy_wait_exit(p, 0) != -1) {
                exited = true;
                break;
            }
            if (h_wait_status(p->port, "/health", 200, 1))
                return p;
            if (!o->expect_errors && h_proxy_log_errors(p)) {
                h_proxy_stop(p, 1000);
                cr_assert_fail("ringway logged errors while starting (port %d)\nlog:\n%s", p->port,
                               log_tail(p, 4000));
            }
            h_sleep_ms(10);
        }
        if (exited && attempt < 2 && strstr(h_proxy_log(p), "in use")) {
            continue; /* lost a race for the port: try another */
        }
        if (exited)
            cr_assert_fail("ringway exited (status %d) before answering /health\nlog:\n%s",
                           status_code(p->exit_status), log_tail(p, 4000));
        cr_assert_fail("ringway did not answer GET /health 200 on port %d within 10 s\nlog:\n%s", p->port,
                       log_tail(p, 4000));
    }
    cr_assert_fail("ringway could not get a free port");
    return NULL;
}

h_proxy *h_proxy_run(const char *config)
{
    return h_proxy_start(&(h_proxy_opts){.config = config});
}

char *h_basic_config(const h_upstream *u, const char *http_extra, const char *service_extra)
{
    return h_fmt("services:\n"
                 "  - name: svc\n"
                 "%s"
                 "    instances:\n"
                 "      - {address: \"127.0.0.1:%d\"}\n"
                 "%s%s"
                 "routes:\n"
                 "  - name: all\n"
                 "    paths: [{prefix: /}]\n"
                 "    service: svc\n",
                 service_extra ? service_extra : "", u->port, http_extra ? "http:\n" : "",
                 http_extra ? http_extra : "");
}

h_proxy *h_start_basic(h_upstream **up, const char *http_extra, const char *service_extra)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    if (up)
        *up = u;
    return h_proxy_run(h_basic_config(u, http_extra, service_extra));
}

/* ---- raw HTTP client ---------------------------------------------------- */

h_conn *h_try_connect(const char *host, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof *s6;
    } else {
        return NULL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&ss, sl) == -1) {
        if (errno != EINPROGRESS) {
            close(fd);
            return NULL;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&p, 1, 5000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1 || err != 0) {
            close(fd);
            return NULL;
        }
    }
    h_conn *c = h_zalloc(sizeof *c);
    c->fd = fd;
    c->timeout_ms = 10000;
    c->cap = 65536;
    c->buf = malloc(c->cap);
    cr_assert(c->buf != NULL);
    if (G.nconns < MAX_OBJS)
        G.conns[G.nconns++] = c;
    return c;
}

h_conn *h_connect_host(const char *host, int port)
{
    h_conn *c = h_try_connect(host, port);
    cr_assert(c != NULL, "cannot connect to %s port %d: %s", host, port, strerror(errno));
    return c;
}

h_conn *h_connect(int port)
{
    return h_connect_host("127.0.0.1", port);
}

void h_close(h_conn *c)
{
    if (c && c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

int h_send(h_conn *c, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        if (c->fd < 0)
            return H_EIO;
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
            continue;
        }
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1 && errno == EAGAIN) {
            struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
            int pr = poll(&pf, 1, c->timeout_ms);
            if (pr == 0)
                return H_ETIMEDOUT;
            continue;
        }
        return H_EIO;
    }
    return H_OK;
}

int h_sends(h_conn *c, const char *s)
{
    return h_send(c, s, strlen(s));
}

int h_sendf(h_conn *c, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return H_EIO;
    int rc = h_send(c, s, (size_t)n);
    free(s);
    return rc;
}

static int send_pattern_range(h_conn *c, uint64_t start, uint64_t n)
{
    char buf[65536];
    while (n > 0) {
        size_t k = n < sizeof buf ? (size_t)n : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = (char)h_pattern_byte(start + i);
        int rc = h_send(c, buf, k);
        if (rc != H_OK)
            return rc;
        start += k;
        n -= k;
    }
    return H_OK;
}

int h_send_pattern(h_conn *c, uint64_t n)
{
    return send_pattern_range(c, 0, n);
}

int h_send_pattern_chunked(h_conn *c, uint64_t n, size_t chunk_size)
{
    uint64_t done = 0;
    while (done < n) {
        size_t k = n - done < chunk_size ? (size_t)(n - done) : chunk_size;
        int rc = h_sendf(c, "%zx\r\n", k);
        if (rc == H_OK)
            rc = send_pattern_range(c, done, k);
        if (rc == H_OK)
            rc = h_sends(c, "\r\n");
        if (rc != H_OK)
            return rc;
        done += k;
    }
    return h_sends(c, "0\r\n\r\n");
}

/* Reads more into c->buf, waiting up to timeout_ms. Returns bytes (> 0), 0 on
 * EOF, H_ETIMEDOUT or H_EIO (a reset counts as EOF for callers that want it). */
static int conn_fill(h_conn *c, int timeout_ms)
{
    if (c->fd < 0)
        return H_EIO;
    if (c->off > 0 && (c->off == c->len || c->len == c->cap)) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == c->cap) {
        size_t ncap = c->cap * 2;
        char *nb = realloc(c->buf, ncap);
        cr_assert(nb != NULL);
        c->buf = nb;
        c->cap = ncap;
    }
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    int pr;
    do
        pr = poll(&pf, 1, timeout_ms);
    while (pr == -1 && errno == EINTR);
    if (pr == 0)
        return H_ETIMEDOUT;
    ssize_t r;
    do
        r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    while (r == -1 && errno == EINTR);
    if (r == 0 || (r == -1 && errno == ECONNRESET)) {
        c->eof = true;
        return 0;
    }
    if (r == -1)
        return errno == EAGAIN ? H_ETIMEDOUT : H_EIO;
    c->len += (size_t)r;
    return (int)r;
}

static size_t avail(const h_conn *c)
{
    return c->len - c->off;
}

bool h_readable(h_conn *c, int timeout_ms)
{
    if (avail(c) > 0 || c->eof)
        return true;
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    return poll(&pf, 1, timeout_ms) == 1;
}

bool h_wait_closed(h_conn *c, int timeout_ms, char **got)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    bool closed = c->eof;
    while (!closed) {
        int left = (int)(deadline - h_now_ms());
        if (left <= 0)
            break;
        int r = conn_fill(c, left);
        if (r == 0 || r == H_EIO)
            closed = true;
        else if (r == H_ETIMEDOUT)
            break;
    }
    if (got) {
        char *s = h_zalloc(avail(c) + 1);
        memcpy(s, c->buf + c->off, avail(c));
        *got = s;
    }
    c->off = c->len;
    return closed;
}

/* Reads one CRLF-terminated line from the buffer (without CRLF) into a fresh
 * string; 0, H_ETIMEDOUT, H_ECLOSED or H_EPARSE. */
static int read_line(h_conn *c, char **line)
{
    for (;;) {
        char *s = c->buf + c->off;
        char *nl = memchr(s, '\n', avail(c));
        if (nl) {
            size_t n = (size_t)(nl - s);
            if (n == 0 || s[n - 1] != '\r')
                return H_EPARSE;
            *line = strndup(s, n - 1);
            c->off += n + 1;
            return H_OK;
        }
        if (avail(c) > 1 << 20)
            return H_EPARSE;
        int r = conn_fill(c, c->timeout_ms);
        if (r == 0)
            return H_ECLOSED;
        if (r < 0)
            return r;
    }
}

typedef struct body_acc {
    FILE *mem;
    char *p;
    size_t len;
    uint64_t fnv;
    size_t total;
} body_acc;

static void acc_add(body_acc *a, const char *p, size_t n)
{
    if (a->mem)
        fwrite(p, 1, n, a->mem);
    a->fnv = h_fnv1a(a->fnv, p, n);
    a->total += n;
}

static int read_n(h_conn *c, uint64_t n, body_acc *a)
{
    while (n > 0) {
        if (avail(c) == 0) {
            int r = conn_fill(c, c->timeout_ms);
            if (r == 0)
                return H_ECLOSED;
            if (r < 0)
                return r;
        }
        size_t k = avail(c) < n ? avail(c) : (size_t)n;
        acc_add(a, c->buf + c->off, k);
        c->off += k;
        n -= k;
    }
    return H_OK;
}

static int parse_head(char *head, h_resp *r)
{
    char *line_end = strstr(head, "\r\n");
    if (!line_end)
        return H_EPARSE;
    *line_end = '\0';
    int st = 0, minor = 0, pos = 0;
    if (sscanf(head, "HTTP/1.%d %3d%n", &minor, &st, &pos) < 2)
        return H_EPARSE;
    r->minor = minor;
    r->status = st;
    const char *reason = head + pos;
    if (*reason == ' ')
        reason++;
    r->reason = track(strdup(reason));
    char *h = line_end + 2;
    r->nheaders = 0;
    while (*h) {
        char *e = strstr(h, "\r\n");
        if (!e)
            break;
        *e = '\0';
        if (*h == '\0')
            break;
        char *colon = strchr(h, ':');
        if (!colon)
            return H_EPARSE;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        char *ve = v + strlen(v);
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            *--ve = '\0';
        if (r->nheaders < sizeof r->headers / sizeof r->headers[0]) {
            r->headers[r->nheaders].name = h;
            r->headers[r->nheaders].value = v;
            r->nheaders++;
        }
        h = e + 2;
    }
    return H_OK;
}

const char *h_hdr(const h_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

int h_hdr_count(const h_resp *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            n++;
    return n;
}

static bool has_token(const char *v, const char *tok)
{
    if (!v)
        return false;
    size_t tl = strlen(tok);
    for (const char *p = v; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0)
            return true;
    }
    return false;
}

int h_read_response(h_conn *c, h_resp *r, int flags)
{
    memset(r, 0, sizeof *r);
    for (;;) {
        /* the head */
        size_t scanned = 0;
        r->first_byte_ms = 0;
        char *end = NULL;
        for (;;) {
            if (avail(c) > 0 && r->first_byte_ms == 0)
                r->first_byte_ms = h_now_ms();
            char *s = c->buf + c->off;
            for (size_t i = scanned > 3 ? scanned - 3 : 0; i + 3 < avail(c); i++)
                if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n') {
                    end = s + i + 4;
                    break;
                }
            if (end)
                break;
            scanned = avail(c);
            if (avail(c) > 1 << 20)
                return H_EPARSE;
            int rd = conn_fill(c, c->timeout_ms);
            if (rd == 0)
                return avail(c) == 0 ? H_ECLOSED : H_EPARSE;
            if (rd < 0)
                return rd;
        }
        size_t hl = (size_t)(end - (c->buf + c->off));
        r->head = track(strndup(c->buf + c->off, hl));
        char *work = track(strndup(c->buf + c->off, hl));
        c->off += hl;
        int rc = parse_head(work, r);
        if (rc != H_OK)
            return rc;
        if (r->status >= 100 && r->status < 200 && r->status != 101) {
            r->interim++;
            if (flags & H_RESP_INTERIM)
                return H_OK;
            int keep = r->interim;
            memset(r, 0, sizeof *r);
            r->interim = keep;
            continue;
        }
        break;
    }

    /* the body */
    body_acc a = {.fnv = H_FNV_INIT};
    if (!(flags & H_RESP_DISCARD))
        a.mem = open_memstream(&a.p, &a.len);
    const char *te = h_hdr(r, "Transfer-Encoding");
    const char *cl = h_hdr(r, "Content-Length");
    int rc = H_OK;
    if ((flags & H_RESP_HEAD) || r->status == 204 || r->status == 304 || r->status < 200) {
        r->framing = H_FRAME_NONE;
    } else if (te && has_token(te, "chunked")) {
        r->framing = H_FRAME_CHUNKED;
        for (;;) {
            char *line = NULL;
            rc = read_line(c, &line);
            if (rc != H_OK)
                break;
            char *e;
            errno = 0;
            unsigned long long sz = strtoull(line, &e, 16);
            bool bad = e == line || errno || (*e != '\0' && *e != ';' && *e != ' ');
            free(line);
            if (bad) {
                rc = H_EPARSE;
                break;
            }
            if (sz == 0) {
                FILE *tm = NULL;
                char *tp = NULL;
                size_t tl = 0;
                for (;;) {
                    rc = read_line(c, &line);
                    if (rc != H_OK)
                        break;
                    bool empty = line[0] == '\0';
                    if (!empty) {
                        if (!tm)
                            tm = open_memstream(&tp, &tl);
                        fprintf(tm, "%s\r\n", line);
                    }
                    free(line);
                    if (empty)
                        break;
                }
                if (tm) {
                    fclose(tm);
                    r->trailers = track(tp);
                }
                break;
            }
            rc = read_n(c, sz, &a);
            if (rc != H_OK)
                break;
            rc = read_line(c, &line);
            if (rc != H_OK)
                break;
            bad = line[0] != '\0';
            free(line);
            if (bad) {
                rc = H_EPARSE;
                break;
            }
        }
    } else if (cl) {
        r->framing = H_FRAME_LENGTH;
        rc = read_n(c, strtoull(cl, NULL, 10), &a);
    } else {
        r->framing = H_FRAME_CLOSE;
        for (;;) {
            if (avail(c) > 0) {
                acc_add(&a, c->buf + c->off, avail(c));
                c->off = c->len;
            }
            int rd = conn_fill(c, c->timeout_ms);
            if (rd == 0)
                break;
            if (rd < 0) {
                rc = rd;
                break;
            }
        }
    }
    if (a.mem) {
        fclose(a.mem);
        r->body = track(a.p);
        r->body_len = a.len;
    } else {
        r->body_len = a.total;
    }
    r->body_fnv = a.fnv;
    return rc;
}

void h_resp_free(h_resp *r)
{
    /* everything in a response is owned by the test and freed at cleanup */
    (void)r;
}

int h_request(h_conn *c, const char *method, const char *target, const char *headers, const void *body,
              size_t body_len, h_resp *r)
{
    const char *hdrs = headers ? headers : "";
    bool has_host = strncasecmp(hdrs, "Host:", 5) == 0 || strcasestr(hdrs, "\nHost:") != NULL;
    const char *clh = body ? h_fmt("Content-Length: %zu\r\n", body_len) : "";
    int rc = h_sendf(c, "%s %s HTTP/1.1\r\n%s%s%s\r\n", method, target, has_host ? "" : "Host: localhost\r\n",
                     hdrs, clh);
    if (rc == H_OK && body && body_len)
        rc = h_send(c, body, body_len);
    if (rc != H_OK) {
        memset(r, 0, sizeof *r);
        return rc;
    }
    return h_read_response(c, r, strcmp(method, "HEAD") == 0 ? H_RESP_HEAD : 0);
}

void h_get(int port, const char *target, h_resp *r)
{
    h_conn *c = h_connect(port);
    int rc = h_request(c, "GET", target, NULL, NULL, 0, r);
    cr_assert(rc == H_OK, "GET %s on port %d: no complete response (%d)", target, port, rc);
    conn_free(c);
}

long h_json_long(const char *json, const char *name)
{
    if (!json)
        return -1;
    char key[128];
    snprintf(key, sizeof key, "\"%s\"", name);
    const char *p = strstr(json, key);
    if (!p)
        return -1;
    p = strchr(p + strlen(key), ':');
    return p ? strtol(p + 1, NULL, 10) : -1;
}

/* ---- commands ----------------------------------------------------------- */

h_cmd *h_cmd_start(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vfmt(fmt, ap);
    va_end(ap);
    h_cmd *c = h_zalloc(sizeof *c);
    c->out_path = h_fmt("%s/cmd-%d.out", G.tmpdir, G.file_serial);
    c->err_path = h_fmt("%s/cmd-%d.err", G.tmpdir, G.file_serial++);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    c->pid = spawn(argv, -1, c->out_path, c->err_path, true);
    return c;
}

int h_cmd_wait(h_cmd *c, int timeout_ms)
{
    int st = wait_pid(c->pid, timeout_ms);
    int code;
    if (st == -1) {
        kill(-c->pid, SIGKILL);
        wait_pid(c->pid, 5000);
        code = -1;
    } else {
        kill(-c->pid, SIGKILL); /* leftovers of the group */
        code = status_code(st);
    }
    c->status = st;
    char *o = read_file(c->out_path, NULL);
    char *e = read_file(c->err_path, NULL);
    c->out = track(o ? o : strdup(""));
    c->err = track(e ? e : strdup(""));
    return code;
}

int h_run(h_cmd **out, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vfmt(fmt, ap);
    va_end(ap);
    h_cmd *c = h_cmd_start("%s", cmd);
    int code = h_cmd_wait(c, timeout_ms);
    if (out)
        *out = c;
    return code;
}

/* ---- reading /echo answers ---------------------------------------------- */

char *h_echoed(const char *echo, const char *name)
{
    const char *end = strstr(echo, "\r\n\r\n");
    size_t nl = strlen(name);
    for (const char *l = strstr(echo, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            return h_fmt("%.*s", (int)(e - v), v);
        }
    }
    return NULL;
}

int h_echoed_count(const char *echo, const char *name)
{
    const char *end = strstr(echo, "\r\n\r\n");
    size_t nl = strlen(name);
    int n = 0;
    for (const char *l = strstr(echo, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':')
            n++;
    return n;
}

bool h_list_has(const char *list, const char *token)
{
    if (!list)
        return false;
    size_t tl = strlen(token);
    for (const char *p = list; (p = strcasestr(p, token)) != NULL; p += tl) {
        bool start = p == list || p[-1] == ',' || p[-1] == ' ';
        bool stop = p[tl] == '\0' || p[tl] == ',' || p[tl] == ' ';
        if (start && stop)
            return true;
    }
    return false;
}
