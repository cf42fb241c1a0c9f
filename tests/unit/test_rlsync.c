/* test_rlsync.c - Redis URL parsing, the Redis client (src/core/redis.c) and
 * the rate-limit sync thread against a real redis-server started on a free
 * port (skipped when none is installed). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ringway/rlsync.h"

#define REDIS_BIN "/usr/bin/redis-server"
#define MAX_SERVERS 4
#define NS_PER_MS 1000000ull

static pid_t servers[MAX_SERVERS];

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void require_redis(void)
{
    if (access(REDIS_BIN, X_OK) != 0)
        cr_skip_test("no %s", REDIS_BIN);
}

/* Connects to 127.0.0.1:port (authenticating when pass is given). */
static redisContext *client(uint16_t port, const char *user, const char *pass)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (pass) {
        redisReply *r = user ? redisCommand(c, "AUTH %s %s", user, pass) : redisCommand(c, "AUTH %s", pass);
        if (r)
            freeReplyObject(r);
    }
    return c;
}

/* Starts redis-server on port with extra arguments (NULL-terminated list);
 * returns its slot in servers[]. Waits until it answers. */
static int redis_start(uint16_t port, const char *const *extra)
{
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    const char *argv[32] = {REDIS_BIN,      "--port", portstr,       "--bind", "127.0.0.1",  "--save", "",
                            "--appendonly", "no",     "--daemonize", "no",     "--loglevel", "warning"};
    int argc = 13;
    for (int i = 0; extra && extra[i] && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    int slot = -1;
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i] == 0) {
            slot = i;
            break;
        }
    cr_assert(slot >= 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(REDIS_BIN, (char *const *)argv);
        _exit(127);
    }
    servers[slot] = pid;
    for (int i = 0; i < 500; i++) {
        redisContext *c = client(port, NULL, NULL);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            redisFree(c);
            if (r) {
                freeReplyObject(r); /* +PONG or -NOAUTH: it answers */
                return slot;
            }
        }
        int st;
        cr_assert(waitpid(pid, &st, WNOHANG) == 0, "redis-server exited early");
        sleep_ms(10);
    }
    cr_assert_fail("redis-server did not come up on port %u", port);
    return -1;
}

static void redis_kill(int slot)
{
    if (slot < 0 || servers[slot] == 0)
        return;
    kill(servers[slot], SIGKILL);
    waitpid(servers[slot], NULL, 0);
    servers[slot] = 0;
}

static void kill_all(void)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        redis_kill(i);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(rlsync, .init = setup, .fini = kill_all, .timeout = 60);

static rw_rl_sync *start_sync(const char *url, uint32_t interval_ms, const char *prefix)
{
    char err[256] = "";
    rw_rl_sync_opts o = {.url = url, .interval_ms = interval_ms, .key_prefix = prefix};
    rw_rl_sync *s = rw_rl_sync_start(&o, err, sizeof(err));
    cr_assert(s != NULL, "start %s: %s", url, err);
    return s;
}

static bool wait_up(rw_rl_sync *s, bool want, unsigned ms)
{
    for (unsigned i = 0; i < ms / 10; i++) {
        if (rw_rl_sync_up(s) == want)
            return true;
        sleep_ms(10);
    }
    return rw_rl_sync_up(s) == want;
}

static uint64_t rounds(const rw_rl_sync *s)
{
    rw_rl_sync_stats st;
    rw_rl_sync_get_stats(s, &st);
    return st.rounds;
}

/* Waits until s completed n more rounds; false on timeout. */
static bool wait_rounds(const rw_rl_sync *s, uint64_t n, unsigned ms)
{
    uint64_t target = rounds(s) + n;
    for (unsigned i = 0; i < ms / 5; i++) {
        if (rounds(s) >= target)
            return true;
        sleep_ms(5);
    }
    return false;
}

