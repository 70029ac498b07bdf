/*
 * The cell's pid 1.  After the last confinement step the cell's first
 * process stays on as a tiny init, so that the program runs as an ordinary
 * process (pid 2) rather than as a pid-namespace init, which the kernel
 * shields from signals it has no handler for:
 *
 *   - it starts the program with vfork+execve and tells the supervisor
 *     whether execve worked;
 *   - it forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and
 *     SIGWINCH from the supervisor to the program;
 *   - it reaps every orphan in the cell;
 *   - when the program ends it reports its wait status and exits, and the
 *     kernel kills whatever is left in the pid namespace.
 *
 * It runs under the same seccomp filter, Landlock domain and identity as
 * the program.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

/* Let the program start with default dispositions (an ignored signal survives execve). */
static void reset_ignored_signals(void)
{
        struct sigaction sa;

        for (int sig = 1; sig < NSIG; sig++) {
                if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
                        sa.sa_handler = SIG_DFL;
                        sigaction(sig, &sa, NULL);
                }
        }
}

/* execve, searching `path` for a name without a slash, as execvp would. */
static int exec_program(const struct cb_exec *x)
{
        const char *file = x->argv[0];
        size_t file_len = strlen(file);
        char buf[PATH_MAX];
        int err = ENOENT;

        if (strchr(file, '/')) {
                execve(file, x->argv, x->envp);
                return errno;
        }
        for (const char *dir = x->path; *dir;) {
                size_t len = strcspn(dir, ":");

                if (len > 0 && len + 1 + file_len < sizeof(buf)) {
                        memcpy(buf, dir, len);
                        buf[len] = '/';
                        memcpy(buf + len + 1, file, file_len + 1);
                        execve(buf, x->argv, x->envp);
                        if (errno == EACCES)
                                err = EACCES;
                        else if (errno != ENOENT && errno != ENOTDIR)
                                return errno;
                }
                dir += len + (dir[len] == ':');
        }
        return err;
}

static pid_t start_program(const struct cb_exec *x, const sigset_t *unblocked, int *exec_errno)
{
        volatile int child_errno = 0;
        pid_t pid = vfork();

        if (pid == 0) {
                sigprocmask(SIG_SETMASK, unblocked, NULL);
                child_errno = exec_program(x);
                _exit(127);
        }
        *exec_errno = pid < 0 ? errno : child_errno;
        return pid;
}

/* Reap every exited process; true once the program itself has ended. */
static bool reap(pid_t program, int *program_status)
{
        bool ended = false;
        pid_t pid;
        int status;

        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == program) {
                        *program_status = status;
                        ended = true;
                }
        }
        return ended;
}

void cb_init_run(const struct cb_exec *x, int report_fd)
{
        sigset_t all, waited, none;
        siginfo_t info;
        int exec_errno, status = 0;
        pid_t program;

        sigfillset(&all);
        sigemptyset(&none);
        sigemptyset(&waited);
        sigaddset(&waited, SIGCHLD);
        for (size_t i = 0; i < CB_ARRAY_LEN(FORWARDED); i++)
                sigaddset(&waited, FORWARDED[i]);
        /* Blocked signals stay pending even for a pid-namespace init. */
        sigprocmask(SIG_SETMASK, &all, NULL);
        reset_ignored_signals();

        program = start_program(x, &none, &exec_errno);
        if (exec_errno) {
                cb_report_send(report_fd, CB_REPORT_EXEC_FAILED, CB_STEP_EXECVE, exec_errno, 0,
                               x->argv[0]);
                _exit(127);
        }
        cb_report_send(report_fd, CB_REPORT_EXEC_STARTED, CB_STEP_EXECVE, 0, 0, NULL);
        close(STDIN_FILENO);
        close(STDOUT_FILENO);
        close(STDERR_FILENO);
        for (;;) {
                if (sigwaitinfo(&waited, &info) < 0)
                        continue;
                if (info.si_signo != SIGCHLD)
                        kill(program, info.si_signo);
                else if (reap(program, &status))
                        break;
        }
        cb_report_send(report_fd, CB_REPORT_PROGRAM_ENDED, CB_STEP_EXECVE, 0, status, NULL);
        _exit(0);
}
