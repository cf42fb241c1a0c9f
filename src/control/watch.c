/* watch.c - see watch.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "watch.h"
#include "ringway/common.h"
#include "ringway/log.h"

/* FNV-1a of the file's content (following symlinks); 0 when unreadable. */
static uint64_t content_hash(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        memset(st, 0, sizeof(*st));
        return 0;
    }
    if (fstat(fd, st) != 0)
        memset(st, 0, sizeof(*st));
    uint64_t h = RW_FNV1A_INIT;
    char buf[8192];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        h = rw_fnv1a(h, buf, (size_t)n);
    close(fd);
    return n < 0 ? 0 : (h == 0 ? 1 : h);
}

int rw_watch_init(rw_watch *w, const char *path, uint64_t loaded, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->ifd = -1;
    if (snprintf(w->path, sizeof(w->path), "%s", path) >= (int)sizeof(w->path))
        return -1;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash != NULL ? slash + 1 : dir;
    if (snprintf(w->base, sizeof(w->base), "%s", base) >= (int)sizeof(w->base))
        return -1;
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    w->hash = content_hash(w->path, &w->st);
    if (loaded != 0 && w->hash != 0 && w->hash != loaded) {
        w->hash = loaded; /* changed since it was loaded, before the watch began: look at it now */
        w->due_ms = now_ms;
    }
    w->poll_ms = now_ms + RW_WATCH_POLL_MS;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd >= 0 && inotify_add_watch(w->ifd, dir,
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB |
                                             IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        rw_log_warn("watch_config: cannot watch %s (%s); checking the file every %d ms instead", dir,
                    strerror(errno), RW_WATCH_POLL_MS);
        close(w->ifd);
        w->ifd = -1;
    }
    return 0;
}

int rw_watch_fd(const rw_watch *w)
{
    return w->ifd;
}

void rw_watch_events(rw_watch *w, uint64_t now_ms)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool relevant = false;
    ssize_t n;
    while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            /* The file itself, or a ConfigMap/Secret mount's "..data" link
             * (and its "..data_tmp" predecessor) being swapped. Events
             * without a name concern the directory. */
            if (ev->len == 0 || strcmp(ev->name, w->base) == 0 || strncmp(ev->name, "..", 2) == 0)
                relevant = true;
            p += sizeof(*ev) + ev->len;
        }
    }
    if (relevant && w->due_ms == 0)
        w->due_ms = now_ms + RW_WATCH_DEBOUNCE_MS;
}

int rw_watch_timeout(const rw_watch *w, uint64_t now_ms)
{
    uint64_t at = w->due_ms != 0 && w->due_ms < w->poll_ms ? w->due_ms : w->poll_ms;
    return at > now_ms ? (int)(at - now_ms) : 0;
}

bool rw_watch_changed(rw_watch *w, uint64_t now_ms)
{
    bool look = w->due_ms != 0 && now_ms >= w->due_ms;
    if (now_ms >= w->poll_ms) {
        /* The safety net: what the path resolves to, and when it changed. */
        struct stat st;
        w->poll_ms = now_ms + RW_WATCH_POLL_MS;
        if (stat(w->path, &st) != 0)
            memset(&st, 0, sizeof(st));
        if (st.st_ino != w->st.st_ino || st.st_dev != w->st.st_dev || st.st_size != w->st.st_size ||
            st.st_mtim.tv_sec != w->st.st_mtim.tv_sec || st.st_mtim.tv_nsec != w->st.st_mtim.tv_nsec)
            look = true;
    }
    if (!look)
        return false;
    w->due_ms = 0;
    uint64_t h = content_hash(w->path, &w->st);
    if (h == w->hash || h == 0)
        return false; /* unchanged, or gone for a moment (a swap in progress): the next event or poll tells */
    w->hash = h;
    return true;
}

void rw_watch_free(rw_watch *w)
{
    if (w->ifd >= 0)
        close(w->ifd);
    w->ifd = -1;
}

/* ---- directory sets ---- */

void rw_dirwatch_init(rw_dirwatch *w, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->poll_ms = now_ms + RW_WATCH_POLL_MS;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd == -1)
        rw_log_warn("tls: inotify_init1: %s; checking certificate files every %d ms instead", strerror(errno),
                    RW_WATCH_POLL_MS);
}

void rw_dirwatch_clear(rw_dirwatch *w)
{
    for (int i = 0; i < w->nwd; i++)
        inotify_rm_watch(w->ifd, w->wd[i]); /* fails harmlessly for a directory already gone */
    w->nwd = 0;
}

void rw_dirwatch_add(rw_dirwatch *w, const char *dir)
{
    if (w->ifd == -1)
        return;
    if (w->nwd == RW_DIRWATCH_MAX) {
        rw_log_warn("tls: more than %d certificate directories; %s is checked every %d ms", RW_DIRWATCH_MAX,
                    dir, RW_WATCH_POLL_MS);
        return;
    }
    int wd = inotify_add_watch(w->ifd, dir,
                               IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MODIFY |
                                   IN_DELETE_SELF | IN_MOVE_SELF);
    if (wd == -1) {
        rw_log_warn("tls: cannot watch %s (%s); checking it every %d ms instead", dir, strerror(errno),
                    RW_WATCH_POLL_MS);
        return;
    }
    for (int i = 0; i < w->nwd; i++)
        if (w->wd[i] == wd)
            return; /* the same directory by another name */
    w->wd[w->nwd++] = wd;
}

int rw_dirwatch_fd(const rw_dirwatch *w)
{
    return w->ifd;
}

void rw_dirwatch_events(rw_dirwatch *w, uint64_t now_ms)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    ssize_t n;
    while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            /* any change in a certificate directory (the stat check decides),
             * but not the end of a watch the set dropped */
            if (!(ev->mask & IN_IGNORED))
                any = true;
            p += sizeof(*ev) + ev->len;
        }
    }
    if (any && w->due_ms == 0)
        w->due_ms = now_ms + RW_WATCH_DEBOUNCE_MS;
}

int rw_dirwatch_timeout(const rw_dirwatch *w, uint64_t now_ms)
{
    uint64_t at = w->due_ms != 0 && w->due_ms < w->poll_ms ? w->due_ms : w->poll_ms;
    return at > now_ms ? (int)(at - now_ms) : 0;
}

bool rw_dirwatch_due(rw_dirwatch *w, uint64_t now_ms)
{
    bool due = w->due_ms != 0 && now_ms >= w->due_ms;
    if (now_ms >= w->poll_ms) {
        w->poll_ms = now_ms + RW_WATCH_POLL_MS;
        due = true;
    }
    if (due)
        w->due_ms = 0;
    return due;
}

void rw_dirwatch_free(rw_dirwatch *w)
{
    if (w->ifd >= 0)
        close(w->ifd);
    w->ifd = -1;
    w->nwd = 0;
}