static long long redis_get(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    cr_assert(r != NULL);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static long long redis_int(redisContext *c, const char *cmd, const char *key)
{
    redisReply *r = redisCommand(c, "%s %s", cmd, key);
    cr_assert(r != NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1000;
    freeReplyObject(r);
    return v;
}

/* ------------------------------------------------------------------------ */
/* URL parsing */

typedef struct url_case {
    const char *url;
    const char *host;
    unsigned port;
    const char *user;
    const char *password;
    int db;
} url_case;

Test(rlsync, url_good)
{
    static const url_case cases[] = {
        {"redis://localhost", "localhost", 6379, "", "", 0},
        {"redis://localhost/", "localhost", 6379, "", "", 0},
        {"redis://redis:6379/0", "redis", 6379, "", "", 0},
        {"REDIS://10.0.0.5:7000/3", "10.0.0.5", 7000, "", "", 3},
        {"redis://:secret@host:1/15", "host", 1, "", "secret", 15},
        {"redis://secret@host", "host", 6379, "", "secret", 0},
        {"redis://alice:p%40ss%3Aw%2Fd@cache.svc.cluster.local:6380/2", "cache.svc.cluster.local", 6380,
         "alice", "p@ss:w/d", 2},
        {"redis://al%69ce:x@h", "h", 6379, "alice", "x", 0},
        {"redis://u:p@ss@h:2", "h", 2, "u", "p@ss", 0},
        {"redis://[::1]:6379/1", "::1", 6379, "", "", 1},
        {"redis://[fd00::5]", "fd00::5", 6379, "", "", 0},
        {"redis://:pw@[2001:db8::1]:65535/0", "2001:db8::1", 65535, "", "pw", 0},
        {"redis://my_host-1.example:6379/100", "my_host-1.example", 6379, "", "", 100},
        {"redis://u:@h", "h", 6379, "u", "", 0},
        {"redis://:a%20b%25c@h", "h", 6379, "", "a b%c", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const url_case *c = &cases[i];
        rw_redis_url u;
        char err[256] = "";
        cr_assert_eq(rw_redis_url_parse(c->url, &u, err, sizeof(err)), 0, "%s: %s", c->url, err);
        cr_expect_str_eq(u.host, c->host, "%s", c->url);
        cr_expect_eq(u.port, c->port, "%s", c->url);
        cr_expect_str_eq(u.user, c->user, "%s", c->url);
        cr_expect_str_eq(u.password, c->password, "%s", c->url);
        cr_expect_eq(u.db, c->db, "%s", c->url);
    }
}

Test(rlsync, url_bad)
{
    static const struct {
        const char *url;
        const char *why; /* a substring of the message */
    } cases[] = {
        {"", "empty"},
        {"rediss://h:6380", "TLS"},
        {"unix:///run/redis.sock", "unix"},
        {"http://h:6379", "redis://"},
        {"h:6379", "redis://"},
        {"redis://", "missing host"},
        {"redis://:6379", "missing host"},
        {"redis://u:p@:6379", "missing host"},
        {"redis://h:", "empty port"},
        {"redis://h:0", "port"},
        {"redis://h:65536", "port"},
        {"redis://h:99999999999999999999", "port"},
        {"redis://h:12a", "port"},
        {"redis://h/x", "database"},
        {"redis://h/-1", "database"},
        {"redis://h/1/2", "database"},
        {"redis://h/99999999", "database"},
        {"redis://h?db=1", "query"},
        {"redis://[::1", "]"},
        {"redis://[::1]x", "after"},
        {"redis://[]:1", "IPv6"},
        {"redis://[1.2.3.4]:1", "IPv6"},
        {"redis://h h", "bad character"},
        {"redis://:p%4@h", "escape"},
        {"redis://:p%zz@h", "escape"},
        {"redis://:p%00@h", "%00"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rw_redis_url u;
        char err[256] = "";
        cr_expect_eq(rw_redis_url_parse(cases[i].url, &u, err, sizeof(err)), -1, "'%s' accepted",
                     cases[i].url);
        cr_expect(strstr(err, cases[i].why) != NULL, "'%s': message '%s' lacks '%s'", cases[i].url, err,
                  cases[i].why);
    }
    /* over-long parts */
    char big[600];
    rw_redis_url u;
    char err[256];
    snprintf(big, sizeof(big), "redis://:%0300d@h", 0);
    cr_expect_eq(rw_redis_url_parse(big, &u, err, sizeof(err)), -1);
    cr_expect(strstr(err, "password too long") != NULL, "%s", err);
    snprintf(big, sizeof(big), "redis://%0300d", 0);
    cr_expect_eq(rw_redis_url_parse(big, &u, err, sizeof(err)), -1);
    cr_expect(strstr(err, "host too long") != NULL, "%s", err);
    cr_expect_eq(rw_redis_url_parse(NULL, &u, err, sizeof(err)), -1);
}

/* The Redis client alone (src/core/redis.c): a refused connect counts a
 * failure and backs off; a good one is up with a new epoch; a failure the
 * owner reports drops the connection; interrupt refuses further connects. */
Test(rlsync, redis_client)
{
    require_redis();
    uint16_t port = free_port();
    char url_s[64], err[256];
    snprintf(url_s, sizeof(url_s), "redis://127.0.0.1:%u/2", port);
    rw_redis_url url;
    cr_assert_eq(rw_redis_url_parse(url_s, &url, err, sizeof(err)), 0, "%s", err);
    rw_redis *r = rw_redis_new(&(rw_redis_opts){.url = &url, .cmd_timeout_ms = 500});
    cr_assert_not_null(r);
    cr_expect(!rw_redis_up(r));
    cr_expect_null(rw_redis_context(r));

    uint64_t t0 = mono_ns();
    cr_expect_eq(rw_redis_connect(r), -1, "nothing listens yet");
    cr_expect_eq(rw_redis_failures(r), 1);
    cr_expect_eq(rw_redis_epoch(r), 0);
    /* the first wait is 100 ms with equal jitter: between 50 and 100 ms */
    cr_expect_geq(rw_redis_next_connect_ns(r), t0 + 50 * NS_PER_MS, "backoff starts at 100 ms, jittered");
    cr_expect_leq(rw_redis_next_connect_ns(r), mono_ns() + 100 * NS_PER_MS,
                  "backoff starts at 100 ms, jittered");

    int slot = redis_start(port, NULL);
    cr_assert_eq(rw_redis_connect(r), 0);
    cr_expect(rw_redis_up(r));
    cr_expect_eq(rw_redis_epoch(r), 1);
    redisContext *c = rw_redis_context(r);
    cr_assert_not_null(c);
    redisReply *rep = redisCommand(c, "SET k v");
    cr_assert_not_null(rep);
    freeReplyObject(rep);
    redisContext *plain = client(port, NULL, NULL); /* db 2 was selected: the key is not in db 0 */
    cr_assert_not_null(plain);
    rep = redisCommand(plain, "EXISTS k");
    cr_assert_not_null(rep);
    cr_expect_eq(rep->integer, 0);
    freeReplyObject(rep);
    redisFree(plain);

    rw_redis_fail(r, "test");
    cr_expect(!rw_redis_up(r));
    cr_expect_null(rw_redis_context(r));
    cr_expect_eq(rw_redis_failures(r), 2);
    cr_assert_eq(rw_redis_connect(r), 0);
    cr_expect_eq(rw_redis_epoch(r), 2, "every connection is a new epoch");

    rw_redis_interrupt(r);
    rw_redis_fail(r, "interrupted");
    cr_expect_eq(rw_redis_connect(r), -1, "no connects after an interrupt");
    cr_expect_eq(rw_redis_epoch(r), 2);
    rw_redis_free(r);
    redis_kill(slot);
}

Test(rlsync, start_bad_url)
{
    char err[256] = "";
    rw_rl_sync_opts o = {.url = "rediss://cache:6380/0", .interval_ms = 50};
    cr_assert_null(rw_rl_sync_start(&o, err, sizeof(err)));
    cr_expect(strstr(err, "TLS") != NULL, "%s", err);
    o.url = "redis://h:port";
    err[0] = '\0';
    cr_assert_null(rw_rl_sync_start(&o, err, sizeof(err)));
    cr_expect(err[0] != '\0');
    o.url = NULL;
    err[0] = '\0';
    cr_assert_null(rw_rl_sync_start(&o, err, sizeof(err)));
    cr_expect(err[0] != '\0');
    /* NULL-tolerant entry points */
    rw_rl_sync_stop(NULL);
    rw_rl_sync_remove(NULL, NULL);
    cr_expect(!rw_rl_sync_up(NULL));
    rw_rl_sync_stats st;
    rw_rl_sync_get_stats(NULL, &st);
    cr_expect_eq(st.rounds, 0);
}

/* ------------------------------------------------------------------------ */
/* Two nodes against one Redis */

static const rw_rl_params slow = {.rate = 1.0, .burst = 100};
#define KEY 0x1234abcd5678ef01ull

typedef struct node {
    rw_rl_table *t;
    rw_rl_sync *s;
} node;

static node node_new(const char *url, const char *prefix, uint32_t interval_ms)
{
    node n;
    n.t = rw_rl_table_new("api", 1024);
    cr_assert_not_null(n.t);
    n.s = start_sync(url, interval_ms, prefix);
    cr_assert_eq(rw_rl_sync_add(n.s, n.t, 100000), 0);
    return n;
}

static void node_free(node *n)
{
    rw_rl_sync_stop(n->s);
    rw_rl_table_free(n->t);
}

static uint32_t take_key(node *n, uint64_t key, uint32_t want)
{
    return rw_rl_table_take(n->t, key, &slow, want, mono_ns(), NULL);
}

static uint32_t take(node *n, uint32_t want)
{
    return take_key(n, KEY, want);
}

Test(rlsync, two_nodes_share_consumption)
{
    require_redis();
    uint16_t port = free_port();
    redis_start(port, NULL);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u/0", port);
    node a = node_new(url, "t1:", 50), b = node_new(url, "t1:", 50);
    cr_assert(wait_up(a.s, true, 2000) && wait_up(b.s, true, 2000));

    /* B has the key (and a baseline), then A spends 50 tokens. */
    cr_assert_eq(take(&b, 1), 1);
    cr_assert(wait_rounds(b.s, 3, 2000));
    cr_assert_eq(take(&a, 50), 50);
    cr_assert(wait_rounds(a.s, 3, 2000));
    cr_assert(wait_rounds(b.s, 3, 2000));

    /* The cluster counter holds both, with a TTL of max(2 x window, 60 s). */
    redisContext *c = client(port, NULL, NULL);
    cr_assert_not_null(c);
    char key[64];
    snprintf(key, sizeof(key), "t1:api:%016llx", (unsigned long long)KEY);
    cr_expect_eq(redis_get(c, key), 51);
    long long pttl = redis_int(c, "PTTL", key);
    cr_expect(pttl > 190000 && pttl <= 200000, "pttl %lld", pttl);
    redisFree(c);

    /* B was debited A's 50: of its 99 tokens about 49 are left (plus the
     * refill at 1/s over the test's couple of seconds). */
    uint32_t got = take(&b, 100);
    cr_expect(got >= 45 && got <= 53, "B got %u", got);

    rw_rl_sync_stats st;
    rw_rl_sync_get_stats(b.s, &st);
    cr_expect(st.up);
    cr_expect(st.rounds >= 6);
    cr_expect(st.keys_synced >= 6);
    cr_expect_eq(st.failures, 0);
    node_free(&a);
    node_free(&b);
}

Test(rlsync, select_db_and_prefix)
{
    require_redis();
    uint16_t port = free_port();
    redis_start(port, NULL);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u/3", port);
    node a = node_new(url, NULL, 20);
    cr_assert(wait_up(a.s, true, 2000));
    cr_assert_eq(take(&a, 7), 7);
    cr_assert(wait_rounds(a.s, 2, 2000));
    redisContext *c = client(port, NULL, NULL);
    char key[64];
    snprintf(key, sizeof(key), "ringway:rl:api:%016llx", (unsigned long long)KEY);
    cr_expect_eq(redis_get(c, key), -1, "db 0 must be untouched");
    redisReply *r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    cr_expect_eq(redis_get(c, key), 7);
    redisFree(c);
    node_free(&a);
}

/* More active keys than one round sends: the rotation reaches all of them. */
Test(rlsync, many_keys_rotate)
{
    require_redis();
    uint16_t port = free_port();
    redis_start(port, NULL);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
    rw_rl_table *t = rw_rl_table_new("many", 65536);
    cr_assert_not_null(t);
    enum { N = 25000 };
    uint64_t now = mono_ns();
    for (uint64_t k = 1; k <= N; k++)
        cr_assert_eq(rw_rl_table_take(t, k * 0x9e3779b97f4a7c15ull, &slow, 1, now, NULL), 1);
    rw_rl_sync *s = start_sync(url, 100, "m:");
    cr_assert_eq(rw_rl_sync_add(s, t, 1000), 0);
    redisContext *c = client(port, NULL, NULL);
    long long n = 0;
    for (int i = 0; i < 300 && n < N; i++) {
        sleep_ms(20);
        redisReply *r = redisCommand(c, "DBSIZE");
        cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
        n = r->integer;
        freeReplyObject(r);
    }
    cr_expect_eq(n, N, "dbsize %lld", n);
    rw_rl_sync_stats st;
    for (int i = 0; i < 100 && rounds(s) < 3; i++) /* Redis may answer before the stats move */
        sleep_ms(10);
    rw_rl_sync_get_stats(s, &st);
    cr_expect(st.rounds >= 3, "25000 keys need 3 rounds of 10000, got %llu", (unsigned long long)st.rounds);
    cr_expect(st.keys_synced >= N);
    redisFree(c);
    rw_rl_sync_stop(s);
    rw_rl_table_free(t);
}

/* ------------------------------------------------------------------------ */
/* Failures */

Test(rlsync, redis_killed_and_restarted)
{
    require_redis();
    uint16_t port = free_port();
    int slot = redis_start(port, NULL);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
    node a = node_new(url, "k:", 50), b = node_new(url, "k:", 50);
    cr_assert(wait_up(a.s, true, 2000) && wait_up(b.s, true, 2000));

    redis_kill(slot);
    uint64_t t0 = mono_ns();
    cr_assert(wait_up(a.s, false, 1500), "A still up after the kill");
    cr_assert(wait_up(b.s, false, 1500));
    cr_expect((mono_ns() - t0) / NS_PER_MS < 1000);
    rw_rl_sync_stats st;
    sleep_ms(400); /* a few reconnect attempts */
    rw_rl_sync_get_stats(a.s, &st);
    cr_expect(!st.up);
    cr_expect(st.failures >= 2, "failures %llu", (unsigned long long)st.failures);

    /* Consumption while down is kept (window 100 s) and sent once back. */
    cr_assert_eq(take(&b, 1), 1);
    cr_assert_eq(take(&a, 20), 20);
    sleep_ms(150);

    redis_start(port, NULL);
    cr_assert(wait_up(a.s, true, 8000), "A not up again");
    cr_assert(wait_up(b.s, true, 8000), "B not up again");
    cr_assert(wait_rounds(a.s, 2, 2000) && wait_rounds(b.s, 2, 2000));
    redisContext *c = client(port, NULL, NULL);
    char key[64];
    snprintf(key, sizeof(key), "k:api:%016llx", (unsigned long long)KEY);
    cr_expect_eq(redis_get(c, key), 21, "consumption while down must reach Redis once");

    cr_expect_eq(redis_get(c, key), 21, "sent once");
    redisFree(c);

    /* Debits resume (on a fresh key, so that which node resynced first does
     * not matter): B holds it, A spends 30, B sees them. */
    const uint64_t key2 = KEY + 1;
    cr_assert_eq(take_key(&b, key2, 1), 1);
    cr_assert(wait_rounds(b.s, 3, 2000));
    cr_assert_eq(take_key(&a, key2, 30), 30);
    cr_assert(wait_rounds(a.s, 3, 2000));
    cr_assert(wait_rounds(b.s, 3, 2000));
    uint32_t got = take_key(&b, key2, 100);
    cr_expect(got >= 66 && got <= 72, "B got %u", got);

    uint64_t s0 = mono_ns();
    node_free(&a);
    node_free(&b);
    cr_expect((mono_ns() - s0) / NS_PER_MS < 500);
}

Test(rlsync, stop_while_unreachable)
{
    /* A blackholed address: the connect hangs until its 500 ms timeout (or
     * fails at once where there is no route). */
    rw_rl_sync *s = start_sync("redis://10.255.255.1:6379/0", 50, NULL);
    rw_rl_table *t = rw_rl_table_new("bh", 64);
    cr_assert_eq(rw_rl_sync_add(s, t, 1000), 0);
    sleep_ms(300);
    cr_expect(!rw_rl_sync_up(s));
    uint64_t t0 = mono_ns();
    rw_rl_sync_stop(s);
    uint64_t ms = (mono_ns() - t0) / NS_PER_MS;
    cr_expect(ms < 1000, "stop took %llu ms", (unsigned long long)ms);
    rw_rl_table_free(t);

    /* Nothing listening: refused at once, failures counted, stop prompt. */
    uint16_t port = free_port();
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
    s = start_sync(url, 50, NULL);
    sleep_ms(500);
    rw_rl_sync_stats st;
    rw_rl_sync_get_stats(s, &st);
    cr_expect(!st.up);
    cr_expect(st.failures >= 2 && st.failures <= 5, "failures %llu (backoff 100 ms doubling)",
              (unsigned long long)st.failures);
    t0 = mono_ns();
    rw_rl_sync_stop(s);
    cr_expect((mono_ns() - t0) / NS_PER_MS < 200);
}

/* A wedged server (SIGSTOP): the round times out, Redis is down, and stop
 * does not wait for the command timeout. */
Test(rlsync, wedged_server)
{
    require_redis();
    uint16_t port = free_port();
    int slot = redis_start(port, NULL);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
    node a = node_new(url, NULL, 50);
    cr_assert(wait_up(a.s, true, 2000));
    cr_assert_eq(take(&a, 1), 1);
    kill(servers[slot], SIGSTOP);
    cr_expect(wait_up(a.s, false, 1500), "still up with a stopped server");
    sleep_ms(200); /* most likely blocked in a connect or a round again */
    uint64_t t0 = mono_ns();
    node_free(&a);
    uint64_t ms = (mono_ns() - t0) / NS_PER_MS;
    cr_expect(ms < 700, "stop took %llu ms", (unsigned long long)ms);
    kill(servers[slot], SIGCONT);
    redis_kill(slot);
}

/* ------------------------------------------------------------------------ */
/* AUTH */

Test(rlsync, auth_password)
{
    require_redis();
    uint16_t port = free_port();
    const char *const args[] = {"--requirepass", "s3cr@t", NULL};
    redis_start(port, args);
    char url[96];
    snprintf(url, sizeof(url), "redis://:s3cr%%40t@127.0.0.1:%u/1", port);
    node a = node_new(url, NULL, 50);
    cr_expect(wait_up(a.s, true, 2000), "the right password must work");
    cr_assert_eq(take(&a, 3), 3);
    cr_expect(wait_rounds(a.s, 2, 2000));

    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%u/1", port);
    rw_rl_sync *bad = start_sync(url, 50, NULL);
    sleep_ms(400);
    rw_rl_sync_stats st;
    rw_rl_sync_get_stats(bad, &st);
    cr_expect(!st.up);
    cr_expect(st.failures >= 2);
    cr_expect_eq(st.rounds, 0);
    rw_rl_sync_stop(bad);

    /* no password at all: NOAUTH on the first round */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u/1", port);
    bad = start_sync(url, 50, NULL);
    rw_rl_table *t = rw_rl_table_new("api", 64);
    cr_assert_eq(rw_rl_sync_add(bad, t, 1000), 0);
    cr_assert_eq(rw_rl_table_take(t, 1, &slow, 1, mono_ns(), NULL), 1);
    sleep_ms(400);
    rw_rl_sync_get_stats(bad, &st);
    cr_expect(!st.up);
    cr_expect(st.failures >= 1);
    rw_rl_sync_stop(bad);
    rw_rl_table_free(t);

    node_free(&a);
}

Test(rlsync, auth_acl_user)
{
    require_redis();
    uint16_t port = free_port();
    const char *const args[] = {"--user", "alice", "on", ">p@ss:w/rd", "~*", "+@all", NULL};
    redis_start(port, args);
    char url[128];
    snprintf(url, sizeof(url), "redis://alice:p%%40ss%%3Aw%%2Frd@127.0.0.1:%u", port);
    node a = node_new(url, NULL, 50);
    cr_expect(wait_up(a.s, true, 2000), "user + password must work");
    cr_assert_eq(take(&a, 4), 4);
    cr_assert(wait_rounds(a.s, 2, 2000));
    redisContext *c = client(port, "alice", "p@ss:w/rd");
    char key[64];
    snprintf(key, sizeof(key), "ringway:rl:api:%016llx", (unsigned long long)KEY);
    cr_expect_eq(redis_get(c, key), 4);
    redisFree(c);

    snprintf(url, sizeof(url), "redis://bob:p%%40ss%%3Aw%%2Frd@127.0.0.1:%u", port);
    rw_rl_sync *bad = start_sync(url, 50, NULL);
    sleep_ms(300);
    cr_expect(!rw_rl_sync_up(bad));
    rw_rl_sync_stop(bad);
    node_free(&a);
}

/* ------------------------------------------------------------------------ */
/* Registry */

/* Tables come and go while rounds run every millisecond: after remove the
 * table is freed at once (ASan catches any later touch). */
Test(rlsync, add_remove_churn)
{
    require_redis();
    uint16_t port = free_port();
    redis_start(port, NULL);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
    rw_rl_sync *s = start_sync(url, 1, "churn:");
    cr_assert(wait_up(s, true, 2000));
    rw_rl_table *keep = rw_rl_table_new("keep", 64);
    cr_assert_eq(rw_rl_sync_add(s, keep, 1000), 0);
    cr_assert_eq(rw_rl_sync_add(s, keep, 2000), 0); /* twice: one entry */
    uint64_t r0 = rounds(s);
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof(name), "tmp%d", i % 5);
        rw_rl_table *t = rw_rl_table_new(name, 64);
        cr_assert_not_null(t);
        cr_assert_eq(rw_rl_sync_add(s, t, 1000), 0);
        for (uint64_t k = 0; k < 20; k++)
            rw_rl_table_take(t, k, &slow, 2, mono_ns(), NULL);
        rw_rl_table_take(keep, (uint64_t)i, &slow, 1, mono_ns(), NULL);
        if (i % 3 == 0)
            sleep_ms(1);
        rw_rl_sync_remove(s, t);
        rw_rl_table_free(t);
    }
    rw_rl_sync_remove(s, keep);
    rw_rl_sync_remove(s, keep); /* not registered: no-op */
    rw_rl_table_free(keep);
    cr_expect(rounds(s) > r0);
    rw_rl_sync_stats st;
    rw_rl_sync_get_stats(s, &st);
    cr_expect_eq(st.failures, 0);
    rw_rl_sync_stop(s);
}
