/* net.c - socket set-up helpers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ringway/log.h"
#include "ringway/net.h"

int rw_net_listen(const rw_sockaddr *addr, int backlog, int reuseport)
{
    int family = addr->ss.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
        goto fail;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) == -1)
        goto fail;
    if (listen(fd, backlog) == -1)
        goto fail;
    return fd;
fail: {
    int e = errno;
    close(fd);
    return -e;
}
}

int rw_net_upstream_socket(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int rw_net_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ? -errno : 0;
}

size_t rw_net_addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    const char *r = NULL;
    if (ss->ss_family == AF_INET) {
        r = inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)cap);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            r = inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
        else
            r = inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)cap);
    }
    if (r == NULL) {
        snprintf(out, cap, "unknown");
    }
    return strlen(out);
}
