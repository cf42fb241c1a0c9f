/* net.h - socket set-up helpers (not on the request path except rw_net_upstream_socket). */
#ifndef RINGWAY_NET_H
#define RINGWAY_NET_H

#include <stddef.h>
#include <sys/socket.h>

#include "ringway/config.h"

/* Opens a non-blocking listening socket on addr with SO_REUSEADDR and
 * SO_REUSEPORT (IPV6_V6ONLY for v6). Returns the fd or -errno. */
int rw_net_listen(const rw_sockaddr *addr, int backlog, int reuseport);

/* Opens a non-blocking TCP socket for family with TCP_NODELAY. Returns fd or -errno. */
int rw_net_upstream_socket(int family);

/* Sets TCP_NODELAY on a connected socket; returns 0 or -errno. */
int rw_net_nodelay(int fd);

/* Writes the numeric host of ss (no port) into out; returns its length. */
size_t rw_net_addr_text(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
