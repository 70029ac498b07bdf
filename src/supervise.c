/*
 * Supervision: the event loop that turns running cells into results.
 *
 * Each cell contributes up to five fds to a loop's epoll set: its pidfd
 * (init has exited), its report pipe (setup failures, execve, the program's
 * end), its two captured output pipes, and a timerfd for the wall-clock
 * limit.  When the pidfd fires, every process of the cell is already gone
 * (the kernel empties a pid namespace before its init becomes a zombie), so
 * the supervisor reaps init, drains what the pipes still hold, releases
 * everything and reports the result once.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

enum watch_kind { W_PIDFD, W_REPORT, W_STDOUT, W_STDERR, W_TIMER, W_CPU };

struct cb_loop {
        int epfd;
        size_t count;
};

/* ------------------------------------------------------------------ */
/* Signals and kills                                                  */
/* ------------------------------------------------------------------ */

static int send_to_init(struct cb_cell *cell, int sig)
{
        if (cell->init_reaped)
                return 0;
        return pidfd_send_signal(cell->pidfd, sig, NULL, 0);
}

/* Killing init empties the whole pid namespace at once. */
static void kill_cell(struct cb_cell *cell, enum cb_kill_reason reason)
{
        if (cell->kill_reason == CB_KILL_NONE)
                cell->kill_reason = reason;
        if (!cell->init_reaped)
                cb_cgroup_kill(cell->cg);
        send_to_init(cell, SIGKILL);
}

CB_EXPORT int cb_cell_signal(cb_cell *cell, int sig)
{
        return send_to_init(cell, sig);
}

CB_EXPORT int cb_cell_kill(cb_cell *cell)
{
        kill_cell(cell, CB_KILL_CALLER);
        return 0;
}

/* ------------------------------------------------------------------ */
/* Event handlers                                                     */
/* ------------------------------------------------------------------ */

static void unwatch(struct cb_cell *cell, int *fd)
{
        if (*fd < 0)
                return;
        if (cell->loop)
                epoll_ctl(cell->loop->epfd, EPOLL_CTL_DEL, *fd, NULL);
        close(*fd);
        *fd = -1;
}

static void on_report(struct cb_cell *cell)
{
        struct cb_report r;
        ssize_t n;

        while ((n = read(cell->report_fd, &r, sizeof(r))) == (ssize_t)sizeof(r)) {
                switch (r.kind) {
                case CB_REPORT_SETUP_FAILED:
                case CB_REPORT_EXEC_FAILED:
                        cell->failure = r;
                        unwatch(cell, &cell->sync_fd);
                        break;
                case CB_REPORT_EXEC_STARTED:
                        cell->exec_started = true;
                        clock_gettime(CLOCK_MONOTONIC, &cell->execed);
                        unwatch(cell, &cell->sync_fd);
                        break;
                case CB_REPORT_PROGRAM_ENDED:
                        cell->program_ended = true;
                        cell->program_wstatus = r.wstatus;
                        break;
                }
        }
        /* EOF, or a torn record: the cell wrote its last word */
        if (n >= 0 || errno != EAGAIN)
                unwatch(cell, &cell->report_fd);
}

/* Write it all to the sink; how much went. */
static size_t deliver(int sink, const char *buf, size_t len)
{
        size_t done = 0;

        while (done < len) {
                ssize_t w = write(sink, buf + done, len - done);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        break;
                done += (size_t)w;
        }
        return done;
}

/*
 * Copy what the pipe holds: keep up to the limit, count the rest.  When the
 * sink stops taking output (its reader has gone), the pipe is closed too, so
 * the program finds out on its next write, as it would in a shell pipeline.
 */
