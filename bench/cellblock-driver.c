/*
 * Starts TOTAL processes, keeping at most WIDTH alive at once, and prints
 * how long that took:
 *
 *   cellblock-driver --mode fork|posix_spawn|cellblock [--width N] [--total N]
 *                    [--socket PATH --key-file FILE] [--timeout S] [--net MODE]
 *                    [--per-cell] [--hold] -- PROGRAM [ARG...]
 *
 *   fork         fork() and _exit(0) in the child: the floor; PROGRAM is not run
 *   posix_spawn  posix_spawnp(PROGRAM), stdin and stdout from /dev/null
 *   cellblock    a cell per process through a cellblock server, with memory
 *                256M and pids 64, stdio from /dev/null
 *
 * When the window is full the oldest process is waited for (the C client
 * waits for one id at a time).  One untimed process runs first.
 *
 * Output, on stdout:
 *   elapsed SECONDS
 *   cell I REQUEST_TO_RESULT_S SETUP_S     (--per-cell; SETUP_S is the
 *                                           server's setup_time_s, or nan)
 * Exit status 1 if any process did not exit 0, after naming the first.
 *
 * --hold (cellblock only) starts TOTAL cells at once, prints "alive N",
 * waits for end-of-file on stdin, then closes the connection, which makes
 * the server kill them.
 */
#include "cellblock.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum mode { MODE_FORK, MODE_POSIX_SPAWN, MODE_CELLBLOCK };

struct slot {
        pid_t pid;   /* fork, posix_spawn */
        char id[32]; /* cellblock */
        double t_start;
};

struct driver {
        enum mode mode;
        size_t width, total;
        char **argv;
        int devnull;
        cb_client *client;
        cb_policy *policy;
        size_t n_failed;
        char first_failure[640];
};

/* One process's outcome: did it succeed, and the server's setup time (nan if none). */
struct outcome {
        bool ok;
        double setup_s;
        char why[640];
};

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
        va_list ap;

        fputs("cellblock-driver: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

/* ------------------------------------------------------------------ */
/* Starting and finishing one process, per mode                       */
/* ------------------------------------------------------------------ */

static void start_fork(struct slot *s)
{
        s->pid = fork();
        if (s->pid < 0)
                die("fork: %s", strerror(errno));
        if (s->pid == 0)
                _exit(0);
}

static void start_posix_spawn(struct driver *d, struct slot *s)
{
        posix_spawn_file_actions_t fa;
        int rc;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, d->devnull, 0);
        posix_spawn_file_actions_adddup2(&fa, d->devnull, 1);
        rc = posix_spawnp(&s->pid, d->argv[0], &fa, NULL, d->argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0)
                die("posix_spawn %s: %s", d->argv[0], strerror(rc));
}

static void start_cell(struct driver *d, struct slot *s, size_t index)
{
        static const int null_stdio[3] = {-1, -1, -1};
        cb_error err;
        int pidfd;

        snprintf(s->id, sizeof(s->id), "cell-%zu", index);
        if (cb_client_spawn(d->client, s->id, d->argv, d->policy, null_stdio, false, &pidfd,
                            &s->pid, &err) < 0)
                die("spawn %s: %s", s->id, err.message);
        close(pidfd);
}

static void start_one(struct driver *d, struct slot *s, size_t index)
{
        s->t_start = now();
        switch (d->mode) {
        case MODE_FORK:
                start_fork(s);
                break;
        case MODE_POSIX_SPAWN:
                start_posix_spawn(d, s);
                break;
        case MODE_CELLBLOCK:
                start_cell(d, s, index);
                break;
        }
}

static struct outcome finish_child(const struct slot *s)
{
        struct outcome o = {.setup_s = NAN};
        int status;

        while (waitpid(s->pid, &status, 0) < 0) {
                if (errno != EINTR)
                        die("waitpid: %s", strerror(errno));
        }
        o.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (WIFEXITED(status))
                snprintf(o.why, sizeof(o.why), "exited with status %d", WEXITSTATUS(status));
        else
                snprintf(o.why, sizeof(o.why), "killed by signal %d", WTERMSIG(status));
        return o;
}

