/*
 * The cell's user namespace: the uid/gid maps its parent writes, and the
 * identity the cell takes inside.
 *
 * Run by root, a cell's inside uid and gid map to a host id of their own,
 * CB_HOST_ID_BASE + the host pid of the cell's init, so no two live cells
 * share a host uid and none is the supervisor's.  Run by an ordinary user, the
 * inside ids map to that user's own ids (the only mapping the kernel allows),
 * and setgroups is denied as the kernel requires for that.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void cb_idmap_prepare(const cb_policy *p, pid_t child, struct cb_idmap *map)
{
        bool root = geteuid() == 0;
        unsigned host_uid = root ? CB_HOST_ID_BASE + (unsigned)child : (unsigned)geteuid();
        unsigned host_gid = root ? CB_HOST_ID_BASE + (unsigned)child : (unsigned)getegid();

        snprintf(map->uid_map, sizeof(map->uid_map), "%llu %u 1\n", (unsigned long long)p->uid,
                 host_uid);
        snprintf(map->gid_map, sizeof(map->gid_map), "%llu %u 1\n", (unsigned long long)p->gid,
                 host_gid);
        map->deny_setgroups = !root;
}

static int write_proc_file(int dir, const char *name, const char *text)
{
        int fd = openat(dir, name, O_WRONLY | O_CLOEXEC);
        ssize_t len = (ssize_t)strlen(text), n;
        int saved;

        if (fd < 0)
                return -1;
        n = write(fd, text, (size_t)len);
        saved = errno;
        close(fd);
        errno = n == len ? 0 : (n < 0 ? saved : EIO);
        return n == len ? 0 : -1;
}

int cb_idmap_write(pid_t child, const struct cb_idmap *map, const char **what)
{
        char path[32];
        int dir, rc = -1;

        snprintf(path, sizeof(path), "/proc/%d", (int)child);
        dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        *what = "/proc/<pid>";
        if (dir < 0)
                return -1;
        if (map->deny_setgroups && write_proc_file(dir, "setgroups", "deny") < 0)
                *what = "setgroups";
        else if (write_proc_file(dir, "uid_map", map->uid_map) < 0)
                *what = "uid_map";
        else if (write_proc_file(dir, "gid_map", map->gid_map) < 0)
                *what = "gid_map";
        else
                rc = 0;
        close(dir);
        return rc;
}

/*
 * Become the cell's user.  Raw syscalls: the glibc wrappers would try to
 * signal the parent's other threads, which do not exist in this child.
 * The capabilities held in the cell's own user namespace survive this (the
 * ids before it are not the namespace's root) and are dropped later.
 */
int cb_identity_assume(const cb_policy *p, bool drop_groups)
{
        if (drop_groups && syscall(SYS_setgroups, 0, NULL) < 0)
                return -1;
        if (syscall(SYS_setresgid, (gid_t)p->gid, (gid_t)p->gid, (gid_t)p->gid) < 0)
                return -1;
        return (int)syscall(SYS_setresuid, (uid_t)p->uid, (uid_t)p->uid, (uid_t)p->uid);
}
