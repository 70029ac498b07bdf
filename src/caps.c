/*
 * Capabilities: the cell gives up every one it holds in its user namespace,
 * from every set, and locks the securebits so that no later execve (of a
 * setuid-root file, or as uid 0 inside) can hand any back.
 */
#include "internal.h"

#include <linux/securebits.h>
#include <sys/prctl.h>

#define LOCKED_SECUREBITS                                                                          \
        (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |                           \
         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |   \
         SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

/* `empty` is prepared by the parent (cap_init()), so nothing is allocated here. */
int cb_caps_drop_all(cap_t empty)
{
        int last = (int)cap_max_bits();

        if (cap_reset_ambient() < 0)
                return -1;
        for (int cap = 0; cap < last; cap++) {
                if (cap_drop_bound((cap_value_t)cap) < 0)
                        return -1;
        }
        /* securebits need CAP_SETPCAP, so before the sets are emptied */
        if (cap_set_secbits(LOCKED_SECUREBITS) < 0)
                return -1;
        return cap_set_proc(empty);
}
