/*
 * cellblock: run untrusted programs in isolated, resource-limited cells.
 *
 * A cell is a process tree confined by namespaces, a private filesystem
 * view, dropped privileges, Landlock and seccomp, and hard limits.  This
 * header is the whole public interface of libcellblock:
 *
 *   policy   what a cell may do (cb_policy_*)
 *   cell     start one, watch it, kill it, collect its result (cb_spawn, cb_cell_*)
 *   result   how a cell ended, as a struct and as JSON (cb_result_*)
 *
 * Thread safety: distinct objects may be used from distinct threads.  A
 * cell's init process is bound to the thread that called cb_spawn() by the
 * parent-death signal: if that thread exits, the cell is killed.  Call
 * cb_spawn() from a thread that lives at least as long as the cell.
 */
#ifndef CELLBLOCK_H
#define CELLBLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

/* A validation error: which field was wrong and what is allowed. */
typedef struct cb_error {
        char field[48];    /* policy key, e.g. "memory"; empty if not field-specific */
        char message[256]; /* human-readable, names what is allowed */
} cb_error;

/* ------------------------------------------------------------------ */
/* Policy                                                             */
/* ------------------------------------------------------------------ */

typedef struct cb_policy cb_policy;

/* A new policy holding the safe defaults (see docs/cellblock.1). */
cb_policy *cb_policy_new(void);
void cb_policy_free(cb_policy *policy);

/*
 * Set one key from its command-line text, e.g. ("memory", "64M") or
 * ("ro_bind", "/data:/in").  Keys may be spelt with '-' or '_'.  List keys
 * append; other keys replace.  Returns 0, or -1 with err filled.
 */
int cb_policy_set(cb_policy *policy, const char *key, const char *text, cb_error *err);

/*
 * Apply a JSON object (a profile, or the "policy" of a server request).
 * Every key is validated exactly as cb_policy_set() would; unknown keys are
 * an error.  Keys present replace the current values, lists included.
 */
int cb_policy_apply_json(cb_policy *policy, const char *json, size_t len, cb_error *err);

/* Read a JSON profile file and apply it (at most 1 MiB). */
int cb_policy_load_file(cb_policy *policy, const char *path, cb_error *err);

/* Cross-field checks (e.g. seccomp "none" needs unsafe).  0 or -1. */
int cb_policy_validate(const cb_policy *policy, cb_error *err);

/* The whole policy as a JSON object (malloc'd; free() it). */
char *cb_policy_to_json(const cb_policy *policy);

/* ------------------------------------------------------------------ */
/* Results                                                            */
/* ------------------------------------------------------------------ */

typedef enum cb_status {
        CB_EXITED,       /* the program exited; see exit_code */
        CB_SIGNALED,     /* the program died of a signal; see term_signal */
        CB_TIMEOUT,      /* killed at the wall-clock limit */
        CB_CPU_TIME,     /* killed at the CPU-time limit */
        CB_OOM,          /* killed by the memory limit */
        CB_OUTPUT_LIMIT, /* killed for writing more than output_limit */
        CB_SETUP_FAILED, /* a confinement step failed; the program never ran */
        CB_EXEC_FAILED,  /* the program could not be executed */
        CB_KILLED,       /* killed by whoever started it */
} cb_status;

/* How a limit was enforced, as reported in the result's "limits" object. */
typedef enum cb_enforcement {
        CB_ENFORCE_NONE,       /* no limit asked */
        CB_ENFORCE_CGROUP,     /* a cgroup controller */
        CB_ENFORCE_RLIMIT,     /* a resource limit (rootless fallback) */
        CB_ENFORCE_SUPERVISOR, /* the supervisor watches and kills */
} cb_enforcement;

typedef struct cb_result {
        cb_status status;
        int exit_code;   /* valid when status == CB_EXITED */
        int term_signal; /* the killing signal, 0 if none */
        double wall_time_s;
        double setup_time_s; /* from the spawn call to the program's execve; 0 if never */
        double cpu_user_s;
        double cpu_system_s;
        uint64_t memory_peak_bytes;
        uint64_t stdout_bytes, stdout_dropped_bytes;
        uint64_t stderr_bytes, stderr_dropped_bytes;
        /* For setup-failed / exec-failed: the step and errno. */
        char error_step[32];
        int error_errno;
        char error_message[256];
        /* Which mechanism enforced each limit. */
        cb_enforcement memory_by, pids_by, cpu_by;
} cb_result;

const char *cb_status_name(cb_status status);

/* The result as one JSON object (malloc'd; free() it). */
char *cb_result_to_json(const cb_result *result);

/* Parse a result JSON object (as produced above).  0 or -1 with err. */
int cb_result_from_json(const char *json, size_t len, cb_result *result, cb_error *err);

/*
 * The exit status a command-line tool should use for this result:
 * the program's own code; 128+N for death by signal N or a limit kill;
 * 125 setup failure, 126 not executable, 127 not found.
 */
int cb_result_exit_status(const cb_result *result);

/* ------------------------------------------------------------------ */
/* Cells                                                              */
/* ------------------------------------------------------------------ */

typedef struct cb_cell cb_cell;

