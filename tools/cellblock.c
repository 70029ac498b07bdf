/* cellblock: the command-line face of libcellblock. */
#include "cellblock.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define EXIT_USAGE    2
#define EXIT_INTERNAL 125

static const char USAGE[] =
    "usage: cellblock run   [OPTIONS] -- PROGRAM [ARG...]\n"
    "       cellblock check [--json]\n"
    "\n"
    "policy options (JSON keys in a --profile use '_' for '-'):\n"
    "  --profile FILE          read a JSON policy; later options override it\n"
    "  --ro-bind SRC[:DST]     read-only view of a host path\n"
    "  --bind SRC[:DST]        writable view of a host path\n"
    "  --tmpfs DST[:SIZE]      private tmpfs (default size 64M)\n"
    "  --chdir DIR             working directory inside (default /)\n"
    "  --env NAME=VALUE|NAME   set, or copy from this environment\n"
    "  --net none|none-shared|loopback|host   network (default none)\n"
    "  --memory SIZE           memory limit, no swap (default 512M; 0 = none)\n"
    "  --pids N                most tasks at once (default 128; 0 = none)\n"
    "  --cpus X                CPU bandwidth in CPUs (default none)\n"
    "  --timeout SECONDS       wall-clock limit (default 300; 0 = none)\n"
    "  --kill-grace SECONDS    SIGTERM this long before the SIGKILL at timeout\n"
    "  --cpu-time SECONDS      CPU time of the whole cell (default none)\n"
    "  --output-limit SIZE     bytes kept per output stream (default 16M)\n"
    "  --output-overflow kill|truncate   what exceeding it does (default kill)\n"
    "  --file-size SIZE        largest file the cell may write (default none)\n"
    "  --uid N, --gid N        ids inside the cell (default 1000)\n"
    "  --hostname NAME         (default cell)\n"
    "  --seccomp default|none  syscall filter (none needs --unsafe)\n"
    "  --unsafe                allow turning protections off\n"
    "\n"
    "run options:\n"
    "  --result FILE           write the JSON result there ('-': standard output)\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "cellblock: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n%s", USAGE);
        return EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Policy options                                                     */
/* ------------------------------------------------------------------ */

enum {
        OPT_PROFILE = 1000,
        OPT_RESULT,
        OPT_UNSAFE,
        OPT_SOCKET,
        OPT_KEY_FILE,
        OPT_ALLOW_UID,
        OPT_REQUIRE_SHA256,
        OPT_MAX_CONNECTIONS,
        OPT_MAX_CELLS,
        OPT_AUTH_TIMEOUT,
        OPT_POLICY_BASE = 2000
};

/* Options whose argument is handed to cb_policy_set() under the same name. */
static const char *const POLICY_OPTIONS[] = {
    "ro-bind",   "bind", "tmpfs",   "chdir",      "env",      "net",          "memory",
    "pids",      "cpus", "timeout", "kill-grace", "cpu-time", "output-limit", "output-overflow",
    "file-size", "uid",  "gid",     "hostname",   "seccomp",
};

#define N_POLICY (sizeof(POLICY_OPTIONS) / sizeof(POLICY_OPTIONS[0]))

/* The options of run, and of spawn (which adds --socket and --key-file). */
static struct option *run_options(bool spawn)
{
        static struct option opts[N_POLICY + 7];
        size_t n = N_POLICY;

        for (size_t i = 0; i < N_POLICY; i++)
                opts[i] = (struct option){POLICY_OPTIONS[i], required_argument, NULL,
                                          OPT_POLICY_BASE + (int)i};
        opts[n++] = (struct option){"profile", required_argument, NULL, OPT_PROFILE};
        opts[n++] = (struct option){"result", required_argument, NULL, OPT_RESULT};
        opts[n++] = (struct option){"unsafe", no_argument, NULL, OPT_UNSAFE};
        opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
        if (spawn) {
                opts[n++] = (struct option){"socket", required_argument, NULL, OPT_SOCKET};
                opts[n++] = (struct option){"key-file", required_argument, NULL, OPT_KEY_FILE};
        }
        opts[n] = (struct option){0};
        return opts;
}

/* A relative bind source is taken relative to the current directory. */
static char *absolute_source(const char *text)
{
        const char *colon = strchr(text, ':');
        char *src = colon ? strndup(text, (size_t)(colon - text)) : strdup(text);
        char *abs = NULL, *out = NULL;

        if (!src)
                return NULL;
        if (src[0] == '/' || !(abs = realpath(src, NULL))) {
                free(src);
                return strdup(text);
        }
        if (asprintf(&out, "%s:%s", abs, colon ? colon + 1 : text) < 0)
                out = NULL;
        free(src);
        free(abs);
        return out;
}

