/* test_handover.c - zero-drop upgrades (`ringway --upgrade`, SIGUSR2): the
 * new process takes the listening sockets over the upgrade socket, the old
 * one drains and exits; clients see no failure. A bad new config or a new
 * process that cannot start leaves the old one serving. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- a load of its own: threads with raw sockets (the harness's client is
 * not thread-safe). Each thread opens a connection, sends 1..16 requests on
 * it (following Connection: close), closes, and again. ---- */

typedef struct load {
    int port;
    atomic_bool stop;
    atomic_long ok, failed, conns;
    char why[256];
    pthread_mutex_t mu;
} load_t;

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One GET on fd; 0: 200 and the connection stays, 1: 200 and the server
 * closes it, -1: failure (what in why). */
static int raw_get(int fd, char *why, size_t cap)
{
    static const char req[] = "GET /load HTTP/1.1\r\nHost: t\r\n\r\n";
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
        snprintf(why, cap, "send: %s", strerror(errno));
        return -1;
    }
    char buf[4096];
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0) {
            snprintf(why, cap, "recv head: %s", n == 0 ? "EOF" : strerror(errno));
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL && len == sizeof(buf) - 1) {
            snprintf(why, cap, "head too long");
            return -1;
        }
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        snprintf(why, cap, "status: %.40s", buf);
        return -1;
    }
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl == NULL || cl > end) {
        snprintf(why, cap, "no Content-Length");
        return -1;
    }
    size_t body = strtoul(cl + 17, NULL, 10);
    bool close_after = strcasestr(buf, "\r\nconnection: close") != NULL;
    size_t have = len - (size_t)(end + 4 - buf);
    while (have < body) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            snprintf(why, cap, "recv body: %s", n == 0 ? "EOF" : strerror(errno));
            return -1;
        }
        have += (size_t)n;
    }
    return close_after ? 1 : 0;
}

static void *load_thread(void *arg)
{
    load_t *l = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&l->stop)) {
        int fd = raw_connect(l->port);
        char why[200] = "connect failed";
        int per = 1 + (int)(rand_r(&seed) % 16);
        bool bad = fd < 0;
        atomic_fetch_add(&l->conns, 1);
        for (int i = 0; i < per && !bad && !atomic_load(&l->stop); i++) {
            int rc = raw_get(fd, why, sizeof(why));
            if (rc < 0)
                bad = true;
            else
                atomic_fetch_add(&l->ok, 1);
            if (rc != 0)
                break;
        }
        if (bad) {
            atomic_fetch_add(&l->failed, 1);
            pthread_mutex_lock(&l->mu);
            if (l->why[0] == '\0')
                snprintf(l->why, sizeof(l->why), "%s", why);
            pthread_mutex_unlock(&l->mu);
        }
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

#define NLOAD 6

typedef struct load_run {
    load_t l;
    pthread_t th[NLOAD];
} load_run;

static load_run *load_start(int port)
{
    load_run *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->l.port = port;
    pthread_mutex_init(&r->l.mu, NULL);
    for (int i = 0; i < NLOAD; i++)
        cr_assert_eq(pthread_create(&r->th[i], NULL, load_thread, &r->l), 0);
    return r;
}

static void load_stop(load_run *r)
{
    atomic_store(&r->l.stop, true);
    for (int i = 0; i < NLOAD; i++)
        pthread_join(r->th[i], NULL);
}

/* ---- helpers ---- */

static char *sock_path(void)
{
    return h_fmt("%s/upgrade.sock", h_tmpdir());
}

static h_proxy *start_old(const char *config, int workers, const char *sock)
{
    return h_proxy_start(&(h_proxy_opts){
        .config = config, .workers = workers, .drain = "5s", .args = {"--upgrade-socket", sock, NULL}});
}

/* Starts `ringway --upgrade` on old's port (not waiting: the port answers already). */
static h_proxy *start_new(const h_proxy *old, const char *config, int workers, const char *sock,
                          bool expect_errors)
{
    h_proxy_opts o = {
        .config = config,
        .workers = workers,
        .drain = "5s",
        .no_listen = true,
        .expect_errors = expect_errors,
        .args = {"--listen", h_fmt("127.0.0.1:%d", old->port), "--upgrade-socket", sock, "--upgrade", NULL}};
    h_proxy *p = h_proxy_start(&o);
    p->port = old->port;
    return p;
}

static void upgrade_under_load(int old_workers, int new_workers)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    char *sock = sock_path();
    char *cfg = h_basic_config(u, NULL, NULL);
    h_proxy *old = start_old(cfg, old_workers, sock);
    load_run *r = load_start(old->port);
    h_sleep_ms(1200);
    h_proxy *nw = start_new(old, cfg, new_workers, sock, false);
    cr_assert(h_proxy_wait_log(nw, "upgrade: serving", 1, 10000), "the new process never served:\n%s",
              h_proxy_log(nw));
    int st = h_proxy_wait_exit(old, 8000);
    cr_assert(st != -1, "the old process did not exit after the handover:\n%s", h_proxy_log(old));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the old process exited with %d:\n%s", st,
              h_proxy_log(old));
    cr_assert(h_proxy_log_contains(old, "drained: all connections finished"), "no clean drain:\n%s",
              h_proxy_log(old));
    long before = atomic_load(&r->l.ok);
    h_sleep_ms(1500); /* the new one alone, with every socket the old one had */
    load_stop(r);
    cr_assert_eq(atomic_load(&r->l.failed), 0, "%ld of %ld connections failed (%ld requests ok); first: %s",
                 atomic_load(&r->l.failed), atomic_load(&r->l.conns), atomic_load(&r->l.ok), r->l.why);
    cr_assert(atomic_load(&r->l.ok) > before + 50, "little traffic after the upgrade (%ld -> %ld)", before,
              atomic_load(&r->l.ok));
    /* every new connection lands on a socket someone accepts from */
    for (int i = 0; i < 200; i++) {
        int fd = raw_connect(nw->port);
        char why[200];
        cr_assert(fd >= 0, "connect %d failed", i);
        cr_assert(raw_get(fd, why, sizeof(why)) >= 0, "request %d after the upgrade: %s", i, why);
        close(fd);
    }
    free(r);
}

