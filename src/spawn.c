/*
 * Starting a cell: clone3 into new namespaces, the parent/child handshake,
 * and the child's ordered confinement.
 *
 * Everything the child needs is prepared by the parent before clone3 (the
 * mount plan, the compiled seccomp filter, the environment), because the
 * child of a raw clone3 may not allocate: another thread of the parent may
 * have held the allocator's lock at that instant.
 *
 * The handshake uses two pipes:
 *   sync    parent -> child.  One byte releases the child once its uid/gid
 *           maps are written.  The parent then keeps its end open until the
 *           cell reports its execve, so the child can tell, after re-arming
 *           its parent-death signal, that the parent is still there.
 *   report  child -> supervisor, close-on-exec.  Fixed-size records: a
 *           failed step with its errno, execve done or failed, and (from the
 *           cell's init) how the program ended.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Where the child keeps its private fds once stdio is in place. */
#define REPORT_FD 3
#define SYNC_FD   4

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

static const char *const STEP_NAMES[CB_STEP_COUNT] = {
    [CB_STEP_POLICY] = "policy",
    [CB_STEP_CLONE] = "clone",
    [CB_STEP_CGROUP] = "cgroup",
    [CB_STEP_USERNS] = "userns",
    [CB_STEP_PARENT_DEATH] = "parent-death",
    [CB_STEP_ARRANGE_FDS] = "fds",
    [CB_STEP_RELEASE] = "release",
    [CB_STEP_MOUNT_SOURCES] = "mount-sources",
    [CB_STEP_IDENTITY] = "identity",
    [CB_STEP_SESSION] = "session",
    [CB_STEP_MOUNTS] = "mounts",
    [CB_STEP_HOSTNAME] = "hostname",
    [CB_STEP_NETWORK] = "network",
    [CB_STEP_RLIMITS] = "rlimits",
    [CB_STEP_CLOSE_FDS] = "close-fds",
    [CB_STEP_CAPABILITIES] = "capabilities",
    [CB_STEP_NO_NEW_PRIVS] = "no-new-privs",
    [CB_STEP_LANDLOCK] = "landlock",
    [CB_STEP_SECCOMP] = "seccomp",
    [CB_STEP_EXECVE] = "execve",
};

const char *cb_step_name(unsigned step)
{
        return step < CB_STEP_COUNT ? STEP_NAMES[step] : "unknown";
}

void cb_report_send(int fd, enum cb_report_kind kind, unsigned step, int err, int wstatus,
                    const char *detail)
{
        struct cb_report r = {.kind = kind, .step = step, .err = err, .wstatus = wstatus};
        ssize_t n;

        for (size_t i = 0; detail && detail[i] && i + 1 < sizeof(r.detail); i++)
                r.detail[i] = detail[i];
        do
                n = write(fd, &r, sizeof(r));
        while (n < 0 && errno == EINTR);
}

/* What the parent prepares for the child. */
struct cb_child {
        const cb_policy *policy;
        struct cb_mount_plan plan;
        const struct cb_bpf *seccomp;
        cap_t no_caps;
        char **envp;
        struct cb_exec exec;
        int stdio[3];
        int report_wr, sync_rd;
        bool as_root;           /* the supervisor is root: it drops groups, maps ids freely */
        bool announce_dumpable; /* unprivileged, non-dumpable parent: see cell_main() */
        int landlock_abi;
        struct cb_rlimit_fallback fallback;
        struct cb_cgroup *cg; /* NULL for none */
        int netns;            /* the network namespace to clone into, -1 for a new one */
        bool netns_ours;      /* a fresh one, closed once the cell is cloned */
};

/* ------------------------------------------------------------------ */
/* The child                                                          */
/* ------------------------------------------------------------------ */

__attribute__((noreturn)) static void fail(int report_fd, enum cb_step step, const char *what)
{
        cb_report_send(report_fd, CB_REPORT_SETUP_FAILED, step, errno, 0, what);
        _exit(125);
}

