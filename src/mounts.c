/*
 * The cell's filesystem view.
 *
 * The parent turns the policy into a plan: a list of mounts, symlinks and
 * small generated files, system directories first, the caller's binds after.
 * The child carries it out with the mount API on a fresh tmpfs root:
 *
 *   1. grab every bind source as a detached, recursive clone and make it
 *      read-only (unless writable), nosuid and nodev before it is attached;
 *   2. build the tree under the new root, resolving every path inside that
 *      root (RESOLVE_IN_ROOT), so a symlink in a bound tree can never steer
 *      a mkdir or a mount out to the host;
 *   3. pivot_root into it, detach the old root, make the root read-only.
 *
 * The child code here runs between clone and execve: no allocation, no stdio.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Host paths the cell sees read-only: enough for sh, coreutils and python3. */
static const char *const SYSTEM_PATHS[] = {
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/mime.types",
    "/etc/python3",
    "/etc/python3.11",
};

/* Device nodes the cell may use, and nothing else of /dev. */
static const char *const DEVICES[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                      "/dev/urandom"};

static const char *const DEV_LINKS[][2] = {
    {"/dev/fd", "/proc/self/fd"},
    {"/dev/stdin", "/proc/self/fd/0"},
    {"/dev/stdout", "/proc/self/fd/1"},
    {"/dev/stderr", "/proc/self/fd/2"},
};

/* ------------------------------------------------------------------ */
/* Parent: building the plan                                          */
/* ------------------------------------------------------------------ */

static struct cb_mount_entry *plan_add(struct cb_mount_plan *plan, enum cb_mount_kind kind,
                                       const char *src, const char *dst)
{
        struct cb_mount_entry *v = realloc(plan->v, (plan->n + 1) * sizeof(*v));

        if (!v)
                return NULL;
        plan->v = v;
        v = &plan->v[plan->n++];
        *v = (struct cb_mount_entry){.kind = kind, .src = src, .dst = dst, .src_fd = -1};
        return v;
}

static char *plan_own(struct cb_mount_plan *plan, char *s)
{
        char **v;

        if (!s)
                return NULL;
        v = realloc(plan->owned, (plan->n_owned + 1) * sizeof(*v));
        if (!v) {
                free(s);
                return NULL;
        }
        plan->owned = v;
        plan->owned[plan->n_owned++] = s;
        return s;
}

/* A system path as the host has it: a symlink stays a symlink. */
static int plan_system_path(struct cb_mount_plan *plan, const char *path)
{
        char target[PATH_MAX];
        struct stat st;
        ssize_t n;

        if (lstat(path, &st) < 0)
                return 0; /* not on this host: nothing to show */
        if (S_ISLNK(st.st_mode) && strncmp(path, "/etc/", 5) != 0) {
                n = readlink(path, target, sizeof(target) - 1);
                if (n < 0)
                        return 0;
                target[n] = '\0';
                char *owned = plan_own(plan, strdup(target));
                return owned && plan_add(plan, CB_MNT_SYMLINK, owned, path) ? 0 : -1;
        }
        return plan_add(plan, CB_MNT_BIND, path, path) ? 0 : -1;
}

static int plan_tmpfs(struct cb_mount_plan *plan, const char *dst, uint64_t size, unsigned mode,
                      bool writable)
{
        struct cb_mount_entry *e = plan_add(plan, CB_MNT_TMPFS, NULL, dst);

        if (!e)
                return -1;
        e->size = size;
        e->mode = mode;
        e->writable = writable;
        return 0;
}

static int plan_file(struct cb_mount_plan *plan, const char *dst, char *contents)
{
        return plan_own(plan, contents) && plan_add(plan, CB_MNT_FILE, contents, dst) ? 0 : -1;
}