static void on_output(struct cb_cell *cell, enum cb_stream s)
{
        struct cb_capture *cap = &cell->out[s];
        bool sink_gone = false;
        char buf[65536];
        ssize_t n = 0;

        while (!sink_gone && (n = read(cap->pipe_fd, buf, sizeof(buf))) > 0) {
                uint64_t room = cell->output_limit - cap->kept;
                size_t keep = (uint64_t)n < room ? (size_t)n : (size_t)room;
                size_t went = cap->sink_fd >= 0 ? deliver(cap->sink_fd, buf, keep) : keep;

                cap->kept += went;
                cap->dropped += (uint64_t)n - keep;
                sink_gone = went < keep;
        }
        if (cap->dropped && !cell->output_truncate)
                kill_cell(cell, CB_KILL_OUTPUT);
        if (sink_gone || n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                unwatch(cell, &cap->pipe_fd);
}

static int arm(int timer_fd, double seconds)
{
        struct itimerspec its = {0};

        its.it_value.tv_sec = (time_t)seconds;
        its.it_value.tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
                its.it_value.tv_nsec = 1;
        return timerfd_settime(timer_fd, 0, &its, NULL);
}

/* At the deadline: SIGTERM first when there is a grace period, then SIGKILL. */
static void on_timer(struct cb_cell *cell)
{
        uint64_t ticks;

        if (read(cell->timer_fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
                return;
        if (cell->kill_grace > 0 && !cell->grace_sent) {
                cell->grace_sent = true;
                if (cell->kill_reason == CB_KILL_NONE)
                        cell->kill_reason = CB_KILL_TIMEOUT;
                send_to_init(cell, SIGTERM);
                arm(cell->timer_fd, cell->kill_grace);
                return;
        }
        kill_cell(cell, CB_KILL_TIMEOUT);
}

/* The cell cannot burn more than this many CPU-seconds per second. */
static double cpu_parallelism(void)
{
        static double online;

        if (online == 0)
                online = (double)sysconf(_SC_NPROCESSORS_ONLN);
        return online > 0 ? online : 1;
}

/* Looks at the CPU time that may fail in a row (50 ms apart) before the limit counts as reached. */
#define CPU_MISSES_TOLERATED 20

/*
 * The CPU-time limit covers the whole cell, measured by its cgroup.  The
 * next look is timed for the earliest moment the cell could reach it.  A
 * limit that cannot be checked (the server out of fds, say) is soon taken
 * as reached, never as lifted.
 */
static void on_cpu_check(struct cb_cell *cell)
{
        double user, system, left;
        uint64_t ticks;

        if (read(cell->cpu_timer_fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
                return;
        if (!cb_cgroup_cpu(cell->cg, &user, &system)) {
                if (++cell->cpu_misses > CPU_MISSES_TOLERATED)
                        kill_cell(cell, CB_KILL_CPU_TIME);
                else
                        arm(cell->cpu_timer_fd, 0.05);
                return;
        }
        cell->cpu_misses = 0;
        left = cell->cpu_time - (user + system);
        if (left <= 0) {
                kill_cell(cell, CB_KILL_CPU_TIME);
                return;
        }
        left /= cpu_parallelism();
        arm(cell->cpu_timer_fd, left > 0.005 ? left : 0.005);
}

/* ------------------------------------------------------------------ */
/* The end of a cell                                                  */
/* ------------------------------------------------------------------ */

static double timeval_s(struct timeval tv)
{
        return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Resource use of the whole cell: its cgroup where there is one, else init's rusage. */
static void account(struct cb_cell *cell, const struct rusage *ru, uint64_t *oom_kills)
{
        cb_result *r = &cell->result;
        uint64_t peak;

        r->cpu_user_s = timeval_s(ru->ru_utime);
        r->cpu_system_s = timeval_s(ru->ru_stime);
        r->memory_peak_bytes = (uint64_t)ru->ru_maxrss * 1024;
        cb_cgroup_cpu(cell->cg, &r->cpu_user_s, &r->cpu_system_s);
        if (cb_cgroup_memory(cell->cg, &peak, oom_kills))
                r->memory_peak_bytes = peak;
}

static const cb_status KILL_STATUS[] = {
    [CB_KILL_TIMEOUT] = CB_TIMEOUT,
    [CB_KILL_CPU_TIME] = CB_CPU_TIME,
    [CB_KILL_OUTPUT] = CB_OUTPUT_LIMIT,
    [CB_KILL_CALLER] = CB_KILLED,
};

/* A program the cell's own RLIMIT_CPU stopped. */
static bool stopped_by_cpu_rlimit(const struct cb_cell *cell, int ws)
{
        return cell->result.cpu_by == CB_ENFORCE_RLIMIT && WIFSIGNALED(ws) &&
               (WTERMSIG(ws) == SIGXCPU || WTERMSIG(ws) == SIGKILL);
}

/* The OOM killer acted and the program did not finish cleanly. */
static bool ended_by_oom(const struct cb_cell *cell, uint64_t oom_kills, int ws)
{
        return oom_kills > 0 && !(cell->program_ended && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
}

static void decide_status(struct cb_cell *cell, int init_status, uint64_t oom_kills)
{
        cb_result *r = &cell->result;
        const struct cb_report *f = &cell->failure;
        int ws = cell->program_wstatus;

        if (f->kind == CB_REPORT_SETUP_FAILED || f->kind == CB_REPORT_EXEC_FAILED) {
                cb_result_set_error(
                    r, f->kind == CB_REPORT_SETUP_FAILED ? CB_SETUP_FAILED : CB_EXEC_FAILED,
                    cb_step_name(f->step), f->err, "%s%s%s", f->detail[0] ? f->detail : "",
                    f->detail[0] ? ": " : "", strerror(f->err));
                return;
        }
        if (cell->program_ended && WIFSIGNALED(ws))
                r->term_signal = WTERMSIG(ws);
        if (cell->kill_reason != CB_KILL_NONE) {
                r->status = KILL_STATUS[cell->kill_reason];
                /* the signal cellblock ended it with: SIGTERM if it left in its grace */
                if (!r->term_signal)
                        r->term_signal =
                            cell->grace_sent && cell->program_ended ? SIGTERM : SIGKILL;
        } else if (ended_by_oom(cell, oom_kills, ws)) {
                r->status = CB_OOM;
                if (!r->term_signal)
                        r->term_signal = SIGKILL;
        } else if (cell->program_ended && stopped_by_cpu_rlimit(cell, ws)) {
                r->status = CB_CPU_TIME;
        } else if (cell->program_ended) {
                r->status = WIFEXITED(ws) ? CB_EXITED : CB_SIGNALED;
                r->exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 0;
        } else {
                /* init died without a word: something outside killed the cell */
                r->status = CB_KILLED;
                r->term_signal = WIFSIGNALED(init_status) ? WTERMSIG(init_status) : SIGKILL;
                if (!cell->exec_started)
                        cb_result_set_error(r, CB_SETUP_FAILED, "init", 0,
                                            "the cell ended before its program started");
        }
}

static void finish(struct cb_cell *cell)
{
        struct rusage ru = {0};
        struct timespec now;
        uint64_t oom_kills = 0;
        int status = 0;
        cb_result *r = &cell->result;

        while (wait4(cell->pid, &status, __WALL, &ru) < 0 && errno == EINTR)
                ;
        cell->init_reaped = true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (cell->report_fd >= 0)
                on_report(cell);
        for (int s = 0; s < 2; s++) {
                if (cell->out[s].pipe_fd >= 0)
                        on_output(cell, (enum cb_stream)s);
        }
        unwatch(cell, &cell->report_fd);
        unwatch(cell, &cell->out[0].pipe_fd);
        unwatch(cell, &cell->out[1].pipe_fd);
        unwatch(cell, &cell->sync_fd);
        unwatch(cell, &cell->timer_fd);
        unwatch(cell, &cell->cpu_timer_fd);
        unwatch(cell, &cell->pidfd);

        r->wall_time_s = cb_timespec_diff(&now, &cell->started);
        if (cell->exec_started)
                r->setup_time_s = cb_timespec_diff(&cell->execed, &cell->started);
        account(cell, &ru, &oom_kills);
        cb_cgroup_destroy(cell->cg);
        cell->cg = NULL;
        r->stdout_bytes = cell->out[CB_STDOUT].kept;
        r->stdout_dropped_bytes = cell->out[CB_STDOUT].dropped;
        r->stderr_bytes = cell->out[CB_STDERR].kept;
        r->stderr_dropped_bytes = cell->out[CB_STDERR].dropped;
        decide_status(cell, status, oom_kills);
        cell->done = true;
}

/* ------------------------------------------------------------------ */
/* Loops                                                              */
/* ------------------------------------------------------------------ */

CB_EXPORT cb_loop *cb_loop_new(void)
{
        cb_loop *loop = calloc(1, sizeof(*loop));

        if (!loop)
                return NULL;
        loop->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (loop->epfd < 0) {
                free(loop);
                return NULL;
        }
        return loop;
}

CB_EXPORT void cb_loop_free(cb_loop *loop)
{
        if (!loop)
                return;
        close(loop->epfd);
        free(loop);
}

CB_EXPORT int cb_loop_fd(const cb_loop *loop)
{
        return loop->epfd;
}

CB_EXPORT size_t cb_loop_count(const cb_loop *loop)
{
        return loop->count;
}

static int watch(cb_loop *loop, struct cb_cell *cell, int fd, enum watch_kind kind)
{
        struct epoll_event ev = {.events = EPOLLIN};

        if (fd < 0)
                return 0;
        cell->watches[kind] = (struct cb_watch){.cell = cell, .kind = kind};
        ev.data.ptr = &cell->watches[kind];
        return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void unwatch_all(struct cb_cell *cell)
{
        int fds[] = {cell->pidfd,          cell->report_fd, cell->out[0].pipe_fd,
                     cell->out[1].pipe_fd, cell->timer_fd,  cell->cpu_timer_fd};

        for (size_t i = 0; i < CB_ARRAY_LEN(fds); i++) {
                if (fds[i] >= 0)
                        epoll_ctl(cell->loop->epfd, EPOLL_CTL_DEL, fds[i], NULL);
        }
}

static bool start_timer(int *fd, double seconds)
{
        if (*fd < 0)
                *fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        return *fd >= 0 && arm(*fd, seconds) == 0;
}

CB_EXPORT int cb_loop_add(cb_loop *loop, cb_cell *cell, cb_done_fn done, void *data)
{
        if (cell->loop || cell->done) {
                errno = EBUSY;
                return -1;
        }
        if (cell->timeout > 0 && !start_timer(&cell->timer_fd, cell->timeout))
                return -1;
        if (cell->result.cpu_by == CB_ENFORCE_SUPERVISOR &&
            !start_timer(&cell->cpu_timer_fd, cell->cpu_time / cpu_parallelism()))
                return -1;
        cell->loop = loop;
        if (watch(loop, cell, cell->pidfd, W_PIDFD) < 0 ||
            watch(loop, cell, cell->report_fd, W_REPORT) < 0 ||
            watch(loop, cell, cell->out[0].pipe_fd, W_STDOUT) < 0 ||
            watch(loop, cell, cell->out[1].pipe_fd, W_STDERR) < 0 ||
            watch(loop, cell, cell->timer_fd, W_TIMER) < 0 ||
            watch(loop, cell, cell->cpu_timer_fd, W_CPU) < 0) {
                int err = errno;

                unwatch_all(cell);
                cell->loop = NULL;
                errno = err;
                return -1;
        }
        if (cell->report_fd >= 0)
                fcntl(cell->report_fd, F_SETFL, O_NONBLOCK);
        cell->done_fn = done;
        cell->done_data = data;
        loop->count++;
        return 0;
}

static void handle(struct cb_watch *w)
{
        struct cb_cell *cell = w->cell;

        switch ((enum watch_kind)w->kind) {
        case W_PIDFD:
                finish(cell);
                break;
        case W_REPORT:
                on_report(cell);
                break;
        case W_STDOUT:
        case W_STDERR:
                on_output(cell, w->kind == W_STDOUT ? CB_STDOUT : CB_STDERR);
                break;
        case W_TIMER:
                on_timer(cell);
                break;
        case W_CPU:
                on_cpu_check(cell);
                break;
        }
}

/*
 * Callbacks run after every event of the batch has been handled, since a
 * callback may free its cell while later events in the batch point at it.
 */
CB_EXPORT int cb_loop_dispatch(cb_loop *loop, int timeout_ms)
{
        struct epoll_event events[64];
        struct cb_cell *ended[CB_ARRAY_LEN(events)];
        size_t n_ended = 0;
        int n = epoll_wait(loop->epfd, events, (int)CB_ARRAY_LEN(events), timeout_ms);

        if (n < 0)
                return errno == EINTR ? 0 : -1;
        for (int i = 0; i < n; i++) {
                struct cb_watch *w = events[i].data.ptr;

                if (w->cell->done)
                        continue;
                handle(w);
                if (w->cell->done)
                        ended[n_ended++] = w->cell;
        }
        for (size_t i = 0; i < n_ended; i++) {
                struct cb_cell *cell = ended[i];

                cell->loop = NULL;
                loop->count--;
                if (cell->done_fn)
                        cell->done_fn(cell, &cell->result, cell->done_data);
        }
        return n;
}

/* ------------------------------------------------------------------ */
/* One cell on its own                                                */
/* ------------------------------------------------------------------ */

static void note_done(cb_cell *cell, const cb_result *result, void *data)
{
        (void)cell;
        (void)result;
        *(bool *)data = true;
}

CB_EXPORT int cb_cell_wait(cb_cell *cell, cb_result *result)
{
        cb_loop *loop;
        bool done = cell->done;

        if (!done) {
                if (cell->loop) {
                        errno = EBUSY;
                        return -1;
                }
                loop = cb_loop_new();
                if (!loop || cb_loop_add(loop, cell, note_done, &done) < 0) {
                        cb_loop_free(loop);
                        return -1;
                }
                while (!done) {
                        if (cb_loop_dispatch(loop, -1) < 0)
                                break;
                }
                cb_loop_free(loop);
        }
        if (result)
                *result = cell->result;
        return done ? 0 : -1;
}

CB_EXPORT void cb_cell_free(cb_cell *cell)
{
        if (!cell)
                return;
        if (!cell->done) {
                kill_cell(cell, CB_KILL_CALLER);
                if (cell->loop) {
                        unwatch_all(cell);
                        cell->loop->count--;
                        cell->loop = NULL;
                }
                finish(cell);
        }
        free(cell);
}