/* stdio onto 0-2, the report and sync pipes onto 3-4, every other fd closed. */
static int arrange_fds(const struct cb_child *c)
{
        int from[5] = {c->stdio[0], c->stdio[1], c->stdio[2], c->report_wr, c->sync_rd};
        int tmp[5];

        for (int i = 0; i < 5; i++) {
                tmp[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 5);
                if (tmp[i] < 0)
                        return -1;
        }
        for (int i = 0; i < 5; i++) {
                if (dup2(tmp[i], i) < 0)
                        return -1;
        }
        if (fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC) < 0 || fcntl(SYNC_FD, F_SETFD, FD_CLOEXEC) < 0)
                return -1;
        return close_range(5, ~0U, 0);
}

/* The parent sends one byte once the maps are written; EOF means it died. */
static int await_release(void)
{
        char byte;
        ssize_t n;

        do
                n = read(SYNC_FD, &byte, 1);
        while (n < 0 && errno == EINTR);
        if (n == 1)
                return 0;
        errno = n == 0 ? ESRCH : errno;
        return -1;
}

/*
 * Changing the effective uid clears the parent-death signal, so it is set
 * again; the parent may have died in between, which its sync pipe shows.
 */
static int rearm_parent_death(void)
{
        struct pollfd pfd = {.fd = SYNC_FD, .events = POLLIN};

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&pfd, 1, 0) < 0)
                return -1;
        if (pfd.revents & (POLLHUP | POLLERR)) {
                errno = ESRCH;
                return -1;
        }
        return 0;
}

/*
 * The cell's confinement, in order; each step either succeeds or ends the
 * cell with a report naming it.  Nothing is skipped.
 */