static int plan_etc(struct cb_mount_plan *plan, const cb_policy *p)
{
        char *passwd = NULL, *group = NULL, *hosts = NULL, *hostname = NULL;
        char user[96] = "", grp[64] = "";

        if (p->uid != 0)
                snprintf(user, sizeof(user), "cell:x:%llu:%llu:cell:/tmp:/bin/sh\n",
                         (unsigned long long)p->uid, (unsigned long long)p->gid);
        if (p->gid != 0)
                snprintf(grp, sizeof(grp), "cell:x:%llu:\n", (unsigned long long)p->gid);
        if (asprintf(&passwd,
                     "root:x:0:0:root:/root:/usr/sbin/nologin\n%s"
                     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                     user) < 0)
                passwd = NULL;
        if (asprintf(&group, "root:x:0:\n%snogroup:x:65534:\n", grp) < 0)
                group = NULL;
        if (asprintf(&hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n", p->hostname) <
            0)
                hosts = NULL;
        if (asprintf(&hostname, "%s\n", p->hostname) < 0)
                hostname = NULL;
        return plan_file(plan, "/etc/passwd", passwd) | plan_file(plan, "/etc/group", group) |
               plan_file(plan, "/etc/hosts", hosts) | plan_file(plan, "/etc/hostname", hostname);
}

static int plan_dev(struct cb_mount_plan *plan)
{
        if (plan_tmpfs(plan, "/dev", 64 << 10, 0755, false) < 0)
                return -1;
        for (size_t i = 0; i < CB_ARRAY_LEN(DEVICES); i++) {
                struct cb_mount_entry *e = plan_add(plan, CB_MNT_BIND, DEVICES[i], DEVICES[i]);

                if (!e)
                        return -1;
                e->writable = true;
                e->device = true;
        }
        for (size_t i = 0; i < CB_ARRAY_LEN(DEV_LINKS); i++) {
                if (!plan_add(plan, CB_MNT_SYMLINK, DEV_LINKS[i][1], DEV_LINKS[i][0]))
                        return -1;
        }
        return plan_tmpfs(plan, "/dev/shm", CB_DEFAULT_TMP_SIZE, 01777, true);
}

static bool policy_covers(const cb_policy *p, const char *dst)
{
        const struct cb_path_list *lists[] = {&p->ro_bind, &p->bind, &p->tmpfs};

        for (size_t l = 0; l < CB_ARRAY_LEN(lists); l++) {
                for (size_t i = 0; i < lists[l]->n; i++) {
                        if (strcmp(lists[l]->v[i].dst, dst) == 0)
                                return true;
                }
        }
        return false;
}

static int plan_policy_paths(struct cb_mount_plan *plan, const cb_policy *p)
{
        for (size_t i = 0; i < p->ro_bind.n; i++) {
                if (!plan_add(plan, CB_MNT_BIND, p->ro_bind.v[i].src, p->ro_bind.v[i].dst))
                        return -1;
        }
        for (size_t i = 0; i < p->bind.n; i++) {
                struct cb_mount_entry *e =
                    plan_add(plan, CB_MNT_BIND, p->bind.v[i].src, p->bind.v[i].dst);

                if (!e)
                        return -1;
                e->writable = true;
        }
        for (size_t i = 0; i < p->tmpfs.n; i++) {
                if (plan_tmpfs(plan, p->tmpfs.v[i].dst, p->tmpfs.v[i].size, 01777, true) < 0)
                        return -1;
        }
        return 0;
}

int cb_mount_plan_build(const cb_policy *p, struct cb_mount_plan *plan, cb_error *err)
{
        int rc = 0;

        memset(plan, 0, sizeof(*plan));
        for (size_t i = 0; i < CB_ARRAY_LEN(SYSTEM_PATHS); i++)
                rc |= plan_system_path(plan, SYSTEM_PATHS[i]);
        rc |= plan_etc(plan, p);
        rc |= plan_dev(plan);
        rc |= plan_add(plan, CB_MNT_PROC, NULL, "/proc") ? 0 : -1;
        if (!policy_covers(p, "/tmp"))
                rc |= plan_tmpfs(plan, "/tmp", CB_DEFAULT_TMP_SIZE, 01777, true);
        rc |= plan_policy_paths(plan, p);
        if (rc < 0) {
                cb_mount_plan_free(plan);
                cb_error_set(err, "", "out of memory");
                return -1;
        }
        return 0;
}

void cb_mount_plan_free(struct cb_mount_plan *plan)
{
        for (size_t i = 0; i < plan->n_owned; i++)
                free(plan->owned[i]);
        free(plan->owned);
        free(plan->v);
        memset(plan, 0, sizeof(*plan));
}

/* ------------------------------------------------------------------ */
/* Child: carrying it out                                             */
/* ------------------------------------------------------------------ */

/* Async-signal-safe unsigned to text, for mount options. */
static void format_uint(char *buf, size_t size, uint64_t v, unsigned base)
{
        char tmp[24];
        size_t n = 0, i;

        do {
                tmp[n++] = (char)('0' + v % base);
                v /= base;
        } while (v && n < sizeof(tmp));
        for (i = 0; i < n && i + 1 < size; i++)
                buf[i] = tmp[n - 1 - i];
        buf[i] = '\0';
}

/* Open a path of the view, resolved as if root were "/". */
static int open_in_root(int root, const char *path, int flags)
{
        struct open_how how = {
            .flags = (uint64_t)(flags | O_CLOEXEC),
            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };

        return (int)syscall(SYS_openat2, root, path[1] ? path + 1 : ".", &how, sizeof(how));
}

/* The directory holding path's last component; *name points at that component. */
static int open_parent(int root, const char *path, const char **name)
{
        char parent[PATH_MAX];
        const char *slash = strrchr(path, '/');
        size_t len = (size_t)(slash - path);

        if (len >= sizeof(parent)) {
                errno = ENAMETOOLONG;
                return -1;
        }
        memcpy(parent, path, len);
        parent[len ? len : 1] = '\0';
        if (len == 0)
                parent[0] = '/';
        *name = slash + 1;
        return open_in_root(root, parent, O_PATH | O_DIRECTORY);
}

static int make_dir(int root, const char *path, unsigned mode)
{
        const char *name;
        int parent = open_parent(root, path, &name), rc;

        if (parent < 0)
                return -1;
        rc = mkdirat(parent, name, mode);
        close(parent);
        return rc < 0 && errno == EEXIST ? 0 : rc;
}

/* mkdir -p of path's parent directories, inside the view. */
static int make_parents(int root, const char *path)
{
        char buf[PATH_MAX];
        size_t len = strlen(path);

        if (len >= sizeof(buf)) {
                errno = ENAMETOOLONG;
                return -1;
        }
        memcpy(buf, path, len + 1);
        for (char *slash = strchr(buf + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = '\0';
                if (make_dir(root, buf, 0755) < 0)
                        return -1;
                *slash = '/';
        }
        return 0;
}

static int make_file(int root, const char *path, const char *contents)
{
        const char *name;
        int parent = open_parent(root, path, &name), fd;
        size_t len = contents ? strlen(contents) : 0;

        if (parent < 0)
                return -1;
        fd = openat(parent, name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        close(parent);
        if (fd < 0)
                return -1;
        if (len && write(fd, contents, len) != (ssize_t)len) {
                close(fd);
                errno = errno ? errno : EIO;
                return -1;
        }
        return close(fd);
}

static int make_symlink(int root, const char *path, const char *target)
{
        const char *name;
        int parent = open_parent(root, path, &name), rc;

        if (parent < 0)
                return -1;
        rc = symlinkat(target, parent, name);
        close(parent);
        return rc;
}

/* Attach a detached mount (fd) at path, creating the mount point. */
static int attach(int root, int mnt, const char *path, bool is_dir)
{
        int target, rc;

        if (make_parents(root, path) < 0)
                return -1;
        if ((is_dir ? make_dir(root, path, 0755) : make_file(root, path, NULL)) < 0)
                return -1;
        target = open_in_root(root, path, O_PATH);
        if (target < 0)
                return -1;
        rc = move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
        close(target);
        return rc;
}

static int new_fs_mount(const char *type, uint64_t size, unsigned mode, unsigned attrs)
{
        char size_opt[24], mode_opt[8];
        int fs = fsopen(type, FSOPEN_CLOEXEC), mnt = -1;

        if (fs < 0)
                return -1;
        format_uint(size_opt, sizeof(size_opt), size, 10);
        format_uint(mode_opt, sizeof(mode_opt), mode, 8);
        if ((!size || fsconfig(fs, FSCONFIG_SET_STRING, "size", size_opt, 0) == 0) &&
            (!mode || fsconfig(fs, FSCONFIG_SET_STRING, "mode", mode_opt, 0) == 0) &&
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
                mnt = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
        close(fs);
        return mnt;
}

static int grab_source(struct cb_mount_entry *e)
{
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID};
        struct stat st;

        attr.attr_set |= e->writable ? 0 : MOUNT_ATTR_RDONLY;
        attr.attr_set |= e->device ? MOUNT_ATTR_NOEXEC : MOUNT_ATTR_NODEV;
        e->src_fd = open_tree(AT_FDCWD, e->src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (e->src_fd < 0)
                return -1;
        if (mount_setattr(e->src_fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0 ||
            fstat(e->src_fd, &st) < 0)
                return -1;
        e->src_dir = S_ISDIR(st.st_mode);
        return 0;
}

int cb_mounts_grab_sources(struct cb_mount_plan *plan, const char **what)
{
        for (size_t i = 0; i < plan->n; i++) {
                struct cb_mount_entry *e = &plan->v[i];

                if (e->kind == CB_MNT_BIND && grab_source(e) < 0) {
                        *what = e->src;
                        return -1;
                }
        }
        return 0;
}

static int apply_entry(int root, struct cb_mount_entry *e)
{
        int mnt, rc;

        switch (e->kind) {
        case CB_MNT_BIND:
                rc = attach(root, e->src_fd, e->dst, e->src_dir);
                close(e->src_fd);
                e->src_fd = -1;
                return rc;
        case CB_MNT_TMPFS:
        case CB_MNT_PROC:
                mnt = e->kind == CB_MNT_PROC
                          ? new_fs_mount("proc", 0, 0,
                                         MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
                          : new_fs_mount("tmpfs", e->size, e->mode,
                                         MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
                if (mnt < 0)
                        return -1;
                rc = attach(root, mnt, e->dst, true);
                close(mnt);
                return rc;
        case CB_MNT_SYMLINK:
                return make_parents(root, e->dst) < 0 ? -1 : make_symlink(root, e->dst, e->src);
        case CB_MNT_FILE:
                return make_parents(root, e->dst) < 0 ? -1 : make_file(root, e->dst, e->src);
        }
        errno = EINVAL;
        return -1;
}

/* Once populated, tmpfs not meant to be written (such as /dev) become read-only. */
static int seal_read_only_tmpfs(int root, const struct cb_mount_plan *plan, const char **what)
{
        struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};

        for (size_t i = 0; i < plan->n; i++) {
                const struct cb_mount_entry *e = &plan->v[i];
                int fd;

                if (e->kind != CB_MNT_TMPFS || e->writable)
                        continue;
                *what = e->dst;
                fd = open_in_root(root, e->dst, O_PATH | O_DIRECTORY);
                if (fd < 0 || mount_setattr(fd, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0) {
                        if (fd >= 0)
                                close(fd);
                        return -1;
                }
                close(fd);
        }
        return 0;
}

/* Enter the new root and let go of the old one entirely. */
static int pivot_into(int root)
{
        struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};

        if (fchdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
            umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
                return -1;
        return mount_setattr(AT_FDCWD, "/", 0, &ro, sizeof(ro));
}

int cb_mounts_build_root(struct cb_mount_plan *plan, const char **what)
{
        /* where the new root is attached until pivot_root; any host dir will do */
        static const char staging[] = "/tmp";
        int root;

        *what = "/";
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -1;
        root = new_fs_mount("tmpfs", 1 << 20, 0755, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (root < 0)
                return -1;
        if (move_mount(root, "", AT_FDCWD, staging, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                goto fail;
        for (size_t i = 0; i < plan->n; i++) {
                *what = plan->v[i].dst;
                if (apply_entry(root, &plan->v[i]) < 0)
                        goto fail;
        }
        if (seal_read_only_tmpfs(root, plan, what) < 0)
                goto fail;
        *what = "pivot_root";
        if (pivot_into(root) < 0)
                goto fail;
        close(root);
        return 0;
fail:
        close(root);
        return -1;
}