/* --env NAME copies the caller's value; unset names are left out. */
static int set_env_option(cb_policy *p, const char *text, cb_error *err)
{
        const char *value;
        char *pair;
        int rc;

        if (strchr(text, '='))
                return cb_policy_set(p, "env", text, err);
        value = getenv(text);
        if (!value)
                return 0;
        if (asprintf(&pair, "%s=%s", text, value) < 0)
                return -1;
        rc = cb_policy_set(p, "env", pair, err);
        free(pair);
        return rc;
}

static int set_policy_option(cb_policy *p, const char *name, const char *text, cb_error *err)
{
        char *abs;
        int rc;

        if (strcmp(name, "env") == 0)
                return set_env_option(p, text, err);
        if (strcmp(name, "bind") != 0 && strcmp(name, "ro-bind") != 0)
                return cb_policy_set(p, name, text, err);
        abs = absolute_source(text);
        if (!abs)
                return -1;
        rc = cb_policy_set(p, name, abs, err);
        free(abs);
        return rc;
}

struct run_args {
        cb_policy *policy;
        const char *result_path;
        const char *socket, *key_file; /* spawn */
        char **argv;
};

static int parse_run_args(int argc, char **argv, struct run_args *a, bool spawn)
{
        struct option *opts = run_options(spawn);
        cb_error err = {0};
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                int rc = 0;

                if (c == 'h') {
                        fputs(USAGE, stdout);
                        exit(0);
                } else if (c == '?' || c == ':') {
                        return usage_error("unknown option or missing value: %s", argv[optind - 1]);
                } else if (c == OPT_PROFILE) {
                        rc = cb_policy_load_file(a->policy, optarg, &err);
                } else if (c == OPT_RESULT) {
                        a->result_path = optarg;
                } else if (c == OPT_UNSAFE) {
                        rc = cb_policy_set(a->policy, "unsafe", "true", &err);
                } else if (c == OPT_SOCKET) {
                        a->socket = optarg;
                } else if (c == OPT_KEY_FILE) {
                        a->key_file = optarg;
                } else {
                        rc = set_policy_option(a->policy, POLICY_OPTIONS[c - OPT_POLICY_BASE],
                                               optarg, &err);
                }
                if (rc < 0)
                        return usage_error("%s", err.message[0] ? err.message : strerror(errno));
        }
        if (optind == 1 || strcmp(argv[optind - 1], "--") != 0)
                return usage_error("put -- before the program to run");
        if (optind >= argc)
                return usage_error("no program given after --");
        if (cb_policy_validate(a->policy, &err) < 0)
                return usage_error("%s", err.message);
        if (spawn && (!a->socket || !a->key_file))
                return usage_error("spawn needs --socket and --key-file");
        a->argv = argv + optind;
        return 0;
}

/* ------------------------------------------------------------------ */
/* run                                                                */
/* ------------------------------------------------------------------ */