static struct outcome finish_cell(struct driver *d, const struct slot *s)
{
        struct outcome o = {.setup_s = NAN};
        cb_result r;
        cb_error err;

        if (cb_client_wait(d->client, s->id, &r, &err) < 0)
                die("wait %s: %s", s->id, err.message);
        o.ok = r.status == CB_EXITED && r.exit_code == 0;
        if (r.setup_time_s > 0)
                o.setup_s = r.setup_time_s;
        if (r.error_step[0])
                snprintf(o.why, sizeof(o.why), "status %s at step %s: %s", cb_status_name(r.status),
                         r.error_step, r.error_message);
        else
                snprintf(o.why, sizeof(o.why), "status %s, exit code %d, signal %d",
                         cb_status_name(r.status), r.exit_code, r.term_signal);
        return o;
}

static struct outcome finish_one(struct driver *d, const struct slot *s)
{
        struct outcome o = d->mode == MODE_CELLBLOCK ? finish_cell(d, s) : finish_child(s);

        if (!o.ok && d->n_failed++ == 0)
                snprintf(d->first_failure, sizeof(d->first_failure), "%s", o.why);
        return o;
}

/* ------------------------------------------------------------------ */
/* The window                                                         */
/* ------------------------------------------------------------------ */

struct sample {
        double request_to_result_s, setup_s;
};

/* Start d->total processes, at most d->width at once; samples may be NULL. */
static void run_window(struct driver *d, struct sample *samples)
{
        struct slot *ring = calloc(d->width, sizeof(*ring));
        size_t started = 0, finished = 0;

        if (!ring)
                die("out of memory");
        while (finished < d->total) {
                if (started < d->total && started - finished < d->width) {
                        start_one(d, &ring[started % d->width], started);
                        started++;
                        continue;
                }
                struct slot *s = &ring[finished % d->width];
                struct outcome o = finish_one(d, s);

                if (samples)
                        samples[finished] = (struct sample){now() - s->t_start, o.setup_s};
                finished++;
        }
        free(ring);
}

/* Start every cell, report, and keep them until stdin closes. */
static void hold(struct driver *d)
{
        struct slot s;
        char buf[256];

        for (size_t i = 0; i < d->total; i++)
                start_one(d, &s, i);
        printf("alive %zu\n", d->total);
        fflush(stdout);
        while (read(0, buf, sizeof(buf)) > 0)
                ;
}

/* ------------------------------------------------------------------ */
/* Set-up                                                             */
/* ------------------------------------------------------------------ */

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
        fputs("usage: cellblock-driver --mode fork|posix_spawn|cellblock [--width N] "
              "[--total N]\n"
              "         [--socket PATH --key-file FILE] [--timeout S] [--net MODE] [--per-cell]\n"
              "         [--hold]\n"
              "         -- PROGRAM [ARG...]\n",
              stderr);
        exit(2);
}

static size_t parse_count(const char *text)
{
        char *end;
        unsigned long long n = strtoull(text, &end, 10);

        if (*end || n == 0 || n > 1000000)
                usage();
        return (size_t)n;
}

static enum mode parse_mode(const char *text)
{
        if (strcmp(text, "fork") == 0)
                return MODE_FORK;
        if (strcmp(text, "posix_spawn") == 0)
                return MODE_POSIX_SPAWN;
        if (strcmp(text, "cellblock") == 0)
                return MODE_CELLBLOCK;
        usage();
}

static void set_policy(cb_policy *p, const char *key, const char *value)
{
        cb_error err;

        if (cb_policy_set(p, key, value, &err) < 0)
                die("policy %s: %s", key, err.message);
}

