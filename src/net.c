/*
 * The cell's network.
 *
 *   none         a network namespace of its own with no interface up, so
 *                nothing can be reached, not even loopback.
 *   none-shared  the same, but one namespace shared by every such cell of
 *                this supervisor, created once: creating and tearing down a
 *                namespace per cell is the dearest part of starting one, and
 *                the kernel serialises it.
 *   loopback     a network namespace of its own with only "lo" up.
 *   host         the host's network.
 *
 * A server that runs as root keeps a few fresh, empty namespaces ready for
 * "none" cells, made by a thread of their own off the path of any request:
 * the cell is cloned into one of them instead of creating its own, which
 * takes the namespace's creation (about half a millisecond) out of every
 * cell's start.  Each is used by exactly one cell and dies with it; being
 * owned by the host's user namespace, no cell can configure it.
 *
 * none-shared is only used where it stays closed: the supervisor is root
 * (only then can a cell be cloned into it, and no cell can configure it),
 * the seccomp filter is on (it refuses every socket family but AF_UNIX, so
 * no cell can bind a port another could observe) and Landlock scopes
 * abstract Unix sockets to each cell (ABI >= 6).  Elsewhere it falls back to
 * a namespace per cell.  What the cells still share, the abstract Unix
 * socket names (visible in /proc/net/unix, and a name one cell binds is
 * taken for the others), is why it is not the default; docs/security.md.
 */
#include "internal.h"

#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int bring_up_loopback(void)
{
        struct ifreq ifr;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

        if (fd < 0)
                return -1;
        memset(&ifr, 0, sizeof(ifr));
        strcpy(ifr.ifr_name, "lo");
        rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
        if (rc == 0) {
                ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
                rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
        }
        close(fd);
        return rc;
}

int cb_net_setup(enum cb_net net)
{
        return net == CB_NET_LOOPBACK ? bring_up_loopback() : 0;
}

/*
 * A new, empty network namespace, entered by this thread just long enough
 * to hold it; then only the returned fd holds it.
 */
static int make_fresh(int home)
{
        int fd;

        if (unshare(CLONE_NEWNET) < 0)
                return -1;
        fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (setns(home, CLONE_NEWNET) < 0)
                abort(); /* never leave the caller in the wrong namespace */
        return fd;
}

static int shared_fd = -1;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void create_shared(void)
{
        int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

        if (home < 0)
                return;
        shared_fd = make_fresh(home);
        close(home);
}

int cb_net_shared_none(void)
{
        if (geteuid() != 0 || cb_landlock_abi() < 6)
                return -1;
        pthread_once(&shared_once, create_shared);
        return shared_fd;
}

int cb_net_enter(int netns)
{
        int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

        if (home < 0)
                return -1;
        if (setns(netns, CLONE_NEWNET) < 0) {
                close(home);
                return -1;
        }
        return home;
}

int cb_net_leave(int home)
{
        int rc = setns(home, CLONE_NEWNET);

        close(home);
        return rc;
}

/* ---- fresh namespaces made ahead ---- */

#define POOL_SIZE 4

static struct {
        pthread_mutex_t lock;
        pthread_cond_t room; /* signalled when a namespace is taken */
        int fd[POOL_SIZE];
        int n;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0};

/* After a failure (out of fds, max_net_namespaces reached), wait longer each time, up to 1 s. */
static void back_off(struct timespec *pause)
{
        nanosleep(pause, NULL);
        if (pause->tv_sec == 0 && pause->tv_nsec < 500000000L) {
                pause->tv_nsec *= 2;
        } else {
                pause->tv_sec = 1;
                pause->tv_nsec = 0;
        }
}

/* Meanwhile, and whenever the pool is empty, cells make their own. */
static void *keep_pool_full(void *arg)
{
        const struct timespec first_pause = {0, 10000000L};
        struct timespec pause = first_pause;
        int home = (int)(intptr_t)arg, fd;

        for (;;) {
                pthread_mutex_lock(&pool.lock);
                while (pool.n == POOL_SIZE)
                        pthread_cond_wait(&pool.room, &pool.lock);
                pthread_mutex_unlock(&pool.lock);
                fd = make_fresh(home);
                if (fd < 0) {
                        back_off(&pause);
                        continue;
                }
                pause = first_pause;
                pthread_mutex_lock(&pool.lock);
                if (pool.n < POOL_SIZE)
                        pool.fd[pool.n++] = fd;
                else
                        close(fd);
                pthread_mutex_unlock(&pool.lock);
        }
        return NULL;
}

static void start_filling(void)
{
        pthread_attr_t attr;
        pthread_t thread;
        sigset_t all, saved;
        int home;

        if (geteuid() != 0 || (home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
                return;
        /* no signal may land on the pool's thread: the caller's mask decides */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attr, keep_pool_full, (void *)(intptr_t)home) != 0)
                close(home);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

void cb_net_pool_start(void)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, start_filling);
}

int cb_net_pool_take(void)
{
        int fd = -1;

        pthread_mutex_lock(&pool.lock);
        if (pool.n > 0) {
                fd = pool.fd[--pool.n];
                pthread_cond_signal(&pool.room);
        }
        pthread_mutex_unlock(&pool.lock);
        return fd;
}
