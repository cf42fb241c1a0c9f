/* jwks.c - JWKS sources (a file or an http(s) URL) refreshed by one
 * process-wide background thread.
 *
 * Each source publishes its key set through one atomic pointer; workers load
 * it and use it for the rest of their loop turn. A replaced set is queued on
 * the source's retired list and freed by the thread RETIRE_MS later (or when
 * the source is freed). Files are stat'ed every second and re-read when their
 * device, inode, size or mtime change; URLs are fetched every refresh_ms, with
 * a backoff after failures. A failed refresh keeps the last good set.
 *
 * Locking: reg.lock protects the registry list, every source's next_ms, busy
 * flag and retired list. It is never held during file or network I/O: the
 * thread marks a source busy, drops the lock and refreshes it; rw_jwks_free
 * waits on reg.idle until the source is not busy, then unlinks it. The
 * refresh state (seen, last_fail, backoff) is touched only by whoever holds
 * the source busy (the thread), or by rw_jwks_new before registration. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ringway/common.h"
#include "ringway/fetch.h"
#include "ringway/jwks.h"
#include "ringway/log.h"

#define RETIRE_MS 30000u     /* a replaced set lives this long */
#define FILE_CHECK_MS 1000u  /* files are stat'ed this often */
#define FIRST_RETRY_MS 5000u /* URL retry after a failure (capped at refresh_ms), doubling */
#define DEFAULT_REFRESH_MS 300000u
#define DEFAULT_TIMEOUT_MS 5000u
#define JWKS_MAX_BYTES (1u << 20) /* a JWKS document larger than this is refused */
#define IDLE_WAKE_MS 60000u       /* the thread's longest sleep with nothing scheduled */

/* A replaced key set waiting for the workers that may still hold it. */
typedef struct retired {
    struct retired *next;
    rw_jwt_keyset *ks;
    uint64_t at_ms; /* when it was replaced */
} retired;

/* What identifies one version of a file. */
typedef struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id;

/* One source. Owned by its creator (freed by rw_jwks_free); the registry
 * holds a non-owning link. The key sets are owned by the source. */
struct rw_jwks {
    _Atomic(rw_jwt_keyset *) current; /* never NULL once created */
    _Atomic uint64_t rotations;
    _Atomic uint64_t failures;

    char *file, *url, *ca_file; /* copies; exactly one of file and url is set */
    const char *name;           /* file or url, for logs */
    uint32_t refresh_ms, timeout_ms;
    rw_jwt_keyset *base; /* a copy of the static keys, NULL if none */

    /* Refresh state: the busy holder only. */
    file_id seen;
    bool have_seen;
    bool ever_ok;        /* URL: fetched successfully at least once */
    uint32_t backoff_ms; /* URL: the delay after the next failure */
    char last_fail[512]; /* the failure last logged ("" after a success) */

    /* Registry state: under reg.lock. */
    uint64_t next_ms; /* next check (monotonic) */
    bool busy;        /* the thread is refreshing it, without the lock */
    bool linked;
    retired *retired_head, **retired_tail;
    rw_jwks *next;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the thread: a source was added, or stop (CLOCK_MONOTONIC) */
    pthread_cond_t idle; /* rw_jwks_free: a refresh finished */
    rw_jwks *sources;
    pthread_t thread;
    bool running;
    bool stopping;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void reg_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&reg.wake, &a);
    pthread_condattr_destroy(&a);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- building and publishing sets ---- */