typedef struct cb_spawn_opts {
        /* The cell's stdin, stdout and stderr: an fd, or -1 for /dev/null. */
        int stdin_fd, stdout_fd, stderr_fd;
        /*
         * When true, the cell writes into pipes and the supervisor copies to
         * stdout_fd/stderr_fd, keeping at most output_limit bytes per stream
         * and counting the rest.  When false, the fds are handed over as is.
         */
        bool capture_output;
        /* A short name for humans, used in the cell's cgroup names; NULL: the program's. */
        const char *name;
} cb_spawn_opts;

/* Spawn options with stdio from /dev/null and no capture. */
cb_spawn_opts cb_spawn_opts_default(void);

/*
 * Start a cell running argv[0] (looked up in the cell's PATH when it has no
 * slash).  Returns 0 once the cell's init exists and has been released; its
 * setup and execve continue in the background and their failures arrive in
 * the result.  Returns -1 if the cell could not be created at all, with
 * *failure filled (status CB_SETUP_FAILED).
 */
int cb_spawn(const cb_policy *policy, char *const argv[], const cb_spawn_opts *opts, cb_cell **cell,
             cb_result *failure);

/* The cell's pidfd (owned by the cell) and host pid of its init. */
int cb_cell_pidfd(const cb_cell *cell);
pid_t cb_cell_pid(const cb_cell *cell);

/* Forward a signal to the cell's program (through its init). */
int cb_cell_signal(cb_cell *cell, int sig);

/* Kill every process in the cell now; the result says "killed". */
int cb_cell_kill(cb_cell *cell);

/* Block until the cell has ended and everything it used is released. */
int cb_cell_wait(cb_cell *cell, cb_result *result);

/* Kill the cell if still running, release everything, free it. */
void cb_cell_free(cb_cell *cell);

/* ------------------------------------------------------------------ */
/* Many cells in one event loop                                       */
/* ------------------------------------------------------------------ */

/*
 * A cb_loop watches many cells.  Its fd is an epoll fd that becomes
 * readable when any cell needs attention, so it nests in a caller's own
 * poll/epoll loop; call cb_loop_dispatch() then.
 */
typedef struct cb_loop cb_loop;
typedef void (*cb_done_fn)(cb_cell *cell, const cb_result *result, void *data);

cb_loop *cb_loop_new(void);
void cb_loop_free(cb_loop *loop);
int cb_loop_fd(const cb_loop *loop);

/* Watch a spawned cell; done() is called once, when it has ended. */
int cb_loop_add(cb_loop *loop, cb_cell *cell, cb_done_fn done, void *data);

/* Handle what is ready, waiting up to timeout_ms (-1: forever). */
int cb_loop_dispatch(cb_loop *loop, int timeout_ms);

/* Number of cells being watched. */
size_t cb_loop_count(const cb_loop *loop);

/* ------------------------------------------------------------------ */
/* The forkserver (docs/protocol.md)                                  */
/* ------------------------------------------------------------------ */

typedef struct cb_server_opts {
        const char *socket_path; /* a filesystem path; created 0600 */
        const char *key_file;    /* at least 32 bytes, not readable by others */
        const uid_t *allow_uids; /* peers allowed to connect; none: our own uid */
        size_t n_allow_uids;
        bool require_sha256;      /* refuse the HMAC-MD5 handshake of Python < 3.12 */
        unsigned max_connections; /* at once */
        unsigned max_cells;       /* live cells per connection */
        double auth_timeout;      /* seconds a client has to authenticate */
} cb_server_opts;

/* Defaults: 256 connections, 1024 cells each, 2 s to authenticate. */
cb_server_opts cb_server_opts_default(void);

/*
 * Serve until SIGTERM or SIGINT, then kill every cell and remove the socket.
 * As root it starts a thread that keeps a few empty network namespaces ready
 * for "none" cells; the thread, and the namespaces it holds, stay for the
 * rest of the process, and later cb_spawn() calls use them too.
 */
int cb_serve(const cb_server_opts *opts, cb_error *err);

/* A client of the forkserver.  It authenticates the server too, and refuses
 * to send anything to one that does not prove it holds the key. */
typedef struct cb_client cb_client;

cb_client *cb_client_connect(const char *socket_path, const char *key_file, cb_error *err);
void cb_client_close(cb_client *client);

/*
 * Start a cell.  stdio holds the fds to hand over as its stdin, stdout and
 * stderr (-1: none).  On success *pidfd is the cell's pidfd (the caller owns
 * it) and *pid its host pid.
 */
int cb_client_spawn(cb_client *client, const char *id, char *const argv[], const cb_policy *policy,
                    const int stdio[3], bool detach, int *pidfd, pid_t *pid, cb_error *err);
int cb_client_signal(cb_client *client, const char *id, int sig, cb_error *err);
int cb_client_kill(cb_client *client, const char *id, cb_error *err);

/* The connection's fd, to poll for readability; and whether id's result is in. */
int cb_client_fd(const cb_client *client);
bool cb_client_has_result(const cb_client *client, const char *id);

/* Wait for the cell's result (events for other ids are kept for later). */
int cb_client_wait(cb_client *client, const char *id, cb_result *result, cb_error *err);

/* ------------------------------------------------------------------ */
/* Host check                                                         */
/* ------------------------------------------------------------------ */

/*
 * Describe what this kernel and host allow, as a JSON object (malloc'd).
 * *enforceable is set to true when the default policy can be fully enforced.
 */
char *cb_check_host(bool *enforceable);

#ifdef __cplusplus
}
#endif
#endif
