/* harness.h - helpers for ringway's black-box integration tests (Criterion).
 *
 * Each test runs in its own process (Criterion forks per test). It starts its
 * own rw_upstream instances and its own ringway on ephemeral loopback ports,
 * talks to them over raw sockets, and at the end stops ringway and checks that
 * it exited 0 in time and logged no error. Every child process is killed when
 * the test process dies (PR_SET_PDEATHSIG), even on a Criterion timeout.
 *
 * Environment (set by tests/integration/meson.build):
 *   RW_BINARY    the ringway executable
 *   RW_UPSTREAM  the rw_upstream executable
 *   RW_TEST_IO   uring | epoll | auto, passed as --io (uring: skip when the
 *                kernel refuses io_uring)
 *   RW_VERSION   the project version (for --version)
 *   RW_TEST_KEEP set: keep each test's temp directory (config, logs)
 *
 * Write tests with H_TEST (or H_PTEST for parameterized ones): it wires the
 * setup/cleanup and the per-test timeout, and runs h_done() after the body. */
#ifndef RW_TEST_HARNESS_H
#define RW_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H_TIMEOUT 60.0

/* Test process setup: checks the environment, skips uring tests where io_uring
 * is unavailable, makes the temp directory. */
void h_setup(void);
/* Test process teardown: kills every child still running, removes temp files.
 * Runs even after a failed assertion (not after a timeout: then the children
 * die with the test process). Checks nothing: see h_done. */
void h_cleanup(void);
/* End of a test body: closes client connections, stops every ringway still
 * running with SIGTERM and asserts that it exited 0 within drain+2s and that
 * its log holds no error-level line (unless expect_errors was set). */
void h_done(void);

