/*
 * The cell's network.
 *
 *   none      no interface up, so nothing can be reached, not even loopback.
 *   loopback  a network namespace of its own with only "lo" up.
 *   host      the host's network.
 *
 * For "none", creating and tearing down a network namespace per cell is the
 * most expensive part of starting one (and the kernel serialises it), so
 * when it is just as tight, cells share one namespace, created once, that
 * never has an interface up.  Just as tight means: the supervisor is root
 * (only then can the cell be cloned into it and no cell can configure it),
 * Landlock scopes abstract Unix sockets to each cell (ABI >= 6), and the
 * seccomp filter refuses every socket family but AF_UNIX (seccomp.c), so no
 * cell can bind even a port number another cell could observe.
 * docs/performance.md says what remains shared.
 */
#include "internal.h"

#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
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

static int shared_fd = -1;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

/* A new network namespace, entered by this thread just long enough to hold it. */
static void create_shared(void)
{
        int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

        if (home < 0)
                return;
        if (unshare(CLONE_NEWNET) == 0) {
                shared_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (setns(home, CLONE_NEWNET) < 0)
                        abort(); /* never leave the caller in the wrong namespace */
        }
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