static void connect_server(struct driver *d, const char *socket_path, const char *key_file,
                           const char *timeout, const char *net)
{
        cb_error err;

        if (!socket_path || !key_file)
                die("--mode cellblock needs --socket and --key-file");
        d->client = cb_client_connect(socket_path, key_file, &err);
        if (!d->client)
                die("%s", err.message);
        d->policy = cb_policy_new();
        if (!d->policy)
                die("out of memory");
        set_policy(d->policy, "memory", "256M");
        set_policy(d->policy, "pids", "64");
        if (timeout)
                set_policy(d->policy, "timeout", timeout);
        if (net)
                set_policy(d->policy, "net", net);
}

static void print_samples(const struct sample *samples, size_t n)
{
        for (size_t i = 0; i < n; i++)
                printf("cell %zu %.9f %.9f\n", i, samples[i].request_to_result_s,
                       samples[i].setup_s);
}

struct args {
        enum mode mode;
        size_t width, total;
        const char *socket_path, *key_file, *timeout, *net;
        bool per_cell, hold;
        char **argv;
};

static struct args parse_args(int argc, char **argv)
{
        static const struct option options[] = {
            {"mode", required_argument, NULL, 'm'},     {"width", required_argument, NULL, 'w'},
            {"total", required_argument, NULL, 'n'},    {"socket", required_argument, NULL, 's'},
            {"key-file", required_argument, NULL, 'k'}, {"timeout", required_argument, NULL, 't'},
            {"per-cell", no_argument, NULL, 'p'},       {"hold", no_argument, NULL, 'H'},
            {"net", required_argument, NULL, 'N'},      {NULL, 0, NULL, 0},
        };
        struct args a = {.mode = (enum mode) - 1, .width = 1, .total = 1};
        int c;

        while ((c = getopt_long(argc, argv, "+", options, NULL)) != -1) {
                switch (c) {
                case 'm':
                        a.mode = parse_mode(optarg);
                        break;
                case 'w':
                        a.width = parse_count(optarg);
                        break;
                case 'n':
                        a.total = parse_count(optarg);
                        break;
                case 's':
                        a.socket_path = optarg;
                        break;
                case 'k':
                        a.key_file = optarg;
                        break;
                case 't':
                        a.timeout = optarg;
                        break;
                case 'N':
                        a.net = optarg;
                        break;
                case 'p':
                        a.per_cell = true;
                        break;
                case 'H':
                        a.hold = true;
                        break;
                default:
                        usage();
                }
        }
        if (a.mode == (enum mode) - 1 || optind >= argc || (a.hold && a.mode != MODE_CELLBLOCK))
                usage();
        a.argv = argv + optind;
        return a;
}

/* The untimed first process, then the timed window; the exit status. */
static int run_timed(struct driver *d, bool per_cell)
{
        struct driver warm = *d;
        struct sample *samples = NULL;
        double t0, elapsed;

        warm.width = warm.total = 1;
        run_window(&warm, NULL);

        if (per_cell && !(samples = calloc(d->total, sizeof(*samples))))
                die("out of memory");
        t0 = now();
        run_window(d, samples);
        elapsed = now() - t0;

        printf("elapsed %.9f\n", elapsed);
        if (samples)
                print_samples(samples, d->total);
        free(samples);
        if (warm.n_failed || d->n_failed) {
                fprintf(stderr, "cellblock-driver: %zu of %zu failed; first: %s\n",
                        warm.n_failed + d->n_failed, d->total + 1,
                        warm.n_failed ? warm.first_failure : d->first_failure);
                return 1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct args a = parse_args(argc, argv);
        struct driver d = {.mode = a.mode, .width = a.width, .total = a.total, .argv = a.argv};
        int status = 0;

        d.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (d.devnull < 0)
                die("/dev/null: %s", strerror(errno));
        if (d.mode == MODE_CELLBLOCK)
                connect_server(&d, a.socket_path, a.key_file, a.timeout, a.net);
        if (a.hold)
                hold(&d);
        else
                status = run_timed(&d, a.per_cell);
        cb_client_close(d.client);
        cb_policy_free(d.policy);
        return status;
}