#define H_TEST(suite, name, ...)                                                                             \
    static void suite##__##name##__body(void);                                                               \
    Test(suite, name, .init = h_setup, .fini = h_cleanup, .timeout = H_TIMEOUT, ##__VA_ARGS__)               \
    {                                                                                                        \
        suite##__##name##__body();                                                                           \
        h_done();                                                                                            \
    }                                                                                                        \
    static void suite##__##name##__body(void)

#define H_PTEST(ptype, param, suite, name, ...)                                                              \
    static void suite##__##name##__body(ptype param);                                                        \
    ParameterizedTest(ptype param, suite, name, .init = h_setup, .fini = h_cleanup, .timeout = H_TIMEOUT,    \
                      ##__VA_ARGS__)                                                                         \
    {                                                                                                        \
        suite##__##name##__body(param);                                                                      \
        h_done();                                                                                            \
    }                                                                                                        \
    static void suite##__##name##__body(ptype param)

/* ---- small utilities ---------------------------------------------------- */

/* printf into a string owned by the test (freed at cleanup). */
char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A string of n copies of ch (owned by the test). */
char *h_repeat(size_t n, char ch);
/* Monotonic milliseconds. */
int64_t h_now_ms(void);
void h_sleep_ms(int ms);
/* The test's temp directory. */
const char *h_tmpdir(void);
/* Writes text to a new file in the temp directory; returns its path (owned). */
char *h_write_file(const char *name, const char *text);
/* The value of RW_TEST_IO ("auto" when unset). */
const char *h_io(void);
/* A loopback TCP port that was free a moment ago. */
int h_free_port(void);
/* True when ::1 can be bound (IPv6 loopback present). */
bool h_have_ipv6(void);

/* The generated-body pattern (same as rw_upstream's) and checksums. */
unsigned char h_pattern_byte(uint64_t i);
#define H_FNV_INIT 0xcbf29ce484222325ull
uint64_t h_fnv1a(uint64_t h, const void *p, size_t n);
/* FNV-1a of the first n pattern bytes. */
uint64_t h_pattern_fnv(uint64_t n);

/* ---- rw_upstream -------------------------------------------------------- */

typedef struct h_upstream {
    pid_t pid;
    int port;
    char name[32];
} h_upstream;

typedef struct h_stats {
    long connections; /* connections that carried a request other than /stats */
    long requests;    /* requests other than /stats (counted when the head is read) */
    long completed;   /* of those, the ones whose body was read in full */
    long accepted;    /* every accepted connection */
    long health;      /* GET /healthz requests (health probes) */
} h_stats;

/* Starts rw_upstream --name NAME on an ephemeral port; more argv may follow,
 * NULL-terminated (e.g. "--idle-timeout", "200", NULL). Asserts on failure. */
h_upstream *h_upstream_start(const char *name, ...) __attribute__((sentinel));
/* Starts a killed upstream again on its port, with its name (no extra args). */
void h_upstream_restart(h_upstream *u);
/* Reads the upstream's counters (directly, not through the proxy). */
h_stats h_upstream_stats(const h_upstream *u);
void h_upstream_reset(const h_upstream *u);
/* Kills the upstream (SIGKILL) and reaps it. */
void h_upstream_kill(h_upstream *u);

/* ---- redis-server -------------------------------------------------------- */

typedef struct h_redis {
    pid_t pid;
    int port;
} h_redis;

/* Starts redis-server (no persistence) on port (0: a free one) and waits
 * until it accepts; asserts on failure. Killed with the test. */
void h_redis_start(h_redis *r, int port);
/* Kills it (SIGKILL) and reaps it; the port can be reused by h_redis_start. */
void h_redis_stop(h_redis *r);
/* Whether redis-server is installed. */
bool h_have_redis(void);

/* ---- ringway ------------------------------------------------------------ */

typedef struct h_proxy_opts {
    const char *config;    /* YAML text for --config; NULL: run without --config */
    int workers;           /* --workers; 0 means 1; -1 means do not pass it */
    const char *drain;     /* --drain-timeout; NULL means "2s"; "" means do not pass it */
    const char *log_level; /* --log-level; NULL means "info" */
    const char *args[16];  /* more argv, NULL-terminated */
    bool no_listen;        /* do not add --listen 127.0.0.1:PORT (args carry them) */
    bool no_io;            /* do not pass --io */
    bool no_wait;          /* do not wait for GET /health 200 */
    bool expect_errors;    /* error lines in the log do not fail the test */
} h_proxy_opts;

typedef struct h_proxy {
    pid_t pid;
    int port; /* the --listen port the harness chose (0 with no_listen) */
    int drain_ms;
    bool expect_errors;
    bool running;
    int exit_status;   /* waitpid status once stopped */
    char *config_path; /* NULL without config */
    char *log_path;    /* its stderr */
    char *out_path;    /* its stdout */
} h_proxy;

/* Starts ringway and (unless no_wait) waits until GET /health answers 200.
 * Asserts (with the log's tail) if it exits or does not become healthy. */
h_proxy *h_proxy_start(const h_proxy_opts *o);
/* ringway with this config, one worker, default options. */
h_proxy *h_proxy_run(const char *config);
/* Rewrites the config file (atomically, by rename). */
void h_proxy_write_config(h_proxy *p, const char *config);
void h_proxy_signal(h_proxy *p, int sig);
/* Sends SIGTERM and waits up to timeout_ms (<= 0: drain+2s) for the exit.
 * Returns the waitpid status, or -1 when it had to be killed. No assertions. */
int h_proxy_stop(h_proxy *p, int timeout_ms);
/* Waits up to timeout_ms for the process to exit on its own; returns the
 * waitpid status or -1 (still running). */
int h_proxy_wait_exit(h_proxy *p, int timeout_ms);
/* Polls GET path on the data port until it answers want_status; true on success. */
bool h_wait_status(int port, const char *path, int want_status, int timeout_ms);
/* The log (stderr) so far; owned by the test. */
char *h_proxy_log(const h_proxy *p);
bool h_proxy_log_contains(const h_proxy *p, const char *needle);
/* How many times needle occurs in the log so far. */
int h_proxy_log_count(const h_proxy *p, const char *needle);
/* Polls the log until needle occurs at least count times; false on timeout.
 * Use it to wait for what a signal did ("reloaded", "reload failed") rather
 * than sleeping. */
bool h_proxy_wait_log(const h_proxy *p, const char *needle, int count, int timeout_ms);
/* The log's error-level lines joined (owned), or NULL when there are none. */
char *h_proxy_log_errors(const h_proxy *p);
/* Reads a field ("VmRSS", "VmHWM", "Threads") of /proc/PID/status, in kB or count. */
long h_proc_status(pid_t pid, const char *field);

/* Starts one rw_upstream named "u1" and a one-worker ringway whose config
 * routes every path to it (service "svc", route "all"), with http_extra (YAML
 * lines indented by two spaces under "http:", or NULL) and service_extra
 * (lines indented by four spaces under the service, or NULL). */
h_proxy *h_start_basic(h_upstream **up, const char *http_extra, const char *service_extra);
/* The YAML that h_start_basic uses. */
char *h_basic_config(const h_upstream *u, const char *http_extra, const char *service_extra);

/* ---- raw HTTP client ---------------------------------------------------- */

enum { H_OK = 0, H_ETIMEDOUT = -1, H_ECLOSED = -2, H_EPARSE = -3, H_EIO = -4 };

/* How the body of a response was delimited. */
enum { H_FRAME_NONE = 0, H_FRAME_LENGTH, H_FRAME_CHUNKED, H_FRAME_CLOSE };

/* Flags for h_read_response. */
enum {
    H_RESP_HEAD = 1 << 0,    /* answer to HEAD: no body whatever the headers say */
    H_RESP_DISCARD = 1 << 1, /* do not keep the body: only count and checksum it */
    H_RESP_INTERIM = 1 << 2, /* return a 1xx response instead of skipping it */
};

typedef struct h_header {
    char *name;
    char *value;
} h_header;

typedef struct h_resp {
    int status;
    int minor;
    char *reason;
    char *head; /* the raw head as received, NUL-terminated */
    size_t nheaders;
    h_header headers[128];
    int framing; /* H_FRAME_* */
    char *body;  /* decoded body, NUL-terminated (NULL with H_RESP_DISCARD) */
    size_t body_len;
    uint64_t body_fnv;     /* FNV-1a of the decoded body */
    char *trailers;        /* raw trailer lines of a chunked body, or NULL */
    int interim;           /* count of 1xx responses skipped before this one */
    int64_t first_byte_ms; /* h_now_ms() when the first byte of this response arrived */
} h_resp;

typedef struct h_conn {
    int fd;
    int timeout_ms; /* per response (default 10000) */
    char *buf;      /* received, unconsumed bytes: buf[off..len) */
    size_t off, len, cap;
    bool eof;
} h_conn;

/* Connects to host:port (host "127.0.0.1", "::1", ...). Asserts on failure. */
h_conn *h_connect_host(const char *host, int port);
h_conn *h_connect(int port);
/* Connects without asserting; NULL on failure. */
h_conn *h_try_connect(const char *host, int port);
/* Sends all bytes (poll with timeout). 0 or H_EIO/H_ETIMEDOUT. */
int h_send(h_conn *c, const void *p, size_t n);
int h_sendf(h_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int h_sends(h_conn *c, const char *s);
/* Sends n pattern bytes raw, or as chunks of chunk_size. */
int h_send_pattern(h_conn *c, uint64_t n);
int h_send_pattern_chunked(h_conn *c, uint64_t n, size_t chunk_size);
/* Reads one response (see H_RESP_*). Returns H_OK or an H_E* code; on H_OK
 * the caller frees r with h_resp_free. Never blocks past c->timeout_ms. */
int h_read_response(h_conn *c, h_resp *r, int flags);
/* Waits up to timeout_ms for the peer to close (EOF or reset), discarding what
 * arrives; returns true when it closed. *got (optional) gets the bytes that came. */
bool h_wait_closed(h_conn *c, int timeout_ms, char **got);
/* True when data or EOF is ready within timeout_ms. */
bool h_readable(h_conn *c, int timeout_ms);
void h_close(h_conn *c);
void h_resp_free(h_resp *r);

/* Sends "METHOD target HTTP/1.1", Host: localhost, the extra header lines
 * (each ending in CRLF, may be NULL), Content-Length when body is not NULL,
 * and the body; then reads the response. Returns H_OK or an H_E* code. */
int h_request(h_conn *c, const char *method, const char *target, const char *headers, const void *body,
              size_t body_len, h_resp *r);
/* GET on a new connection to 127.0.0.1:port; asserts the exchange worked. */
void h_get(int port, const char *target, h_resp *r);

/* First header named name (case-insensitive), or NULL; and how many there are. */
const char *h_hdr(const h_resp *r, const char *name);
int h_hdr_count(const h_resp *r, const char *name);
/* The value of the first header called name in the head that rw_upstream's
 * /echo sent back (the request as the upstream received it), or NULL. Owned by
 * the test. */
char *h_echoed(const char *echo, const char *name);
/* How many headers called name that echoed head holds. */
int h_echoed_count(const char *echo, const char *name);
/* True when the comma-separated list holds token (case-insensitive); NULL: false. */
bool h_list_has(const char *list, const char *token);
/* Parses "name": N out of a flat JSON text; -1 when absent. */
long h_json_long(const char *json, const char *name);

/* ---- commands ----------------------------------------------------------- */

typedef struct h_cmd {
    pid_t pid;
    char *out_path, *err_path;
    int status;      /* waitpid status once done */
    char *out, *err; /* captured output once done (owned) */
} h_cmd;

/* Runs /bin/sh -c CMD in the background, stdout and stderr to files. */
h_cmd *h_cmd_start(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Waits up to timeout_ms; kills it past that. Returns its exit code (0..255),
 * 128+signal when killed by a signal, or -1 on timeout. Fills out and err. */
int h_cmd_wait(h_cmd *c, int timeout_ms);
/* Both at once. */
int h_run(h_cmd **out, int timeout_ms, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Full path of the ringway binary. */
const char *h_binary(void);

#endif
