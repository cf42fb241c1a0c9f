/* watch.h - private to src/control: notices that the config file changed,
 * for --watch-config. inotify on the file's directory (which also sees a
 * Kubernetes ConfigMap or Secret mount swap its "..data" symlink), a
 * debounce, and a content hash so that only a real change reloads; a stat
 * poll every RW_WATCH_POLL_MS is the safety net where inotify is missing or
 * out of watches. Owned and driven by the control thread. */
#ifndef RINGWAY_WATCH_H
#define RINGWAY_WATCH_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#define RW_WATCH_DEBOUNCE_MS 200
#define RW_WATCH_POLL_MS 1000

typedef struct rw_watch {
    int ifd;             /* inotify, -1 when unavailable (polling only) */
    char path[PATH_MAX]; /* the config file as given */
    char base[NAME_MAX + 1];
    uint64_t hash;    /* FNV-1a of the content last seen (0: unreadable) */
    struct stat st;   /* what path resolved to last time */
    uint64_t due_ms;  /* a change was signalled: look at it then (0: none) */
    uint64_t poll_ms; /* next stat poll */
} rw_watch;

/* Starts watching path (hashing its current content); loaded is the hash of
 * the content the running config came from (rw_config.source_hash, 0:
 * unknown), so an edit made between the load and this call is not missed.
 * 0, or -1 when the path is unusable. Without inotify it still works, by
 * polling. */
int rw_watch_init(rw_watch *w, const char *path, uint64_t loaded, uint64_t now_ms);
/* The fd to poll for events, or -1. */
int rw_watch_fd(const rw_watch *w);
/* Reads the pending inotify events (call when the fd is readable). */
void rw_watch_events(rw_watch *w, uint64_t now_ms);
/* Milliseconds until rw_watch_changed has something to look at. */
int rw_watch_timeout(const rw_watch *w, uint64_t now_ms);
/* True once when the file's content differs from the last seen (after the
 * debounce); remembers the new content. */
bool rw_watch_changed(rw_watch *w, uint64_t now_ms);
/* Stops watching. */
void rw_watch_free(rw_watch *w);

/* A set of directories where any change is worth a look (the TLS listeners'
 * certificate and key files, whose own check is a cheap stat): one inotify
 * fd for all of them (a Kubernetes Secret mount's "..data" swap shows as an
 * event in the directory), the same debounce, and a look every
 * RW_WATCH_POLL_MS anyway as the safety net (no inotify, a symlink into
 * another directory, a change in place through a link). Control thread. */
#define RW_DIRWATCH_MAX 32

typedef struct rw_dirwatch {
    int ifd;                 /* inotify, -1 when unavailable (polling only) */
    int wd[RW_DIRWATCH_MAX]; /* the watches of the current set */
    int nwd;
    uint64_t due_ms;  /* an event came: look then (0: none) */
    uint64_t poll_ms; /* next safety-net look */
} rw_dirwatch;

/* Starts with an empty set (inotify unavailable: polling only). */
void rw_dirwatch_init(rw_dirwatch *w, uint64_t now_ms);
/* Forgets every directory of the set. */
void rw_dirwatch_clear(rw_dirwatch *w);
/* Adds dir to the set (a failure is logged; polling covers it). */
void rw_dirwatch_add(rw_dirwatch *w, const char *dir);
/* The fd to poll for events, or -1. */
int rw_dirwatch_fd(const rw_dirwatch *w);
/* Reads the pending events (call when the fd is readable). */
void rw_dirwatch_events(rw_dirwatch *w, uint64_t now_ms);
/* Milliseconds until rw_dirwatch_due may say yes. */
int rw_dirwatch_timeout(const rw_dirwatch *w, uint64_t now_ms);
/* True (once) when an event's debounce ended or the safety-net period came. */
bool rw_dirwatch_due(rw_dirwatch *w, uint64_t now_ms);
/* Stops watching. */
void rw_dirwatch_free(rw_dirwatch *w);

#endif