H_TEST(handover, upgrade_under_load)
{
    upgrade_under_load(2, 2);
}

H_TEST(handover, fewer_workers, .description = "inherited surplus sockets are accepted from")
{
    upgrade_under_load(4, 1);
}

H_TEST(handover, more_workers)
{
    upgrade_under_load(1, 3);
}

H_TEST(handover, bad_config_keeps_old)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    char *sock = sock_path();
    char *cfg = h_basic_config(u, NULL, NULL);
    h_proxy *old = start_old(cfg, 2, sock);
    char *bad = h_write_file("bad.yaml", "routes:\n  - name: r\n    service: no_such_service\n");
    h_cmd *c;
    int code = h_run(&c, 15000, "%s --config %s --listen 127.0.0.1:%d --upgrade-socket %s --upgrade --io %s",
                     h_binary(), bad, old->port, sock, h_io());
    cr_assert_eq(code, 1, "a bad config: exit %d\n%s", code, c->err);
    cr_assert(strstr(c->err, "no_such_service") != NULL, "no reason given:\n%s", c->err);
    cr_assert(h_proxy_wait_exit(old, 300) == -1, "the old process exited");
    cr_assert(!h_proxy_log_contains(old, "draining"), "the old process drains:\n%s", h_proxy_log(old));
    h_resp r;
    h_get(old->port, "/x", &r);
    cr_assert_eq(r.status, 200);

    /* a config that loads but cannot start (an address in use): the new one
     * gives up after it took the sockets, and says so to the old one */
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    cr_assert(bind(busy, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(busy, 1) == 0);
    cr_assert(getsockname(busy, (struct sockaddr *)&sa, &sl) == 0);
    code = h_run(
        &c, 15000,
        "%s --config %s --listen 127.0.0.1:%d --listen 127.0.0.1:%d --upgrade-socket %s --upgrade --io %s",
        h_binary(), old->config_path, old->port, ntohs(sa.sin_port), sock, h_io());
    close(busy);
    cr_assert_eq(code, 1, "an address in use: exit %d\n%s", code, c->err);
    cr_assert(strstr(c->err, "upgrade failed: the old process keeps serving") != NULL, "%s", c->err);
    cr_assert(h_proxy_wait_log(old, "gave up: cannot listen on", 1, 5000), "the old one was not told:\n%s",
              h_proxy_log(old));
    old->expect_errors = true; /* it logged the failed upgrade */
    h_get(old->port, "/x", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(h_proxy_wait_exit(old, 300) == -1, "the old process exited");
    /* and a good upgrade still works afterwards */
    start_new(old, cfg, 1, sock, false);
    cr_assert(h_proxy_wait_exit(old, 8000) != -1, "the old process did not hand over:\n%s", h_proxy_log(old));
    h_get(old->port, "/x", &r);
    cr_assert_eq(r.status, 200);
}

/* The pid of the process SIGUSR2 started, from the old one's log. */
static pid_t spawned_pid(const h_proxy *p)
{
    const char *s = strstr(h_proxy_log(p), "--upgrade as pid ");
    return s ? (pid_t)strtol(s + 17, NULL, 10) : 0;
}

static void kill_spawned(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
        h_sleep_ms(50);
    if (kill(pid, 0) == 0)
        kill(pid, SIGKILL);
}

H_TEST(handover, sigusr2_upgrades)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    char *sock = sock_path();
    h_proxy *old = start_old(h_basic_config(u, NULL, NULL), 2, sock);
    load_run *r = load_start(old->port);
    h_sleep_ms(500);
    h_proxy_signal(old, SIGUSR2);
    int st = h_proxy_wait_exit(old, 10000);
    pid_t child = spawned_pid(old);
    load_stop(r);
    cr_assert(child > 0, "no child started:\n%s", h_proxy_log(old));
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the old process did not drain and exit (%d):\n%s", st, h_proxy_log(old));
    bool serving = h_proxy_wait_log(old, "upgrade: serving", 1, 2000); /* the child logs to the same file */
    h_resp rr;
    h_get(old->port, "/x", &rr);
    kill_spawned(child);
    cr_assert(serving, "the child never said it serves:\n%s", h_proxy_log(old));
    cr_assert_eq(rr.status, 200);
    cr_assert_eq(atomic_load(&r->l.failed), 0, "%ld failed; first: %s", atomic_load(&r->l.failed), r->l.why);
    free(r);
}

