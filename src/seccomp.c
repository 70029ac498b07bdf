/*
 * The syscall filter.  It is compiled once in the supervisor with libseccomp
 * and exported as raw BPF; the cell only loads it, as its very last step
 * before execve.
 *
 * The default profile allows ordinary programs and refuses (EPERM) what a
 * confined program has no business doing: mounting, tracing and reading
 * other processes, kernel modules and kexec, BPF and perf, userfaultfd,
 * keyrings, new namespaces, file handles, io_uring (which bypasses this
 * filter), personality changes, swap, reboot, accounting, quotas, clock
 * setting, and terminal injection.  clone3 answers ENOSYS, since its flags
 * live in memory a filter cannot read; libc then falls back to clone, whose
 * namespace flags the filter does check.  A syscall of any other ABI (i386,
 * x32) kills the process.  With no network, socket() of any family but
 * AF_UNIX answers EAFNOSUPPORT, so that cells sharing one interface-less
 * network namespace (net.c) cannot even bind a port number to signal one
 * another.
 *
 * A program depends only on the seccomp mode and whether the network is
 * "none", so each variant is compiled once per process and shared.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const char *const DENIED[] = {
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "uselib",
    "vhangup",
    "iopl",
    "ioperm",
    "modify_ldt",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "nfsservctl",
    "lookup_dcookie",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
};

static const unsigned long NAMESPACE_FLAGS[] = {
    CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET, CLONE_NEWTIME,
};

static const unsigned long TERMINAL_INJECTION[] = {TIOCSTI, TIOCLINUX};

static int deny_by_name(scmp_filter_ctx ctx, const char *name)
{
        int nr = seccomp_syscall_resolve_name(name);

        /* a syscall this architecture lacks needs no rule */
        if (nr == __NR_SCMP_ERROR)
                return 0;
        return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
}

/* socket(domain != AF_UNIX): there is no network to reach. */
static int deny_network_sockets(scmp_filter_ctx ctx)
{
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                  SCMP_A0(SCMP_CMP_LT, AF_UNIX));

        return rc ? rc
                  : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                     SCMP_A0(SCMP_CMP_GT, AF_UNIX));
}

static int add_rules(scmp_filter_ctx ctx, bool no_network)
{
        int rc = no_network ? deny_network_sockets(ctx) : 0;

        for (size_t i = 0; i < CB_ARRAY_LEN(DENIED); i++)
                rc = rc ? rc : deny_by_name(ctx, DENIED[i]);
        for (size_t i = 0; i < CB_ARRAY_LEN(NAMESPACE_FLAGS); i++) {
                unsigned long f = NAMESPACE_FLAGS[i];

                rc = rc ? rc
                        : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                           SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
        }
        for (size_t i = 0; i < CB_ARRAY_LEN(TERMINAL_INJECTION); i++) {
                rc = rc ? rc
                        : seccomp_rule_add(
                              ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TERMINAL_INJECTION[i]));
        }
        /* PER_LINUX is the only persona; a filter cannot also allow the query value */
        rc = rc ? rc
                : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                                   SCMP_A0(SCMP_CMP_NE, 0));
        rc = rc ? rc : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        return rc;
}

/* libseccomp 2.5 exports BPF only to an fd: go through a memfd. */
static int export_bpf(scmp_filter_ctx ctx, struct cb_bpf *out)
{
        int fd = memfd_create("cellblock-seccomp", MFD_CLOEXEC);
        off_t size;
        int rc = -1;

        if (fd < 0)
                return -1;
        if (seccomp_export_bpf(ctx, fd) == 0 && (size = lseek(fd, 0, SEEK_END)) > 0 &&
            size % (off_t)sizeof(struct sock_filter) == 0 &&
            size / (off_t)sizeof(struct sock_filter) <= BPF_MAXINSNS) {
                out->insns = malloc((size_t)size);
                if (out->insns && pread(fd, out->insns, (size_t)size, 0) == size) {
                        out->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
                        rc = 0;
                }
        }
        close(fd);
        return rc;
}

static int compile(bool no_network, struct cb_bpf *out)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        int rc = -1;

        if (ctx && seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) == 0 &&
            seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) == 0 && add_rules(ctx, no_network) == 0 &&
            export_bpf(ctx, out) == 0)
                rc = 0;
        seccomp_release(ctx);
        return rc;
}

static const struct cb_bpf NO_FILTER;

const struct cb_bpf *cb_seccomp_program(const cb_policy *p, cb_error *err)
{
        static struct cb_bpf cache[2];
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        struct cb_bpf *slot = &cache[cb_net_is_none(p->net)];

        if (p->seccomp == CB_SECCOMP_NONE)
                return &NO_FILTER;
        pthread_mutex_lock(&lock);
        if (!slot->len && compile(cb_net_is_none(p->net), slot) < 0) {
                free(slot->insns);
                memset(slot, 0, sizeof(*slot));
        }
        pthread_mutex_unlock(&lock);
        if (!slot->len) {
                cb_error_set(err, "seccomp", "seccomp: cannot build the syscall filter");
                return NULL;
        }
        return slot;
}

int cb_seccomp_load(const struct cb_bpf *bpf)
{
        struct sock_fprog prog = {.len = bpf->len, .filter = bpf->insns};

        if (!bpf->len)
                return 0;
        return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
