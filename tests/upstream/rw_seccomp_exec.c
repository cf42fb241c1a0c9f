/* rw_seccomp_exec: runs a command under a seccomp filter that refuses the
 * io_uring system calls named on the command line with EPERM, the way a
 * container runtime's default profile does (containerd 2.0 and Docker refuse
 * all three; some profiles only io_uring_enter).
 *
 *   rw_seccomp_exec [--deny-setup] [--deny-enter] [--deny-register] -- CMD ARGS...
 *
 * A classic BPF program with no library: check the architecture, load the
 * system call number, return ERRNO(EPERM) for the denied ones. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define RW_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define RW_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "rw_seccomp_exec: unknown architecture"
#endif

int main(int argc, char **argv)
{
    int deny[3], ndeny = 0, i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--deny-setup") == 0)
            deny[ndeny++] = __NR_io_uring_setup;
        else if (strcmp(argv[i], "--deny-enter") == 0)
            deny[ndeny++] = __NR_io_uring_enter;
        else if (strcmp(argv[i], "--deny-register") == 0)
            deny[ndeny++] = __NR_io_uring_register;
        else {
            fprintf(stderr,
                    "usage: rw_seccomp_exec [--deny-setup] [--deny-enter] [--deny-register] -- CMD...\n");
            return 2;
        }
        if (ndeny > 3)
            return 2;
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "rw_seccomp_exec: no command\n");
        return 2;
    }
    struct sock_filter prog[16];
    int n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RW_AUDIT_ARCH, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int k = 0; k < ndeny; k++) {
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)deny[k], 0, 1);
        prog[n++] =
            (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
    }
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog fp = {.len = (unsigned short)n, .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) != 0) {
        perror("rw_seccomp_exec: seccomp");
        return 1;
    }
    execvp(argv[i + 1], argv + i + 1);
    perror("rw_seccomp_exec: exec");
    return 127;
}
