/* net.c - socket set-up helpers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
fail : {
    int e = errno;
    close(fd);
    return -e;
}
}

/* CPU steering for a reuseport group (SO_ATTACH_REUSEPORT_CBPF).
 *
 * How the kernel runs it (net/core/sock_reuseport.c, reuseport_select_sock and
 * run_bpf_filter, the same from 4.6 to 6.x): on a SYN to a listening port
 * whose group has a program, the program runs in the softirq that handles the
 * SYN, i.e. on the CPU of the NIC queue (RSS/RPS) or, on loopback, on the
 * connecting thread's CPU. Its return value is an index into the group's
 * socks[] array. An index >= the number of sockets in the group is "invalid"
 * and the kernel falls back to the default 4-tuple hash (so a bad program
 * never drops a connection, it only loses the steering); we still never
 * return one. socks[] is in the order the sockets joined the group: a TCP
 * socket joins at listen() (inet_hash -> reuseport_add_sock appends), and
 * rw_server_new opens worker 0's listener, then worker 1's, ..., so index i
 * is worker i's socket for every listen address. A socket that leaves the
 * group (close) is replaced in its slot by the last one, which is why the
 * program is attached once, after every worker's socket exists, and only
 * matters until drain closes the listeners.
 *
 * Program (A is the accumulator; jeq does not change it):
 *   ld   #cpu                     A = CPU handling the SYN (SKF_AD_CPU)
 *   per distinct worker CPU c, workers L[0..k) on it:
 *     jeq  #c, 0, <len of block>
 *       k == 1:  ret #L[0]
 *       k > 1:   ld #rand; mod #k; mul #stride; add #L[0]; ret A
 *                (ringway pins worker i to cpus[i % ncpus], so the workers
 *                of one CPU are L[0], L[0]+stride, ...; a list that is not
 *                evenly spaced gets L[0] alone)
 *   mod  #n; ret A                CPU without a worker, or unpinned: cpu % n
 * When worker i runs on CPU i for every i (or none is pinned), the whole
 * program is the last three instructions. Jump offsets stay below 8 (they
 * are 8 bits wide), and the length is at most 2n + 3 (<= BPF_MAXINSNS). */
int rw_net_cpu_steering_prog(const int *worker_cpu, int n, struct sock_filter *out, size_t cap)
{
    if (n < 1)
        return -EINVAL;
    size_t len = 0;
#define EMIT(c, t, f, kk)                                                                                    \
    do {                                                                                                     \
        if (len >= cap)                                                                                      \
            return -E2BIG;                                                                                   \
        out[len++] = (struct sock_filter){(uint16_t)(c), (uint8_t)(t), (uint8_t)(f), (uint32_t)(kk)};        \
    } while (0)
    EMIT(BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU));
    bool identity = true;
    for (int i = 0; i < n && identity; i++)
        identity = worker_cpu[i] == i || worker_cpu[i] < 0;
    for (int i = 0; i < n && !identity; i++) {
        int c = worker_cpu[i];
        bool first = c >= 0;
        for (int j = 0; j < i && first; j++)
            first = worker_cpu[j] != c;
        if (!first)
            continue;
        int k = 0, stride = 0, prev = i;
        bool even = true;
        for (int j = i; j < n; j++) {
            if (worker_cpu[j] != c)
                continue;
            if (k == 1)
                stride = j - i;
            else if (k > 1 && j - prev != stride)
                even = false;
            prev = j;
            k++;
        }
        if (k == 1 || !even) {
            EMIT(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, c);
            EMIT(BPF_RET | BPF_K, 0, 0, i);
        } else {
            EMIT(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, c);
            EMIT(BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM));
            EMIT(BPF_ALU | BPF_MOD | BPF_K, 0, 0, k);
            EMIT(BPF_ALU | BPF_MUL | BPF_K, 0, 0, stride);
            EMIT(BPF_ALU | BPF_ADD | BPF_K, 0, 0, i);
            EMIT(BPF_RET | BPF_A, 0, 0, 0);
        }
    }
    EMIT(BPF_ALU | BPF_MOD | BPF_K, 0, 0, n);
    EMIT(BPF_RET | BPF_A, 0, 0, 0);
#undef EMIT
    return (int)len;
}

int rw_net_attach_cpu_steering(int fd, const int *worker_cpu, int n)
{
    struct sock_filter *prog = malloc(sizeof(*prog) * RW_NET_STEER_MAX_INSNS);
    if (prog == NULL)
        return -ENOMEM;
    int len = rw_net_cpu_steering_prog(worker_cpu, n, prog, RW_NET_STEER_MAX_INSNS);
    int rc = len;
    if (len > 0) {
        struct sock_fprog fp = {.len = (unsigned short)len, .filter = prog};
        rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fp, sizeof(fp)) == -1 ? -errno : 0;
    }
    free(prog);
    return rc;
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