H_TEST(handover, sigusr2_bad_config_keeps_old)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    char *sock = sock_path();
    h_proxy *old = start_old(h_basic_config(u, NULL, NULL), 1, sock);
    old->expect_errors = true;
    h_proxy_write_config(old, "routes: [oops\n");
    h_proxy_signal(old, SIGUSR2);
    cr_assert(h_proxy_wait_log(old, "exited with status 1 before taking over; still serving", 1, 10000),
              "the old process did not learn of the failure:\n%s", h_proxy_log(old));
    cr_assert(h_proxy_wait_exit(old, 200) == -1, "the old process exited");
    h_resp r;
    h_get(old->port, "/x", &r);
    cr_assert_eq(r.status, 200);
}

H_TEST(handover, socket_file_checks)
{
    char *sock = sock_path();
    /* a stale socket file (nobody listens) is replaced */
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    cr_assert(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    close(s);
    const char *cfg = "routes:\n  - paths: [{prefix: /}]\n    respond: {status: 200, body: ok}\n";
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = cfg, .args = {"--upgrade-socket", sock, NULL}});
    struct stat st;
    cr_assert(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0077, 0, "group or others may use it: mode %o", st.st_mode & 0777);
    /* a live one is refused to a second ringway started without --upgrade */
    h_cmd *c;
    int code = h_run(&c, 10000, "%s --listen 127.0.0.1:%d --upgrade-socket %s --io %s", h_binary(),
                     h_free_port(), sock, h_io());
    cr_assert_eq(code, 1, "exit %d: %s", code, c->err);
    cr_assert(strstr(c->err, "another ringway listens there") != NULL, "%s", c->err);
    /* another uid cannot connect (0600), and the peer check would refuse it */
    if (geteuid() == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(2);
            int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
            _exit(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 1 : 0);
        }
        int ws;
        cr_assert_eq(waitpid(pid, &ws, 0), pid);
        cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "another uid could connect (%d)", ws);
    }
    cr_assert(p->running);
    h_proxy_stop(p, 0);
    cr_assert(stat(sock, &st) != 0, "the socket file stayed after the exit");
}
