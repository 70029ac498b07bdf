/*
 * The cell's user namespace: the uid/gid maps its parent writes, and the
 * identity the cell takes inside.
 *
 * Run by root, a cell's inside uid and gid map to a host id of their own:
 * CB_HOST_ID_BASE plus the host pid of the cell's init passed through a
 * keyed permutation, so no two live cells share a host uid, none is the
 * supervisor's, and the cell cannot read a host pid off its uid_map.  The
 * key is shared by every cellblock on the host through a root-only file,
 * which is what keeps ids unique across supervisors.  Run by an ordinary user, the
 * inside ids map to that user's own ids (the only mapping the kernel allows),
 * and setgroups is denied as the kernel requires for that.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEY_DIR   "/run/cellblock"
#define KEY_FILE  KEY_DIR "/host-id-key"
#define PID_BITS  22 /* pid_max is at most 2^22 */
#define HALF_BITS (PID_BITS / 2)

static uint8_t id_key[crypto_shorthash_KEYBYTES];
static bool id_key_ok;
static pthread_once_t id_key_once = PTHREAD_ONCE_INIT;

static bool read_key(int fd)
{
        return read(fd, id_key, sizeof(id_key)) == (ssize_t)sizeof(id_key);
}

/* Read the host's key, or create it: written to a temporary file, then linked in. */
static void load_id_key(void)
{
        char tmp[] = KEY_DIR "/.key-XXXXXX";
        int fd;

        if (sodium_init() < 0)
                return;
        for (int attempt = 0; attempt < 2 && !id_key_ok; attempt++) {
                fd = open(KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd >= 0) {
                        id_key_ok = read_key(fd);
                        close(fd);
                        break;
                }
                if ((mkdir(KEY_DIR, 0700) < 0 && errno != EEXIST) || (fd = mkstemp(tmp)) < 0)
                        return;
                randombytes_buf(id_key, sizeof(id_key));
                if (write(fd, id_key, sizeof(id_key)) == (ssize_t)sizeof(id_key) &&
                    fsync(fd) == 0 && link(tmp, KEY_FILE) == 0)
                        id_key_ok = true;
                close(fd);
                unlink(tmp);
        }
}

/* A keyed permutation of [0, 2^22): a four-round Feistel network over SipHash. */
static uint32_t permute_pid(uint32_t pid)
{
        uint32_t left = pid >> HALF_BITS, right = pid & ((1u << HALF_BITS) - 1);

        for (uint8_t round = 0; round < 4; round++) {
                uint8_t in[5] = {round, (uint8_t)right, (uint8_t)(right >> 8)};
                uint8_t out[crypto_shorthash_BYTES];
                uint32_t mixed;

                crypto_shorthash(out, in, sizeof(in), id_key);
                mixed =
                    (left ^ ((uint32_t)out[0] | (uint32_t)out[1] << 8)) & ((1u << HALF_BITS) - 1);
                left = right;
                right = mixed;
        }
        return left << HALF_BITS | right;
}

/* The host id of the cell whose init has this host pid. */
static unsigned host_id_for(pid_t child)
{
        pthread_once(&id_key_once, load_id_key);
        return CB_HOST_ID_BASE + (id_key_ok ? permute_pid((uint32_t)child) : (unsigned)child);
}

void cb_idmap_prepare(const cb_policy *p, pid_t child, struct cb_idmap *map)
{
        bool root = geteuid() == 0;
        unsigned host_uid = root ? host_id_for(child) : (unsigned)geteuid();
        unsigned host_gid = root ? host_uid : (unsigned)getegid();

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
