/*
 * Removing cgroups: the reaper.
 *
 * The first time a supervisor creates cgroups it forks a small reaper
 * connected to it by a socket.  Removing a cell's cgroups is the reaper's
 * job: the supervisor sends it the cell's directory name and goes on, since
 * a cgroup whose last task is still being released refuses rmdir for a
 * moment, and a supervisor serving many cells must not wait on that.  When
 * the supervisor is gone, however it went (even SIGKILL), the socket reads
 * EOF and the reaper kills whatever is left in the supervisor's cgroups,
 * removes them all, and exits.  At start-up a supervisor also removes what
 * supervisors that are no longer alive left behind.  rmdir only ever
 * succeeds on an empty cgroup, so none of this can remove a live cell's.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void write_text(const char *dir, const char *name, const char *text)
{
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                (void)!write(fd, text, strlen(text));
                close(fd);
        }
}

/* Kill what is in a cell cgroup and remove it once empty (give up after ~2 s). */
static void remove_cell_dir(const char *dir, bool v2)
{
        struct timespec pause = {0, 2000000};

        if (v2)
                write_text(dir, "cgroup.kill", "1");
        for (int tries = 0; tries < 1000 && rmdir(dir) < 0 && errno == EBUSY; tries++)
                nanosleep(&pause, NULL);
}

/* Remove <base>/cellblock-<pid>/cell-* and the group itself. */
static void remove_group(const struct cb_cg_hier *h, const char *group_name)
{
        char group[PATH_MAX], cell[PATH_MAX + 256];
        struct dirent *e;
        DIR *d;

        snprintf(group, sizeof(group), "%s/%s", h->base, group_name);
        d = opendir(group);
        while (d && (e = readdir(d))) {
                if (e->d_type == DT_DIR && strncmp(e->d_name, "cell-", 5) == 0) {
                        snprintf(cell, sizeof(cell), "%s/%s", group, e->d_name);
                        remove_cell_dir(cell, h->v2);
                }
        }
        if (d)
                closedir(d);
        rmdir(group);
}

/* "cellblock-<pid>" or "cellblock-<pid>.supervisor": the pid, or 0. */
static pid_t group_owner(const char *name)
{
        char *end;
        long pid;

        if (strncmp(name, "cellblock-", 10) != 0)
                return 0;
        pid = strtol(name + 10, &end, 10);
        if (pid <= 0 || (*end != '\0' && strcmp(end, ".supervisor") != 0))
                return 0;
        return (pid_t)pid;
}

void cb_cgroup_sweep_stale(const struct cb_cgroup_host *host)
{
        for (size_t i = 0; i < host->n; i++) {
                DIR *d = host->h[i].writable ? opendir(host->h[i].base) : NULL;
                struct dirent *e;

                while (d && (e = readdir(d))) {
                        pid_t owner = group_owner(e->d_name);

                        if (owner && kill(owner, 0) < 0 && errno == ESRCH)
                                remove_group(&host->h[i], e->d_name);
                }
                if (d)
                        closedir(d);
        }
}

/* The supervisor is gone: remove its groups, and its v2 leaf last. */
static void clean_after(const struct cb_cgroup_host *host, pid_t supervisor)
{
        char name[64], leaf[PATH_MAX];

        snprintf(name, sizeof(name), "cellblock-%d", (int)supervisor);
        for (size_t i = 0; i < host->n; i++) {
                if (!host->h[i].writable)
                        continue;
                remove_group(&host->h[i], name);
                snprintf(leaf, sizeof(leaf), "%s/%s.supervisor", host->h[i].base, name);
                if (host->h[i].v2 && access(leaf, F_OK) == 0) {
                        /* we live in that leaf too: step out of it before removing it */
                        write_text(host->h[i].base, "cgroup.subtree_control", "-memory -pids -cpu");
                        write_text(host->h[i].base, "cgroup.procs", "0");
                        rmdir(leaf);
                }
        }
}

/* One cell's directories, in the hierarchies of its mask. */
static void remove_cell(const struct cb_cgroup_host *host, pid_t supervisor,
                        const struct cb_cgroup *cg)
{
        char dir[PATH_MAX];

        for (size_t i = 0; i < host->n; i++) {
                if (!(cg->in & (1u << i)))
                        continue;
                snprintf(dir, sizeof(dir), "%s/cellblock-%d/%s", host->h[i].base, (int)supervisor,
                         cg->name);
                remove_cell_dir(dir, host->h[i].v2);
        }
}

__attribute__((noreturn)) static void reaper_main(const struct cb_cgroup_host *host,
                                                  pid_t supervisor, int sock)
{
        static const int quiet[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2};
        struct cb_cgroup cg;
        ssize_t n;

        setsid();
        for (size_t i = 0; i < CB_ARRAY_LEN(quiet); i++)
                signal(quiet[i], SIG_IGN);
        prctl(PR_SET_NAME, "cellblock-reap");
        if (dup2(sock, 0) < 0)
                _exit(1);
        close_range(1, ~0U, 0);
        while ((n = recv(0, &cg, sizeof(cg), 0)) != 0) {
                if (n == (ssize_t)sizeof(cg)) {
                        cg.name[sizeof(cg.name) - 1] = '\0';
                        remove_cell(host, supervisor, &cg);
                } else if (n < 0 && errno != EINTR) {
                        break;
                }
        }
        clean_after(host, supervisor);
        _exit(0);
}

static int reaper_sock = -1;

int cb_cgroup_reaper_start(const struct cb_cgroup_host *host)
{
        pid_t supervisor = getpid(), pid;
        int fds[2];

        if (reaper_sock >= 0)
                return 0;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
                return -1;
        pid = fork();
        if (pid == 0)
                reaper_main(host, supervisor, fds[1]);
        close(fds[1]);
        if (pid < 0) {
                close(fds[0]);
                return -1;
        }
        /* stays open, close-on-exec, for the supervisor's whole life */
        reaper_sock = fds[0];
        return 0;
}

/* Hand a finished cell's cgroups to the reaper; false if it cannot take them. */
bool cb_cgroup_reaper_remove(const struct cb_cgroup *cg)
{
        return reaper_sock >= 0 && send(reaper_sock, cg, sizeof(*cg),
                                        MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof(*cg);
}
