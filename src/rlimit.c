/*
 * Resource limits every cell gets: no core dumps, a sane number of open
 * files, and the file-size cap when asked.  A limit never rises above the
 * hard limit the cell inherited, since that would fail without privilege.
 */
#include "internal.h"

#include <sys/resource.h>

#define CB_NOFILE 1024

static int lower_limit(int resource, rlim_t value)
{
        struct rlimit rl;

        if (getrlimit(resource, &rl) < 0)
                return -1;
        if (rl.rlim_max != RLIM_INFINITY && value > rl.rlim_max)
                value = rl.rlim_max;
        rl.rlim_cur = rl.rlim_max = value;
        return setrlimit(resource, &rl);
}

int cb_rlimits_apply(const cb_policy *p, const char **what)
{
        *what = "RLIMIT_CORE";
        if (lower_limit(RLIMIT_CORE, 0) < 0)
                return -1;
        *what = "RLIMIT_NOFILE";
        if (lower_limit(RLIMIT_NOFILE, CB_NOFILE) < 0)
                return -1;
        *what = "RLIMIT_FSIZE";
        if (p->file_size && lower_limit(RLIMIT_FSIZE, (rlim_t)p->file_size) < 0)
                return -1;
        return 0;
}
