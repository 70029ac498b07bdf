/*
 * Landlock: a second, independent fence matching the mount view.  Read and
 * execute beneath read-only binds, read-write beneath writable binds and
 * tmpfs, read-only /proc, read/write (but no ioctl) on the few device nodes.
 * Nothing else of the filesystem, even if some mount trick exposed it.
 *
 * By ABI: >= 4 also denies TCP bind/connect when the network is "none";
 * >= 6 also scopes abstract Unix sockets and signals to the cell, so it
 * cannot reach an abstract socket or signal a process outside it.
 *
 * The kernel headers of the build host may predate these ABIs, so the
 * constants are spelt out here, from the kernel's UAPI.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FS_EXECUTE     (1ULL << 0)
#define FS_WRITE_FILE  (1ULL << 1)
#define FS_READ_FILE   (1ULL << 2)
#define FS_READ_DIR    (1ULL << 3)
#define FS_REMOVE_DIR  (1ULL << 4)
#define FS_REMOVE_FILE (1ULL << 5)
#define FS_MAKE_CHAR   (1ULL << 6)
#define FS_MAKE_DIR    (1ULL << 7)
#define FS_MAKE_REG    (1ULL << 8)
#define FS_MAKE_SOCK   (1ULL << 9)
#define FS_MAKE_FIFO   (1ULL << 10)
#define FS_MAKE_BLOCK  (1ULL << 11)
#define FS_MAKE_SYM    (1ULL << 12)
#define FS_REFER       (1ULL << 13) /* ABI 2 */
#define FS_TRUNCATE    (1ULL << 14) /* ABI 3 */
#define FS_IOCTL_DEV   (1ULL << 15) /* ABI 5 */

#define NET_BIND_TCP    (1ULL << 0) /* ABI 4 */
#define NET_CONNECT_TCP (1ULL << 1) /* ABI 4 */

#define SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define SCOPE_SIGNAL               (1ULL << 1) /* ABI 6 */

#define CREATE_RULESET_VERSION (1U << 0)
#define RULE_PATH_BENEATH      1

struct ruleset_attr {
        __u64 handled_access_fs;
        __u64 handled_access_net;
        __u64 scoped;
};

struct path_beneath_attr {
        __u64 allowed_access;
        __s32 parent_fd;
} __attribute__((packed));

#define READ_ONLY (FS_EXECUTE | FS_READ_FILE | FS_READ_DIR)
#define READ_WRITE                                                                                 \
        (READ_ONLY | FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG |  \
         FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE)
#define DEVICE      (FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE)
#define FILE_RIGHTS (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)

int cb_landlock_abi(void)
{
        long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, CREATE_RULESET_VERSION);

        return abi < 0 ? 0 : (int)abi;
}

static __u64 handled_fs(int abi)
{
        __u64 fs = (FS_MAKE_SYM << 1) - 1;

        if (abi >= 2)
                fs |= FS_REFER;
        if (abi >= 3)
                fs |= FS_TRUNCATE;
        if (abi >= 5)
                fs |= FS_IOCTL_DEV;
        return fs;
}

static __u64 entry_rights(const struct cb_mount_entry *e)
{
        switch (e->kind) {
        case CB_MNT_BIND:
                return e->device ? DEVICE : e->writable ? READ_WRITE : READ_ONLY;
        case CB_MNT_TMPFS:
                return e->writable ? READ_WRITE : FS_READ_DIR | FS_READ_FILE;
        case CB_MNT_PROC:
                return FS_READ_DIR | FS_READ_FILE;
        case CB_MNT_FILE:
                return FS_READ_FILE;
        case CB_MNT_SYMLINK:
                break;
        }
        return 0;
}

static int allow_path(int ruleset, const char *path, __u64 rights, __u64 handled)
{
        struct path_beneath_attr rule = {.parent_fd = open(path, O_PATH | O_CLOEXEC)};
        struct stat st;
        int rc = -1;

        if (rule.parent_fd < 0)
                return -1;
        if (fstat(rule.parent_fd, &st) == 0) {
                rule.allowed_access =
                    rights & handled & (S_ISDIR(st.st_mode) ? ~0ULL : FILE_RIGHTS);
                rc = (int)syscall(SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, &rule, 0);
        }
        close(rule.parent_fd);
        return rc;
}

static size_t attr_size(int abi)
{
        if (abi >= 6)
                return sizeof(struct ruleset_attr);
        if (abi >= 4)
                return offsetof(struct ruleset_attr, scoped);
        return offsetof(struct ruleset_attr, handled_access_net);
}

static int add_rules(int ruleset, const struct cb_mount_plan *plan, __u64 handled,
                     const char **what)
{
        *what = "/";
        if (allow_path(ruleset, "/", FS_READ_DIR, handled) < 0)
                return -1;
        for (size_t i = 0; i < plan->n; i++) {
                __u64 rights = entry_rights(&plan->v[i]);

                *what = plan->v[i].dst;
                if (rights && allow_path(ruleset, plan->v[i].dst, rights, handled) < 0)
                        return -1;
        }
        return 0;
}

/* Runs in the cell, after pivot_root, with paths as the cell sees them. */
int cb_landlock_apply(const struct cb_mount_plan *plan, enum cb_net net, int abi, const char **what)
{
        struct ruleset_attr attr = {.handled_access_fs = handled_fs(abi)};
        int ruleset, rc;

        *what = "landlock_create_ruleset";
        if (abi < 1) {
                errno = EOPNOTSUPP;
                return -1;
        }
        if (abi >= 4 && cb_net_is_none(net))
                attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP;
        if (abi >= 6)
                attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL;
        ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size(abi), 0);
        if (ruleset < 0)
                return -1;
        rc = add_rules(ruleset, plan, attr.handled_access_fs, what);
        if (rc == 0) {
                *what = "landlock_restrict_self";
                rc = (int)syscall(SYS_landlock_restrict_self, ruleset, 0);
        }
        close(ruleset);
        return rc;
}
