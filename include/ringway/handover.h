/* handover.h - zero-drop upgrades: a running ringway passes its listening
 * sockets to its successor (`ringway --upgrade`, SIGUSR2) over a UNIX
 * SOCK_SEQPACKET socket with SCM_RIGHTS.
 *
 * Protocol (every message starts with rw_ho_hdr; version 1):
 *   new -> old  HELLO     first; a connection that closes instead was a probe
 *   old -> new  FDS       count entries (rw_ho_entry) and as many fds, at
 *                         most RW_HO_BATCH per message
 *   old -> new  END       count = how many fds were sent in all
 *   new -> old  READY     the new process serves; count = 1 when it kept
 *                         the upgrade socket itself (the old must not unlink it)
 *   new -> old  ABORT     text follows: why the new process gives up
 *   old -> new  DRAINING  the old process stopped accepting and drains
 * Both ends check the peer (SO_PEERCRED): the same uid, or root. A closed
 * connection before READY is an abort. Nothing here is on the request path;
 * every call runs on the control thread (or in main before the workers). */
#ifndef RINGWAY_HANDOVER_H
#define RINGWAY_HANDOVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum rw_ho_role {
    RW_HO_DATA = 1, /* a worker's listener (addr: listen index, slot: reuseport slot) */
    RW_HO_ADMIN,    /* the admin listener */
    RW_HO_METRICS,  /* metrics_listen */
    RW_HO_UPGRADE,  /* the upgrade socket itself */
};

enum rw_ho_type { RW_HO_FDS = 1, RW_HO_END, RW_HO_READY, RW_HO_ABORT, RW_HO_DRAINING, RW_HO_HELLO };

/* A socket passed across, as the receiver sees it. */
typedef struct rw_ho_sock {
    int fd;
    uint16_t role; /* enum rw_ho_role */
    uint32_t addr;
    uint32_t slot;
    char text[52]; /* the address as the sender configured it (logs) */
} rw_ho_sock;

/* ---- the running (old) process ---- */

/* Binds and listens on the UNIX socket path (mode 0600). A stale socket file
 * (nobody accepts on it) is removed; a live one is an error ("another ringway
 * listens there"), and so is a path that is not a socket. Returns the fd,
 * or -1 with the reason in err. */
int rw_handover_listen(const char *path, char *err, size_t errlen);
/* Removes path if it is still the socket file fd is bound to (same inode). */
void rw_handover_unlink(const char *path, int fd);
/* Accepts one connection on lfd, checks its peer and waits for its HELLO;
 * returns the connection
 * (blocking, with 2 s send and receive timeouts) and the peer's pid, or -1
 * with the reason in err (err empty: nothing to accept). */
int rw_handover_accept(int lfd, pid_t *peer, char *err, size_t errlen);
/* Sends the sockets (FDS batches, then END). Returns 0 or -1 with err. */
int rw_handover_send(int conn, const rw_ho_sock *socks, size_t n, char *err, size_t errlen);
/* Reads the new process's answer without blocking: RW_HO_READY (*kept set),
 * RW_HO_ABORT (its reason in text), 0 when nothing came yet, -1 when the
 * connection closed or broke (reason in text). */
int rw_handover_poll(int conn, bool *kept, char *text, size_t cap);
/* Tells the new process the old one drains (best effort). */
void rw_handover_send_draining(int conn);

/* ---- the new process (--upgrade) ---- */

/* Connects to the old process's socket and checks its peer; returns the
 * connection and the old pid, or -1 with err. */
int rw_handover_connect(const char *path, pid_t *peer, char *err, size_t errlen);
/* Receives every socket until END (malloc'd array in *out, which the caller
 * frees after closing the fds it does not use) and the sender's pid (its
 * own word: the socket's credentials name the process that first listened
 * on it). Truncated messages
 * (MSG_CTRUNC, MSG_TRUNC) and count mismatches are errors; on error every
 * fd received is closed. Returns 0 or -1 with err. */
int rw_handover_receive(int conn, rw_ho_sock **out, size_t *n, pid_t *sender, char *err, size_t errlen);
/* Sends READY and waits up to timeout_ms for DRAINING; 0 when it came, -1
 * with err otherwise (the new process serves either way). */
int rw_handover_ready(int conn, bool kept, int timeout_ms, char *err, size_t errlen);
/* Sends ABORT with reason (best effort). */
void rw_handover_abort(int conn, const char *reason);

#endif
