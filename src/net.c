/*
 * The cell's network.  "none": a new network namespace with no interface up,
 * so nothing can be reached, not even loopback.  "loopback": a new namespace
 * with only "lo" up, private to the cell.  "host": the host's network.
 */
#include "internal.h"

#include <net/if.h>
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
