/*
 * Resource limits.  Every cell gets no core dumps, a sane number of open
 * files, and the file-size cap when asked.  Where no cgroup can enforce a
 * limit (rootless without a delegated cgroup), the cell enforces it on
 * itself with an rlimit instead, and the result says so:
 *   memory    RLIMIT_DATA, per process
 *   pids      RLIMIT_NPROC, counted inside the cell's own user namespace
 *   cpu_time  RLIMIT_CPU, per process (SIGXCPU, then SIGKILL a second later)
 * A limit never rises above the hard limit the cell inherited, since that
 * would fail without privilege.
 */
#include "internal.h"

#include <math.h>
#include <sys/resource.h>

#define CB_NOFILE 1024

static int lower_limit(int resource, rlim_t soft, rlim_t hard)
{
        struct rlimit rl;

        if (getrlimit(resource, &rl) < 0)
                return -1;
        if (rl.rlim_max != RLIM_INFINITY && hard > rl.rlim_max)
                hard = rl.rlim_max;
        rl.rlim_cur = soft < hard ? soft : hard;
        rl.rlim_max = hard;
        return setrlimit(resource, &rl);
}

struct limit {
        const char *name;
        int resource;
        bool wanted;
        rlim_t soft, hard;
};

int cb_rlimits_apply(const cb_policy *p, const struct cb_rlimit_fallback *fb, const char **what)
{
        rlim_t cpu = (rlim_t)ceil(p->cpu_time);
        const struct limit limits[] = {
            {"RLIMIT_CORE", RLIMIT_CORE, true, 0, 0},
            {"RLIMIT_NOFILE", RLIMIT_NOFILE, true, CB_NOFILE, CB_NOFILE},
            {"RLIMIT_FSIZE", RLIMIT_FSIZE, p->file_size > 0, p->file_size, p->file_size},
            {"RLIMIT_DATA", RLIMIT_DATA, fb->memory, p->memory, p->memory},
            {"RLIMIT_NPROC", RLIMIT_NPROC, fb->pids, p->pids, p->pids},
            {"RLIMIT_CPU", RLIMIT_CPU, fb->cpu_time, cpu, cpu + 1},
        };

        for (size_t i = 0; i < CB_ARRAY_LEN(limits); i++) {
                *what = limits[i].name;
                if (limits[i].wanted &&
                    lower_limit(limits[i].resource, limits[i].soft, limits[i].hard) < 0)
                        return -1;
        }
        return 0;
}