/* A new set: the base keys plus the document's. 0, or -1 with the reason. */
static int build_set(const rw_jwks *j, const char *doc, size_t len, rw_jwt_keyset **out, char *err,
                     size_t errlen)
{
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    if (ks == NULL || (j->base != NULL && rw_jwt_keyset_add_all(ks, j->base) != 0)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    char why[256];
    int n = rw_jwt_keyset_add_jwks(ks, doc, len, why, sizeof(why));
    if (n < 0) {
        snprintf(err, errlen, "%s", why);
        goto fail;
    }
    if (n == 0) {
        snprintf(err, errlen, "no usable keys in the JWKS");
        goto fail;
    }
    *out = ks;
    return 0;
fail:
    rw_jwt_keyset_free(ks);
    return -1;
}

/* Appends a replaced set to the source's retired list. */
static void retire(rw_jwks *j, rw_jwt_keyset *ks)
{
    retired *r = malloc(sizeof(*r));
    pthread_mutex_lock(&reg.lock);
    if (r != NULL) {
        r->next = NULL;
        r->ks = ks;
        r->at_ms = rw_mono_ms();
        *j->retired_tail = r;
        j->retired_tail = &r->next;
    }
    pthread_mutex_unlock(&reg.lock);
    if (r == NULL) /* cannot queue it: leaking beats freeing a set a worker may hold */
        rw_log_error("jwks %s: out of memory; a replaced key set is leaked", j->name);
}

/* Publishes ks unless it holds the same keys as the current set (then ks is
 * freed). Takes ownership of ks. */
static void publish(rw_jwks *j, rw_jwt_keyset *ks)
{
    rw_jwt_keyset *old = atomic_load_explicit(&j->current, memory_order_relaxed);
    if (old != NULL && rw_jwt_keyset_digest(old) == rw_jwt_keyset_digest(ks)) {
        rw_jwt_keyset_free(ks);
        return;
    }
    size_t n = rw_jwt_keyset_count(ks);
    atomic_store_explicit(&j->current, ks, memory_order_release);
    if (old != NULL) {
        /* After the store, with release: a reader that sees the new count
         * (acquire) then loads this set or a newer one. */
        atomic_fetch_add_explicit(&j->rotations, 1, memory_order_release);
        rw_log_info("jwks %s: keys rotated, %zu in the set now", j->name, n);
        retire(j, old);
    }
}

/* Counts a failure and logs it when it differs from the last one logged. */
static void note_failure(rw_jwks *j, const char *reason)
{
    atomic_fetch_add_explicit(&j->failures, 1, memory_order_relaxed);
    if (strcmp(reason, j->last_fail) == 0)
        return;
    snprintf(j->last_fail, sizeof(j->last_fail), "%s", reason);
    rw_log_warn("jwks %s: refresh failed, keeping the current keys: %s", j->name, reason);
}

static void note_success(rw_jwks *j)
{
    if (j->last_fail[0] != '\0')
        rw_log_info("jwks %s: refreshed again after a failure", j->name);
    j->last_fail[0] = '\0';
}

/* ---- files ---- */

static void file_id_of(const struct stat *st, file_id *id)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
}

static bool file_id_eq(const file_id *a, const file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Reads the whole file (at most JWKS_MAX_BYTES) and reports the identity of
 * the version read. 0 with a malloc'd buffer, or -1 with the reason. */
static int read_file(const char *path, char **out, size_t *len, file_id *id, char *err, size_t errlen)
{
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "fstat: %s", strerror(errno));
        goto fail;
    }
    file_id_of(&st, id);
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        goto fail;
    }
    buf = malloc(JWKS_MAX_BYTES + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, JWKS_MAX_BYTES + 1 - n);
        if (r == 0)
            break;
        if (r == -1) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "read: %s", strerror(errno));
            goto fail;
        }
        n += (size_t)r;
        if (n > JWKS_MAX_BYTES) {
            snprintf(err, errlen, "larger than %u bytes", JWKS_MAX_BYTES);
            goto fail;
        }
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
fail:
    free(buf);
    close(fd);
    return -1;
}

/* Loads the file into a new set. 0, or -1 with the reason. Once the file
 * could be read, records the version in j->seen and sets *read_ok, whether
 * or not it parses (a broken version is not re-read). */
static int load_file(rw_jwks *j, rw_jwt_keyset **out, bool *read_ok, char *err, size_t errlen)
{
    char *doc = NULL;
    size_t len = 0;
    file_id id;
    char why[384];
    int rc = read_file(j->file, &doc, &len, &id, why, sizeof(why));
    *read_ok = rc == 0;
    if (rc == 0) {
        j->seen = id;
        j->have_seen = true;
        rc = build_set(j, doc, len, out, why, sizeof(why));
    }
    if (rc != 0)
        snprintf(err, errlen, "%s", why);
    free(doc);
    return rc;
}