__attribute__((noreturn)) static void cell_main(struct cb_child *c)
{
        const cb_policy *p = c->policy;
        int report = c->report_wr;
        const char *what = NULL;

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                fail(report, CB_STEP_PARENT_DEATH, NULL);
        if (cb_cgroup_join(c->cg) < 0)
                fail(report, CB_STEP_CGROUP, "cgroup.procs");
        /* rooted at its own groups, /proc/self/cgroup shows "/" and not the supervisor's path */
        if (unshare(CLONE_NEWCGROUP) < 0)
                fail(report, CB_STEP_CGROUP, "cgroup namespace");
        if (arrange_fds(c) < 0)
                fail(report, CB_STEP_ARRANGE_FDS, NULL);
        report = REPORT_FD;
        /*
         * An unprivileged parent can write our uid/gid maps only while we are
         * dumpable, which a non-dumpable parent (the server) passed on; so
         * just for that moment, and never again once released.
         */
        if (c->announce_dumpable) {
                if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
                        fail(report, CB_STEP_USERNS, "PR_SET_DUMPABLE");
                cb_report_send(report, CB_REPORT_READY_FOR_MAPS, CB_STEP_USERNS, 0, 0, NULL);
        }
        if (await_release() < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                fail(report, CB_STEP_RELEASE, NULL);
        /* bind sources are looked up before the identity change, as the caller */
        if (cb_mounts_grab_sources(&c->plan, &what) < 0)
                fail(report, CB_STEP_MOUNT_SOURCES, what);
        if (cb_identity_assume(p, c->as_root) < 0)
                fail(report, CB_STEP_IDENTITY, NULL);
        /*
         * Init is a copy of the supervisor's memory and holds the report pipe:
         * keep the program (same uid, and rootless the same as init's before)
         * out of /proc/1/{mem,environ,fd} and ptrace's reach.
         */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                fail(report, CB_STEP_IDENTITY, "PR_SET_DUMPABLE");
        if (rearm_parent_death() < 0)
                fail(report, CB_STEP_PARENT_DEATH, NULL);
        if (setsid() < 0)
                fail(report, CB_STEP_SESSION, NULL);
        if (cb_mounts_build_root(&c->plan, &what) < 0)
                fail(report, CB_STEP_MOUNTS, what);
        if (chdir(p->chdir) < 0)
                fail(report, CB_STEP_MOUNTS, p->chdir);
        if (sethostname(p->hostname, strlen(p->hostname)) < 0)
                fail(report, CB_STEP_HOSTNAME, NULL);
        if (cb_net_setup(p->net) < 0)
                fail(report, CB_STEP_NETWORK, NULL);
        if (cb_rlimits_apply(p, &c->fallback, &what) < 0)
                fail(report, CB_STEP_RLIMITS, what);
        if (close_range(SYNC_FD, ~0U, 0) < 0)
                fail(report, CB_STEP_CLOSE_FDS, NULL);
        if (cb_caps_drop_all(c->no_caps) < 0)
                fail(report, CB_STEP_CAPABILITIES, NULL);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                fail(report, CB_STEP_NO_NEW_PRIVS, NULL);
        if (cb_landlock_apply(&c->plan, p->net, c->landlock_abi, &what) < 0)
                fail(report, CB_STEP_LANDLOCK, what);
        if (cb_seccomp_load(c->seccomp) < 0)
                fail(report, CB_STEP_SECCOMP, NULL);
        cb_init_run(&c->exec, report);
}

/* ------------------------------------------------------------------ */
/* The parent                                                         */
/* ------------------------------------------------------------------ */

static const char *env_lookup(char *const *envp, const char *name)
{
        size_t len = strlen(name);

        for (; *envp; envp++) {
                if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
                        return *envp + len + 1;
        }
        return NULL;
}

static void child_release(struct cb_child *c)
{
        if (c->netns_ours)
                close(c->netns);
        c->netns_ours = false;
        cb_mount_plan_free(&c->plan);
        if (c->no_caps)
                cap_free(c->no_caps);
        free(c->envp);
}

static void choose_netns(struct cb_child *c, const cb_policy *p)
{
        /* the shared namespace is only as tight as the filter that limits socket families */
        if (p->net == CB_NET_NONE_SHARED && p->seccomp == CB_SECCOMP_DEFAULT)
                c->netns = cb_net_shared_none();
        else if (p->net == CB_NET_NONE)
                c->netns_ours = (c->netns = cb_net_pool_take()) >= 0;
}

static int child_prepare(struct cb_child *c, const cb_policy *p, char *const argv[],
                         cb_result *failure)
{
        cb_error err;

        c->policy = p;
        c->as_root = geteuid() == 0;
        c->announce_dumpable = !c->as_root && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0;
        c->landlock_abi = cb_landlock_abi();
        c->envp = calloc(p->env.n + 1, sizeof(char *));
        c->no_caps = cap_init();
        if (!c->envp || !c->no_caps) {
                cb_result_set_error(failure, CB_SETUP_FAILED, "policy", ENOMEM, "out of memory");
                return -1;
        }
        memcpy(c->envp, p->env.v, p->env.n * sizeof(char *));
        c->exec.argv = argv;
        c->exec.envp = c->envp;
        choose_netns(c, p);
        c->exec.path = env_lookup(c->envp, "PATH");
        if (!c->exec.path)
                c->exec.path = DEFAULT_PATH;
        if (cb_mount_plan_build(p, &c->plan, &err) < 0 ||
            !(c->seccomp = cb_seccomp_program(p, &err))) {
                cb_result_set_error(failure, CB_SETUP_FAILED, "policy", 0, "%s", err.message);
                return -1;
        }
        return 0;
}

/* Pipes: report (child -> us), sync (us -> child), and the output captures. */
struct cb_pipes {
        int report[2], sync[2], out[2][2], devnull;
};

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void pipes_close(struct cb_pipes *pp)
{
        int *all[] = {&pp->report[0], &pp->report[1], &pp->sync[0],   &pp->sync[1], &pp->out[0][0],
                      &pp->out[0][1], &pp->out[1][0], &pp->out[1][1], &pp->devnull};

        for (size_t i = 0; i < CB_ARRAY_LEN(all); i++)
                close_fd(all[i]);
}

static int pipes_open(struct cb_pipes *pp, const cb_spawn_opts *o, struct cb_child *c)
{
        const int given[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};

        memset(pp, -1, sizeof(*pp));
        if (pipe2(pp->report, O_CLOEXEC) < 0 || pipe2(pp->sync, O_CLOEXEC) < 0)
                return -1;
        if (o->capture_output &&
            (pipe2(pp->out[0], O_CLOEXEC) < 0 || pipe2(pp->out[1], O_CLOEXEC) < 0))
                return -1;
        if ((given[0] < 0 || (!o->capture_output && (given[1] < 0 || given[2] < 0))) &&
            (pp->devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
                return -1;
        for (int i = 0; i < 3; i++)
                c->stdio[i] = given[i] < 0 ? pp->devnull : given[i];
        if (o->capture_output) {
                c->stdio[1] = pp->out[0][1];
                c->stdio[2] = pp->out[1][1];
        }
        c->report_wr = pp->report[1];
        c->sync_rd = pp->sync[0];
        return 0;
}

static unsigned long long clone_flags(const struct cb_child *c)
{
        /* the cgroup namespace comes once the cell is in its groups: see cell_main() */
        unsigned long long flags =
            CLONE_PIDFD | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;

        if (c->policy->net == CB_NET_HOST || c->netns >= 0)
                return flags;
        return flags | CLONE_NEWNET;
}

/*
 * clone3 with every signal blocked, so that nothing the caller's handlers
 * do can run in the child before it has set itself up.  exit_signal 0: the
 * cell is invisible to the caller's waitpid(-1) and SIGCHLD handling.  On
 * failure *what names the part that failed.
 */
static pid_t clone_cell(struct cb_child *c, int *pidfd, const char **what)
{
        struct clone_args args = {
            .flags = clone_flags(c),
            .pidfd = (uint64_t)(uintptr_t)pidfd,
            .exit_signal = 0,
        };
        sigset_t all, saved;
        pid_t pid;
        int err, home = -1, cgroup_fd = cb_cgroup_clone_fd(c->cg);

        if (cgroup_fd >= 0) {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = (uint64_t)cgroup_fd;
        }
        *what = "network namespace";
        if (c->netns >= 0 && (home = cb_net_enter(c->netns)) < 0)
                return -1;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        *what = "clone3";
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
        if (pid < 0 && (args.flags & CLONE_INTO_CGROUP)) {
                /* a kernel without CLONE_INTO_CGROUP: the cell joins by itself */
                *what = "cgroup v2";
                if (cb_cgroup_join_v2_too(c->cg) == 0) {
                        *what = "clone3";
                        args.flags &= ~(unsigned long long)CLONE_INTO_CGROUP;
                        pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
                }
        }
        if (pid == 0)
                cell_main(c);
        err = errno;
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (home >= 0 && cb_net_leave(home) < 0)
                abort(); /* never leave the caller in the cells' namespace */
        errno = err;
        return pid;
}

/*
 * Where each limit is enforced: a cgroup when there is one, otherwise an
 * rlimit the cell sets on itself.  A CPU bandwidth limit has no rlimit
 * equivalent, so without a cgroup it refuses to start (fail closed).
 */
static int plan_limits(struct cb_child *c, const struct cb_cgroup *cg, cb_result *r)
{
        const cb_policy *p = c->policy;
        bool mem = cg && cb_cgroup_has(CB_CTRL_MEMORY), pids = cg && cb_cgroup_has(CB_CTRL_PIDS),
             cpu = cg && cb_cgroup_has(CB_CTRL_CPU), measured = cg && cb_cgroup_measures_cpu();

        if (p->cpus > 0 && !cpu) {
                errno = EOPNOTSUPP;
                return -1;
        }
        c->fallback.memory = p->memory && !mem;
        c->fallback.pids = p->pids && !pids;
        c->fallback.cpu_time = p->cpu_time > 0 && !measured;
        r->memory_by = !p->memory ? CB_ENFORCE_NONE : mem ? CB_ENFORCE_CGROUP : CB_ENFORCE_RLIMIT;
        r->pids_by = !p->pids ? CB_ENFORCE_NONE : pids ? CB_ENFORCE_CGROUP : CB_ENFORCE_RLIMIT;
        if (p->cpus > 0)
                r->cpu_by = CB_ENFORCE_CGROUP;
        else if (p->cpu_time > 0)
                r->cpu_by = measured ? CB_ENFORCE_SUPERVISOR : CB_ENFORCE_RLIMIT;
        return 0;
}

static void abandon_child(pid_t pid, int pidfd)
{
        pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
        waitpid(pid, NULL, __WALL);
        close(pidfd);
}

static void cell_take_pipes(struct cb_cell *cell, struct cb_pipes *pp, const cb_spawn_opts *o)
{
        cell->report_fd = pp->report[0];
        cell->sync_fd = pp->sync[1];
        pp->report[0] = pp->sync[1] = -1;
        for (int s = 0; s < 2; s++) {
                cell->out[s].pipe_fd = pp->out[s][0];
                cell->out[s].sink_fd = s == CB_STDOUT ? o->stdout_fd : o->stderr_fd;
                pp->out[s][0] = -1;
                if (cell->out[s].pipe_fd >= 0)
                        fcntl(cell->out[s].pipe_fd, F_SETFL, O_NONBLOCK);
        }
}

static struct cb_cell *cell_new(const cb_policy *p)
{
        struct cb_cell *cell = calloc(1, sizeof(*cell));

        if (!cell)
                return NULL;
        cell->pidfd = cell->report_fd = cell->sync_fd = cell->timer_fd = -1;
        cell->out[0].pipe_fd = cell->out[1].pipe_fd = -1;
        cell->cpu_timer_fd = -1;
        cell->cpu_time = p->cpu_time;
        cell->timeout = p->timeout;
        cell->kill_grace = p->kill_grace;
        cell->output_limit = p->output_limit;
        cell->output_truncate = p->output_overflow == CB_OVERFLOW_TRUNCATE;
        cb_result_init(&cell->result);
        return cell;
}

CB_EXPORT cb_spawn_opts cb_spawn_opts_default(void)
{
        return (cb_spawn_opts){.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
}

static int spawn_failed(cb_result *failure, enum cb_step step, int err, const char *what)
{
        cb_result_set_error(failure, CB_SETUP_FAILED, cb_step_name(step), err, "%s: %s",
                            what ? what : cb_step_name(step), strerror(err));
        return -1;
}

static const char *cell_name(const cb_spawn_opts *o, char *const argv[])
{
        const char *slash;

        if (o->name)
                return o->name;
        slash = strrchr(argv[0], '/');
        return slash ? slash + 1 : argv[0];
}

/* The cell's cgroups, and where each limit is enforced. */
static int prepare_limits(struct cb_child *child, struct cb_cell *cell, const cb_spawn_opts *o,
                          char *const argv[], cb_result *failure)
{
        const char *what = "cgroup";

        if (cb_cgroup_create(child->policy, cell_name(o, argv), &cell->cg, &what) < 0)
                return spawn_failed(failure, CB_STEP_CGROUP, errno, what);
        if (plan_limits(child, cell->cg, &cell->result) < 0)
                return spawn_failed(failure, CB_STEP_CGROUP, errno,
                                    "cpus: no cgroup cpu controller here (see cellblock check)");
        child->cg = cell->cg;
        return 0;
}

/* Wait until the child has made itself dumpable, so that we may write its maps. */
static int await_dumpable(int report_fd, cb_result *failure)
{
        struct cb_report r;
        ssize_t n;

        do
                n = read(report_fd, &r, sizeof(r));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(r) && r.kind == CB_REPORT_READY_FOR_MAPS)
                return 0;
        return spawn_failed(failure, n == (ssize_t)sizeof(r) ? r.step : CB_STEP_USERNS,
                            n == (ssize_t)sizeof(r) ? r.err : EPIPE, r.detail[0] ? r.detail : NULL);
}

/* After clone3: maps, then release the child. */
static int settle_child(const struct cb_child *c, pid_t pid, const struct cb_pipes *pp,
                        cb_result *failure)
{
        const cb_policy *p = c->policy;
        struct cb_idmap map;
        const char *what = NULL;

        if (c->announce_dumpable && await_dumpable(pp->report[0], failure) < 0)
                return -1;
        cb_idmap_prepare(p, pid, &map);
        if (cb_idmap_write(pid, &map, &what) < 0)
                return spawn_failed(failure, CB_STEP_USERNS, errno, what);
        if (write(pp->sync[1], "x", 1) != 1)
                return spawn_failed(failure, CB_STEP_RELEASE, errno, NULL);
        return 0;
}

static void cell_discard(struct cb_cell *cell)
{
        if (!cell)
                return;
        cb_cgroup_destroy(cell->cg);
        free(cell);
}

CB_EXPORT int cb_spawn(const cb_policy *p, char *const argv[], const cb_spawn_opts *opts,
                       cb_cell **out, cb_result *failure)
{
        cb_spawn_opts defaults = cb_spawn_opts_default();
        struct cb_child child = {.netns = -1};
        struct cb_pipes pp;
        struct cb_cell *cell = NULL;
        const char *what = NULL;
        cb_error err;
        int pidfd = -1;
        pid_t pid;

        cb_result_init(failure);
        *out = NULL;
        opts = opts ? opts : &defaults;
        if (!argv || !argv[0] || !argv[0][0]) {
                cb_result_set_error(failure, CB_SETUP_FAILED, "policy", EINVAL,
                                    "argv: a program to run is required");
                return -1;
        }
        if (cb_policy_validate(p, &err) < 0) {
                cb_result_set_error(failure, CB_SETUP_FAILED, "policy", EINVAL, "%s", err.message);
                return -1;
        }
        if (child_prepare(&child, p, argv, failure) < 0)
                goto fail_prepared;
        if (pipes_open(&pp, opts, &child) < 0) {
                spawn_failed(failure, CB_STEP_CLONE, errno, "pipes");
                goto fail_pipes;
        }
        cell = cell_new(p);
        if (!cell) {
                spawn_failed(failure, CB_STEP_CLONE, ENOMEM, NULL);
                goto fail_pipes;
        }
        if (prepare_limits(&child, cell, opts, argv, failure) < 0)
                goto fail_pipes;
        clock_gettime(CLOCK_MONOTONIC, &cell->started);
        pid = clone_cell(&child, &pidfd, &what);
        cb_cgroup_close_setup_fds(cell->cg);
        if (pid < 0) {
                spawn_failed(failure, CB_STEP_CLONE, errno, what);
                goto fail_pipes;
        }
        if (settle_child(&child, pid, &pp, failure) < 0) {
                abandon_child(pid, pidfd);
                goto fail_pipes;
        }
        cell->pid = pid;
        cell->pidfd = pidfd;
        cell_take_pipes(cell, &pp, opts);
        pipes_close(&pp);
        child_release(&child);
        *out = cell;
        return 0;

fail_pipes:
        pipes_close(&pp);
        cell_discard(cell);
fail_prepared:
        child_release(&child);
        return -1;
}

CB_EXPORT int cb_cell_pidfd(const cb_cell *cell)
{
        return cell->pidfd;
}

CB_EXPORT pid_t cb_cell_pid(const cb_cell *cell)
{
        return cell->pid;
}
