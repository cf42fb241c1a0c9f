/* net.h - socket set-up helpers (not on the request path except rw_net_upstream_socket). */
#ifndef RINGWAY_NET_H
#define RINGWAY_NET_H

#include <stddef.h>
#include <sys/socket.h>

#include "ringway/config.h"

/* Opens a non-blocking listening socket on addr with SO_REUSEADDR and
 * SO_REUSEPORT (IPV6_V6ONLY for v6). Returns the fd or -errno. */
int rw_net_listen(const rw_sockaddr *addr, int backlog, int reuseport);

/* Longest CPU-steering program rw_net_cpu_steering_prog writes (the kernel's
 * BPF_MAXINSNS): enough for 1024 workers on distinct CPUs (2 per CPU + 3). */
#define RW_NET_STEER_MAX_INSNS 4096

struct sock_filter;

/* Builds the classic BPF program for SO_ATTACH_REUSEPORT_CBPF that steers a
 * new connection to the socket of the worker running on the CPU that handles
 * its SYN. worker_cpu[i] is the CPU worker i is pinned to (-1: not pinned);
 * socket index i of the reuseport group must be worker i's. Every path
 * returns an index below n: a CPU no worker is pinned to (or unpinned
 * workers) gets cpu % n; a CPU with several workers (more workers than CPUs)
 * gets one of them at random. Writes at most cap instructions into out and
 * returns how many, or -EINVAL (n < 1) / -E2BIG (cap too small). */
int rw_net_cpu_steering_prog(const int *worker_cpu, int n, struct sock_filter *out, size_t cap);

/* Attaches that program to the reuseport group fd belongs to (the group's
 * program is shared: one call per listen address, after every socket of the
 * group has joined it). Returns 0 or -errno. */
int rw_net_attach_cpu_steering(int fd, const int *worker_cpu, int n);

/* Opens a non-blocking TCP socket for family with TCP_NODELAY. Returns fd or -errno. */
int rw_net_upstream_socket(int family);

/* Sets TCP_NODELAY on a connected socket; returns 0 or -errno. */
int rw_net_nodelay(int fd);

/* Writes the numeric host of ss (no port) into out; returns its length. */
size_t rw_net_addr_text(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
