/*
 * Runs many cells through one long-lived supervisor (a cb_loop) with a mix
 * of endings, then reports what the supervisor holds afterwards, as JSON:
 *   cellblock-stress N CONCURRENCY
 * Used by the leak tests: fds, children and cgroups must be back to where
 * they started.
 */
#include "cellblock.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum ending { NORMAL, KILLED, OOM, TIMEOUT, ENDINGS };

static const char *const EXPECTED[ENDINGS] = {"exited", "killed", "oom", "timeout"};

struct job {
        cb_policy *policy;
        char *const *argv;
};

static char *const TRUE_ARGV[] = {"true", NULL};
static char *const SLEEP_ARGV[] = {"sleep", "10", NULL};
/* tail keeps a line with no newline in memory: an endless one fills it */
static char *const HOG_ARGV[] = {"tail", "/dev/zero", NULL};

static int mismatches, finished, running;
static int counts[ENDINGS];

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        while (d && (e = readdir(d)))
                n += e->d_name[0] != '.';
        if (d)
                closedir(d);
        return n - 1; /* the DIR's own fd */
}

static void on_done(cb_cell *cell, const cb_result *r, void *data)
{
        enum ending want = (enum ending)(uintptr_t)data;
        /* under an rlimit the hog sees its allocation fail instead of being killed */
        const char *expected = want == OOM && r->memory_by == CB_ENFORCE_RLIMIT ? "exited"
                                                                                 : EXPECTED[want];

        if (strcmp(cb_status_name(r->status), expected) != 0) {
                mismatches++;
                fprintf(stderr, "cell expected %s, got %s (%s %s)\n", expected,
                        cb_status_name(r->status), r->error_step, r->error_message);
        }
        counts[want]++;
        finished++;
        running--;
        cb_cell_free(cell);
}

static int start(cb_loop *loop, struct job *jobs, enum ending e)
{
        cb_spawn_opts o = cb_spawn_opts_default();
        cb_cell *cell;
        cb_result r;

        if (cb_spawn(jobs[e].policy, jobs[e].argv, &o, &cell, &r) < 0) {
                fprintf(stderr, "spawn: %s %s\n", r.error_step, r.error_message);
                return -1;
        }
        if (cb_loop_add(loop, cell, on_done, (void *)(uintptr_t)e) < 0)
                return -1;
        if (e == KILLED)
                cb_cell_kill(cell);
        running++;
        return 0;
}

static cb_policy *policy(const char *memory, const char *timeout)
{
        cb_policy *p = cb_policy_new();
        cb_error err;

        if (!p || cb_policy_set(p, "memory", memory, &err) < 0 ||
            cb_policy_set(p, "timeout", timeout, &err) < 0) {
                fprintf(stderr, "policy: %s\n", err.message);
                exit(2);
        }
        return p;
}

int main(int argc, char **argv)
{
        int total = argc > 1 ? atoi(argv[1]) : 1000, width = argc > 2 ? atoi(argv[2]) : 8;
        struct job jobs[ENDINGS] = {
            [NORMAL] = {policy("64M", "30"), TRUE_ARGV},
            [KILLED] = {policy("64M", "30"), SLEEP_ARGV},
            [OOM] = {policy("16M", "30"), HOG_ARGV},
            [TIMEOUT] = {policy("64M", "0.05"), SLEEP_ARGV},
        };
        cb_spawn_opts o = cb_spawn_opts_default();
        cb_loop *loop;
        cb_cell *warm;
        cb_result r;
        int fds_before, started = 0, children = 0;

        /* one cell first, so that what lasts as long as the process (the cgroup reaper's pipe) is
         * counted before */
        if (cb_spawn(jobs[NORMAL].policy, TRUE_ARGV, &o, &warm, &r) < 0 ||
            cb_cell_wait(warm, &r) < 0)
                return 1;
        cb_cell_free(warm);
        fds_before = count_fds();
        loop = cb_loop_new();
        while (finished < total) {
                while (started < total && running < width) {
                        if (start(loop, jobs, (enum ending)(started % ENDINGS)) < 0)
                                return 1;
                        started++;
                }
                cb_loop_dispatch(loop, 1000);
        }
        cb_loop_free(loop);
        for (int e = 0; e < ENDINGS; e++)
                cb_policy_free(jobs[e].policy);
        /* any child of ours still there (a zombie included) would be found here */
        while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
                children++;
        printf("{\"cells\": %d, \"mismatches\": %d, \"fds_before\": %d, \"fds_after\": %d, "
               "\"unreaped_children\": %d, \"exited\": %d, \"killed\": %d, \"oom\": %d, "
               "\"timeout\": %d, \"pid\": %d}\n",
               finished, mismatches, fds_before, count_fds(), children, counts[NORMAL],
               counts[KILLED], counts[OOM], counts[TIMEOUT], (int)getpid());
        return mismatches ? 1 : 0;
}