/* One check of a file source; returns when to check next. */
static uint64_t refresh_file(rw_jwks *j, uint64_t now)
{
    char err[512];
    struct stat st;
    if (stat(j->file, &st) == -1) {
        snprintf(err, sizeof(err), "stat: %s", strerror(errno));
        j->have_seen = false; /* whatever appears there next gets read */
        if (strcmp(err, j->last_fail) != 0)
            note_failure(j, err);
        return now + FILE_CHECK_MS;
    }
    file_id id;
    file_id_of(&st, &id);
    if (j->have_seen && file_id_eq(&id, &j->seen))
        return now + FILE_CHECK_MS;
    rw_jwt_keyset *ks;
    bool read_ok;
    if (load_file(j, &ks, &read_ok, err, sizeof(err)) != 0) {
        /* Unreadable: tried again every second, counted once per reason.
         * Unusable content: counted, and not re-read until it changes. */
        if (read_ok || strcmp(err, j->last_fail) != 0)
            note_failure(j, err);
    } else {
        note_success(j);
        publish(j, ks);
    }
    return now + FILE_CHECK_MS;
}

/* ---- URLs ---- */

static int load_url(rw_jwks *j, rw_jwt_keyset **out, char *err, size_t errlen)
{
    char *doc = NULL;
    size_t len = 0;
    char why[384];
    if (rw_fetch_url(j->url, j->ca_file, j->timeout_ms, JWKS_MAX_BYTES, &doc, &len, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    int rc = build_set(j, doc, len, out, why, sizeof(why));
    if (rc != 0)
        snprintf(err, errlen, "%s", why);
    free(doc);
    return rc;
}

/* The delay before the next attempt after a failure: FIRST_RETRY_MS (capped
 * at refresh_ms) until the first success, then doubling up to refresh_ms. */
static uint64_t url_failed(rw_jwks *j, uint64_t now, const char *reason)
{
    atomic_fetch_add_explicit(&j->failures, 1, memory_order_relaxed);
    uint32_t delay = j->backoff_ms;
    if (j->ever_ok)
        j->backoff_ms = j->backoff_ms > j->refresh_ms / 2 ? j->refresh_ms : j->backoff_ms * 2;
    rw_log_warn("jwks %s: refresh failed, keeping the current keys (next try in %u ms): %s", j->name, delay,
                reason);
    snprintf(j->last_fail, sizeof(j->last_fail), "%s", reason);
    return now + delay;
}

static uint64_t refresh_url(rw_jwks *j, uint64_t now)
{
    char err[512];
    rw_jwt_keyset *ks;
    if (load_url(j, &ks, err, sizeof(err)) != 0)
        return url_failed(j, rw_mono_ms(), err);
    note_success(j);
    j->ever_ok = true;
    j->backoff_ms = (uint32_t)min_u64(FIRST_RETRY_MS, j->refresh_ms);
    publish(j, ks);
    (void)now;
    return rw_mono_ms() + j->refresh_ms;
}

/* ---- the refresher thread ---- */

static void *refresher(void *arg)
{
    (void)arg;
    rw_log_set_thread(-1);
    pthread_mutex_lock(&reg.lock);
    while (!reg.stopping) {
        uint64_t now = rw_mono_ms();
        uint64_t wake = now + IDLE_WAKE_MS;
        rw_jwks *due = NULL;
        retired *dead = NULL;
        for (rw_jwks *s = reg.sources; s != NULL; s = s->next) {
            while (s->retired_head != NULL && s->retired_head->at_ms + RETIRE_MS <= now) {
                retired *r = s->retired_head;
                s->retired_head = r->next;
                if (s->retired_head == NULL)
                    s->retired_tail = &s->retired_head;
                r->next = dead;
                dead = r;
            }
            if (s->retired_head != NULL)
                wake = min_u64(wake, s->retired_head->at_ms + RETIRE_MS);
            if (due == NULL && s->next_ms <= now)
                due = s;
            else
                wake = min_u64(wake, s->next_ms);
        }
        if (dead != NULL) {
            pthread_mutex_unlock(&reg.lock);
            while (dead != NULL) {
                retired *r = dead;
                dead = r->next;
                rw_jwt_keyset_free(r->ks);
                free(r);
            }
            pthread_mutex_lock(&reg.lock);
            continue;
        }
        if (due != NULL) {
            due->busy = true;
            pthread_mutex_unlock(&reg.lock);
            uint64_t next = due->file != NULL ? refresh_file(due, now) : refresh_url(due, now);
            pthread_mutex_lock(&reg.lock);
            due->next_ms = next;
            due->busy = false;
            pthread_cond_broadcast(&reg.idle);
            continue;
        }
        struct timespec ts = {.tv_sec = (time_t)(wake / 1000u), .tv_nsec = (long)(wake % 1000u) * 1000000L};
        pthread_cond_timedwait(&reg.wake, &reg.lock, &ts);
    }
    pthread_mutex_unlock(&reg.lock);
    return NULL;
}

/* Starts the thread with every signal blocked (signals belong to the control
 * thread's signalfd). Under reg.lock. 0 or an errno. */
static int start_thread_locked(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&reg.thread, NULL, refresher, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        reg.running = true;
    return rc;
}

/* ---- API ---- */

static void jwks_destroy(rw_jwks *j)
{
    while (j->retired_head != NULL) {
        retired *r = j->retired_head;
        j->retired_head = r->next;
        rw_jwt_keyset_free(r->ks);
        free(r);
    }
    rw_jwt_keyset_free(atomic_load_explicit(&j->current, memory_order_relaxed));
    rw_jwt_keyset_free(j->base);
    free(j->file);
    free(j->url);
    free(j->ca_file);
    free(j);
}

rw_jwks *rw_jwks_new(const rw_jwks_opts *o, char *err, size_t errlen)
{
    if ((o->file == NULL) == (o->url == NULL)) {
        snprintf(err, errlen, "jwks: set exactly one of file and url");
        return NULL;
    }
    pthread_once(&reg_once, reg_init);
    rw_jwks *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&j->current, NULL);
    atomic_init(&j->rotations, 0);
    atomic_init(&j->failures, 0);
    j->retired_tail = &j->retired_head;
    j->refresh_ms = o->refresh_ms != 0 ? o->refresh_ms : DEFAULT_REFRESH_MS;
    j->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    j->backoff_ms = (uint32_t)min_u64(FIRST_RETRY_MS, j->refresh_ms);
    if ((o->file != NULL && (j->file = strdup(o->file)) == NULL) ||
        (o->url != NULL && (j->url = strdup(o->url)) == NULL) ||
        (o->ca_file != NULL && (j->ca_file = strdup(o->ca_file)) == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    j->name = j->file != NULL ? j->file : j->url;
    if (o->base != NULL &&
        ((j->base = rw_jwt_keyset_new()) == NULL || rw_jwt_keyset_add_all(j->base, o->base) != 0)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    rw_jwt_keyset *ks = NULL;
    char why[512];
    uint64_t now = rw_mono_ms();
    if (j->file != NULL) {
        bool read_ok;
        if (load_file(j, &ks, &read_ok, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "jwks file %s: %s", j->file, why);
            goto fail;
        }
        j->next_ms = now + FILE_CHECK_MS;
    } else if (load_url(j, &ks, why, sizeof(why)) == 0) {
        j->ever_ok = true;
        j->next_ms = rw_mono_ms() + j->refresh_ms;
    } else {
        ks = rw_jwt_keyset_new();
        if (ks == NULL || (j->base != NULL && rw_jwt_keyset_add_all(ks, j->base) != 0)) {
            rw_jwt_keyset_free(ks);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        atomic_fetch_add_explicit(&j->failures, 1, memory_order_relaxed);
        snprintf(j->last_fail, sizeof(j->last_fail), "%s", why);
        rw_log_warn(
            "jwks %s: initial fetch failed, starting with the static keys only (retrying every %u ms): %s",
            j->url, j->backoff_ms, why);
        j->next_ms = rw_mono_ms() + j->backoff_ms;
    }
    atomic_store_explicit(&j->current, ks, memory_order_release);

    pthread_mutex_lock(&reg.lock);
    if (!reg.running) {
        int rc = start_thread_locked();
        if (rc != 0) {
            pthread_mutex_unlock(&reg.lock);
            snprintf(err, errlen, "jwks: cannot start the refresher thread: %s", strerror(rc));
            goto fail;
        }
    }
    j->next = reg.sources;
    reg.sources = j;
    j->linked = true;
    pthread_cond_signal(&reg.wake);
    pthread_mutex_unlock(&reg.lock);
    return j;
fail:
    jwks_destroy(j);
    return NULL;
}

const rw_jwt_keyset *rw_jwks_current(const rw_jwks *j)
{
    return atomic_load_explicit(&((rw_jwks *)j)->current, memory_order_acquire);
}

uint64_t rw_jwks_rotations(const rw_jwks *j)
{
    return atomic_load_explicit(&((rw_jwks *)j)->rotations, memory_order_acquire);
}

uint64_t rw_jwks_failures(const rw_jwks *j)
{
    return atomic_load_explicit(&((rw_jwks *)j)->failures, memory_order_relaxed);
}

void rw_jwks_free(rw_jwks *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&reg.lock);
    while (j->busy)
        pthread_cond_wait(&reg.idle, &reg.lock);
    if (j->linked) {
        for (rw_jwks **pp = &reg.sources; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == j) {
                *pp = j->next;
                break;
            }
        }
        j->linked = false;
    }
    pthread_mutex_unlock(&reg.lock);
    jwks_destroy(j);
}

/* ---- sources shared across snapshots ---- */

typedef struct shared {
    char *id; /* file|url|ca|refresh|static-key digest */
    rw_jwks *j;
    int refs;
    struct shared *next;
} shared;

static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static shared *shared_list;

rw_jwks *rw_jwks_acquire(const rw_jwks_opts *o, char *err, size_t errlen)
{
    char id[8192];
    snprintf(id, sizeof(id), "%s|%s|%s|%u|%016llx", o->file ? o->file : "", o->url ? o->url : "",
             o->ca_file ? o->ca_file : "", o->refresh_ms,
             (unsigned long long)(o->base != NULL ? rw_jwt_keyset_digest(o->base) : 0));
    pthread_mutex_lock(&shared_mu);
    for (shared *r = shared_list; r != NULL; r = r->next) {
        if (strcmp(r->id, id) == 0) {
            r->refs++;
            pthread_mutex_unlock(&shared_mu);
            return r->j;
        }
    }
    pthread_mutex_unlock(&shared_mu);
    shared *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->id = strdup(id)) == NULL) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->j = rw_jwks_new(o, err, errlen); /* the first load: outside the lock */
    if (r->j == NULL) {
        free(r->id);
        free(r);
        return NULL;
    }
    r->refs = 1;
    pthread_mutex_lock(&shared_mu);
    r->next = shared_list;
    shared_list = r;
    pthread_mutex_unlock(&shared_mu);
    return r->j;
}

void rw_jwks_release(rw_jwks *j)
{
    pthread_mutex_lock(&shared_mu);
    for (shared *r = shared_list; r != NULL; r = r->next)
        if (r->j == j)
            r->refs--;
    pthread_mutex_unlock(&shared_mu);
}

void rw_jwks_collect(void)
{
    shared *unused = NULL;
    pthread_mutex_lock(&shared_mu);
    for (shared **pp = &shared_list; *pp != NULL;) {
        shared *r = *pp;
        if (r->refs > 0) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        r->next = unused;
        unused = r;
    }
    pthread_mutex_unlock(&shared_mu);
    while (unused != NULL) { /* may wait for a fetch in progress: outside the lock */
        shared *next = unused->next;
        rw_jwks_free(unused->j);
        free(unused->id);
        free(unused);
        unused = next;
    }
}

void rw_jwks_shutdown(void)
{
    pthread_mutex_lock(&reg.lock);
    if (!reg.running) {
        pthread_mutex_unlock(&reg.lock);
        return;
    }
    if (reg.sources != NULL)
        rw_log_warn("jwks: refresher stopped with sources still registered; they will not refresh");
    reg.stopping = true;
    pthread_cond_signal(&reg.wake);
    pthread_mutex_unlock(&reg.lock);
    pthread_join(reg.thread, NULL);
    pthread_mutex_lock(&reg.lock);
    reg.running = false;
    reg.stopping = false;
    pthread_mutex_unlock(&reg.lock);
}