static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* Signals to pass on arrive through a signalfd, blocked otherwise. */
static int forward_signals_fd(void)
{
        sigset_t set;

        sigemptyset(&set);
        for (size_t i = 0; i < sizeof(FORWARDED) / sizeof(FORWARDED[0]); i++)
                sigaddset(&set, FORWARDED[i]);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return -1;
        return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void on_done(cb_cell *cell, const cb_result *r, void *data)
{
        (void)cell;
        *(cb_result *)data = *r;
}

/* Wait for the cell, passing on the signals cellblock itself receives. */
static int supervise(cb_cell *cell, cb_result *r)
{
        cb_loop *loop = cb_loop_new();
        int sfd = forward_signals_fd();
        struct pollfd pfds[2];
        bool done = false;

        if (!loop || sfd < 0 || cb_loop_add(loop, cell, on_done, r) < 0) {
                cb_loop_free(loop);
                return -1;
        }
        pfds[0] = (struct pollfd){.fd = cb_loop_fd(loop), .events = POLLIN};
        pfds[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
        while (!done) {
                struct signalfd_siginfo si;

                if (poll(pfds, 2, -1) < 0 && errno != EINTR)
                        break;
                while (read(sfd, &si, sizeof(si)) == sizeof(si))
                        cb_cell_signal(cell, (int)si.ssi_signo);
                cb_loop_dispatch(loop, 0);
                done = cb_loop_count(loop) == 0;
        }
        close(sfd);
        cb_loop_free(loop);
        return done ? 0 : -1;
}

static int write_result(const char *path, const cb_result *r)
{
        char *json = cb_result_to_json(r);
        FILE *f;
        int rc = 0;

        if (!json)
                return -1;
        f = strcmp(path, "-") == 0 ? stdout : fopen(path, "we");
        if (!f || fprintf(f, "%s\n", json) < 0)
                rc = -1;
        if (f && f != stdout && fclose(f) != 0)
                rc = -1;
        else if (f == stdout)
                fflush(stdout);
        free(json);
        return rc;
}

static void explain_failure(const cb_result *r)
{
        if (r->status == CB_SETUP_FAILED)
                fprintf(stderr, "cellblock: cell setup failed at step \"%s\": %s\n", r->error_step,
                        r->error_message);
        else if (r->status == CB_EXEC_FAILED)
                fprintf(stderr, "cellblock: cannot execute %s\n", r->error_message);
}

/* Report a finished cell the same way for run and spawn. */
static int finish_run(const struct run_args *a, const cb_result *r)
{
        explain_failure(r);
        if (a->result_path && write_result(a->result_path, r) < 0) {
                fprintf(stderr, "cellblock: cannot write the result to %s: %s\n", a->result_path,
                        strerror(errno));
                return EXIT_INTERNAL;
        }
        return cb_result_exit_status(r);
}

static int cmd_run(int argc, char **argv)
{
        struct run_args a = {.policy = cb_policy_new()};
        cb_spawn_opts o = {.stdin_fd = 0, .stdout_fd = 1, .stderr_fd = 2, .capture_output = true};
        cb_cell *cell = NULL;
        cb_result r;
        int rc;

        if (!a.policy)
                return EXIT_INTERNAL;
        rc = parse_run_args(argc, argv, &a, false);
        if (rc != 0) {
                cb_policy_free(a.policy);
                return rc;
        }
        if (cb_spawn(a.policy, a.argv, &o, &cell, &r) == 0 && supervise(cell, &r) < 0) {
                r.status = CB_SETUP_FAILED;
                r.error_errno = errno;
                snprintf(r.error_step, sizeof(r.error_step), "supervise");
                snprintf(r.error_message, sizeof(r.error_message), "%s", strerror(errno));
        }
        cb_cell_free(cell);
        cb_policy_free(a.policy);
        return finish_run(&a, &r);
}

/* ------------------------------------------------------------------ */
/* spawn: the same, through a server                                  */
/* ------------------------------------------------------------------ */

/* Wait for the cell's result, passing on the signals we receive. */
static int await_remote(cb_client *client, const char *id, cb_result *r, cb_error *err)
{
        int sfd = forward_signals_fd();
        struct pollfd pfds[2] = {{.fd = cb_client_fd(client), .events = POLLIN},
                                 {.fd = sfd, .events = POLLIN}};

        for (;;) {
                struct signalfd_siginfo si;

                if (poll(pfds, sfd < 0 ? 1 : 2, -1) < 0 && errno != EINTR)
                        return -1;
                while (sfd >= 0 && read(sfd, &si, sizeof(si)) == sizeof(si))
                        cb_client_signal(client, id, (int)si.ssi_signo, err);
                if (cb_client_has_result(client, id) || (pfds[0].revents & (POLLIN | POLLHUP)))
                        break;
        }
        if (sfd >= 0)
                close(sfd);
        return cb_client_wait(client, id, r, err);
}

static int cmd_spawn(int argc, char **argv)
{
        struct run_args a = {.policy = cb_policy_new()};
        const int stdio[3] = {0, 1, 2};
        cb_client *client = NULL;
        cb_error err = {0};
        cb_result r;
        char id[32];
        int pidfd = -1, rc;
        pid_t pid;

        if (!a.policy)
                return EXIT_INTERNAL;
        rc = parse_run_args(argc, argv, &a, true);
        if (rc == 0) {
                snprintf(id, sizeof(id), "spawn-%d", (int)getpid());
                client = cb_client_connect(a.socket, a.key_file, &err);
                rc = client &&
                             cb_client_spawn(client, id, a.argv, a.policy, stdio, false, &pidfd,
                                             &pid, &err) == 0 &&
                             await_remote(client, id, &r, &err) == 0
                         ? finish_run(&a, &r)
                         : EXIT_INTERNAL;
                if (rc == EXIT_INTERNAL && err.message[0])
                        fprintf(stderr, "cellblock: %s\n", err.message);
        }
        if (pidfd >= 0)
                close(pidfd);
        cb_client_close(client);
        cb_policy_free(a.policy);
        return rc;
}

/* ------------------------------------------------------------------ */
/* serve                                                              */
/* ------------------------------------------------------------------ */

#define MAX_ALLOWED 64

static int parse_count(const char *text, unsigned *out)
{
        char *end;
        unsigned long v = strtoul(text, &end, 10);

        if (!*text || *end || v == 0 || v > 1000000)
                return -1;
        *out = (unsigned)v;
        return 0;
}

static int cmd_serve(int argc, char **argv)
{
        static const struct option opts[] = {
            {"socket", required_argument, NULL, OPT_SOCKET},
            {"key-file", required_argument, NULL, OPT_KEY_FILE},
            {"allow-uid", required_argument, NULL, OPT_ALLOW_UID},
            {"require-sha256", no_argument, NULL, OPT_REQUIRE_SHA256},
            {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
            {"max-cells", required_argument, NULL, OPT_MAX_CELLS},
            {"auth-timeout", required_argument, NULL, OPT_AUTH_TIMEOUT},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        cb_server_opts so = cb_server_opts_default();
        uid_t allowed[MAX_ALLOWED];
        cb_error err = {0};
        char *end;
        int c;

        optind = 1;
        opterr = 0;
        so.allow_uids = allowed;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                bool bad = false;

                if (c == OPT_SOCKET) {
                        so.socket_path = optarg;
                } else if (c == OPT_KEY_FILE) {
                        so.key_file = optarg;
                } else if (c == OPT_ALLOW_UID) {
                        unsigned long uid = strtoul(optarg, &end, 10);

                        bad = !*optarg || *end || uid > 4294967294UL ||
                              so.n_allow_uids >= MAX_ALLOWED;
                        if (!bad)
                                allowed[so.n_allow_uids++] = (uid_t)uid;
                } else if (c == OPT_REQUIRE_SHA256) {
                        so.require_sha256 = true;
                } else if (c == OPT_MAX_CONNECTIONS) {
                        bad = parse_count(optarg, &so.max_connections) < 0;
                } else if (c == OPT_MAX_CELLS) {
                        bad = parse_count(optarg, &so.max_cells) < 0;
                } else if (c == OPT_AUTH_TIMEOUT) {
                        so.auth_timeout = strtod(optarg, &end);
                        bad = !*optarg || *end || !(so.auth_timeout > 0 && so.auth_timeout <= 60);
                } else if (c == 'h') {
                        fputs(USAGE, stdout);
                        return 0;
                } else {
                        bad = true;
                }
                if (bad)
                        return usage_error("bad serve option or value: %s", argv[optind - 1]);
        }
        if (optind != argc)
                return usage_error("serve takes no arguments");
        if (!so.socket_path || !so.key_file)
                return usage_error("serve needs --socket and --key-file");
        if (cb_serve(&so, &err) < 0) {
                fprintf(stderr, "cellblock serve: %s\n", err.message);
                return 1;
        }
        return 0;
}

/* ------------------------------------------------------------------ */
/* check                                                              */
/* ------------------------------------------------------------------ */

static void print_check(const char *json)
{
        json_t *o = json_loads(json, 0, NULL);
        const char *key;
        json_t *v;

        json_object_foreach(o, key, v)
        {
                char *text = json_is_string(v) ? strdup(json_string_value(v))
                                               : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

                printf("%-22s %s\n", key, text ? text : "?");
                free(text);
        }
        json_decref(o);
}

static int cmd_check(int argc, char **argv)
{
        bool json = argc == 2 && strcmp(argv[1], "--json") == 0, ok;
        char *report;

        if (argc > 2 || (argc == 2 && !json))
                return usage_error("check takes only --json");
        report = cb_check_host(&ok);
        if (!report)
                return EXIT_INTERNAL;
        if (json)
                printf("%s\n", report);
        else
                print_check(report);
        free(report);
        if (!json)
                printf("%s\n", ok ? "the default policy is fully enforced"
                                  : "the default policy CANNOT be fully enforced here");
        return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
        /* a reader that goes away must not kill us before the result is written */
        signal(SIGPIPE, SIG_IGN);
        if (argc < 2)
                return usage_error("no command given");
        if (strcmp(argv[1], "run") == 0)
                return cmd_run(argc - 1, argv + 1);
        if (strcmp(argv[1], "check") == 0)
                return cmd_check(argc - 1, argv + 1);
        if (strcmp(argv[1], "serve") == 0)
                return cmd_serve(argc - 1, argv + 1);
        if (strcmp(argv[1], "spawn") == 0)
                return cmd_spawn(argc - 1, argv + 1);
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                fputs(USAGE, stdout);
                return 0;
        }
        return usage_error("unknown command \"%s\"", argv[1]);
}
