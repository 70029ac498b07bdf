/* Declarations shared by the files of libcellblock; not installed. */
#ifndef CELLBLOCK_INTERNAL_H
#define CELLBLOCK_INTERNAL_H

#include "cellblock.h"

#include <linux/filter.h>
#include <stdarg.h>
#include <sys/capability.h>
#include <jansson.h>
#include <time.h>

#define CB_EXPORT       __attribute__((visibility("default")))
#define CB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- units.c: text forms of sizes and durations ---- */

int cb_parse_size(const char *text, uint64_t *out);
int cb_parse_seconds(const char *text, double *out);
int cb_parse_uint(const char *text, uint64_t max, uint64_t *out);
double cb_timespec_diff(const struct timespec *later, const struct timespec *earlier);

/* ---- policy.c ---- */

/* NONE_SHARED: no network, in a namespace shared with other such cells (net.c). */
enum cb_net { CB_NET_NONE, CB_NET_LOOPBACK, CB_NET_HOST, CB_NET_NONE_SHARED };

static inline bool cb_net_is_none(enum cb_net net)
{
        return net == CB_NET_NONE || net == CB_NET_NONE_SHARED;
}
enum cb_seccomp_mode { CB_SECCOMP_DEFAULT, CB_SECCOMP_NONE };
enum cb_overflow { CB_OVERFLOW_KILL, CB_OVERFLOW_TRUNCATE };

/* One ro_bind / bind / tmpfs entry as the policy states it. */
struct cb_path_spec {
        char *src;     /* host path (binds); NULL for tmpfs */
        char *dst;     /* path inside the cell */
        uint64_t size; /* tmpfs size in bytes */
};

struct cb_path_list {
        struct cb_path_spec *v;
        size_t n;
};

struct cb_str_list {
        char **v;
        size_t n;
};

struct cb_policy {
        struct cb_path_list ro_bind, bind, tmpfs;
        char *chdir;
        struct cb_str_list env; /* "NAME=VALUE" */
        enum cb_net net;
        uint64_t memory, pids, output_limit, file_size;
        double cpus, timeout, cpu_time, kill_grace;
        enum cb_overflow output_overflow;
        uint64_t uid, gid;
        char *hostname;
        enum cb_seccomp_mode seccomp;
        bool unsafe;
};

/* The default size of the cell's private /tmp. */
#define CB_DEFAULT_TMP_SIZE (64ULL << 20)

void cb_error_set(cb_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Apply a parsed JSON policy object (the server's request carries one). */
int cb_policy_apply_object(cb_policy *policy, const json_t *obj, cb_error *err);

/* ---- mounts.c: the cell's filesystem view ---- */

enum cb_mount_kind {
        CB_MNT_BIND,    /* src is a host path */
        CB_MNT_TMPFS,   /* size, mode */
        CB_MNT_PROC,    /* a new procfs for the cell's pid namespace */
        CB_MNT_SYMLINK, /* src is the link target */
        CB_MNT_FILE,    /* src is the file's contents (read-only) */
};

struct cb_mount_entry {
        enum cb_mount_kind kind;
        const char *src;
        const char *dst;
        uint64_t size;
        unsigned mode;
        bool writable;
        bool device;  /* a device node: keep it usable (no nodev) */
        int src_fd;   /* child only: the detached source tree */
        bool src_dir; /* child only: whether the source is a directory */
};

struct cb_mount_plan {
        struct cb_mount_entry *v;
        size_t n;
        char **owned; /* strings the plan allocated (symlink targets, file contents) */
        size_t n_owned;
};

int cb_mount_plan_build(const cb_policy *policy, struct cb_mount_plan *plan, cb_error *err);
void cb_mount_plan_free(struct cb_mount_plan *plan);

/* Child side; each returns 0 or -1 with errno set and *what naming the path. */
int cb_mounts_grab_sources(struct cb_mount_plan *plan, const char **what);
int cb_mounts_build_root(struct cb_mount_plan *plan, const char **what);

/* ---- userns.c ---- */

#define CB_HOST_ID_BASE 0x70000000u

struct cb_idmap {
        char uid_map[64];
        char gid_map[64];
        bool deny_setgroups;
};

void cb_idmap_prepare(const cb_policy *policy, pid_t child, struct cb_idmap *map);
int cb_idmap_write(pid_t child, const struct cb_idmap *map, const char **what);
int cb_identity_assume(const cb_policy *policy, bool drop_groups);

/* ---- net.c ---- */

int cb_net_setup(enum cb_net net);
/* The shared interface-less namespace for "none", or -1 where per-cell ones are needed. */
int cb_net_shared_none(void);
/* Keep fresh namespaces for "none" cells ready (root only; a no-op otherwise). */
void cb_net_pool_start(void);
/* One of them, for one cell, to be closed once it is cloned; -1 when none is ready. */
int cb_net_pool_take(void);
/* Enter a network namespace; returns an fd for cb_net_leave() to come back. */
int cb_net_enter(int netns);
int cb_net_leave(int home);

/* ---- caps.c ---- */

int cb_caps_drop_all(cap_t empty);

/* ---- seccomp.c ---- */

struct cb_bpf {
        struct sock_filter *insns;
        unsigned short len;
};

/* The filter for this policy, compiled once per process; NULL with err on failure. */
const struct cb_bpf *cb_seccomp_program(const cb_policy *policy, cb_error *err);
int cb_seccomp_load(const struct cb_bpf *bpf);

/* ---- landlock.c ---- */

int cb_landlock_abi(void);
int cb_landlock_apply(const struct cb_mount_plan *plan, enum cb_net net, int abi,
                      const char **what);

/* ---- cgroup.c, cgroup_reaper.c ---- */

enum cb_ctrl { CB_CTRL_MEMORY, CB_CTRL_PIDS, CB_CTRL_CPU, CB_CTRL_CPUACCT, CB_CTRL_COUNT };

#define CB_MAX_HIERARCHIES (CB_CTRL_COUNT + 1)

/* One cgroup hierarchy in use: the v2 tree, or a v1 controller's. */
struct cb_cg_hier {
        char mount[256];
        char base[1024]; /* our own cgroup in it */
        bool v2;
        bool writable;
};

struct cb_cgroup_host {
        struct cb_cg_hier h[CB_MAX_HIERARCHIES];
        size_t n;
        int v2;                   /* index of the v2 tree, -1 if none usable */
        int where[CB_CTRL_COUNT]; /* hierarchy of each controller, -1 if none */
};

/* A cell's cgroups: a directory named `name` in each hierarchy of `in`. */
struct cb_cgroup {
        char name[64];
        unsigned in;
        int v2_fd; /* for CLONE_INTO_CGROUP */
        /* cgroup.procs of each hierarchy the cell joins by itself, until cloned */
        int join_fd[CB_MAX_HIERARCHIES];
        size_t n_join;
};

const struct cb_cgroup_host *cb_cgroup_host(void);
bool cb_cgroup_has(enum cb_ctrl ctrl);
bool cb_cgroup_measures_cpu(void);
const char *cb_ctrl_name(enum cb_ctrl ctrl);
int cb_cgroup_create(const cb_policy *policy, const char *label, struct cb_cgroup **out,
                     const char **what);
int cb_cgroup_clone_fd(const struct cb_cgroup *cg);
int cb_cgroup_join_v2_too(struct cb_cgroup *cg);
int cb_cgroup_join(const struct cb_cgroup *cg);
void cb_cgroup_close_setup_fds(struct cb_cgroup *cg);
void cb_cgroup_kill(const struct cb_cgroup *cg);
bool cb_cgroup_cpu(const struct cb_cgroup *cg, double *user, double *system);
bool cb_cgroup_memory(const struct cb_cgroup *cg, uint64_t *peak, uint64_t *oom_kills);
void cb_cgroup_destroy(struct cb_cgroup *cg);
void cb_cgroup_sweep_stale(const struct cb_cgroup_host *host);
int cb_cgroup_reaper_start(const struct cb_cgroup_host *host);
bool cb_cgroup_reaper_remove(const struct cb_cgroup *cg);

/* ---- rlimit.c ---- */

/* Which limits the cell enforces on itself, where no cgroup can. */
struct cb_rlimit_fallback {
        bool memory, pids, cpu_time;
};

int cb_rlimits_apply(const cb_policy *policy, const struct cb_rlimit_fallback *fb,
                     const char **what);

/* ---- init.c: the cell's pid 1 ---- */

struct cb_exec {
        char *const *argv;
        char *const *envp;
        const char *path; /* search path for argv[0] without a slash */
};

__attribute__((noreturn)) void cb_init_run(const struct cb_exec *exec, int report_fd);

/* ---- report: what the cell tells its supervisor, over a pipe ---- */

enum cb_report_kind {
        CB_REPORT_SETUP_FAILED = 1,
        CB_REPORT_EXEC_FAILED,
        CB_REPORT_EXEC_STARTED,
        CB_REPORT_PROGRAM_ENDED,
        CB_REPORT_READY_FOR_MAPS, /* see spawn.c, rootless under a non-dumpable parent */
};

/* Fixed size and smaller than PIPE_BUF, so every write is atomic. */
struct cb_report {
        uint32_t kind;
        uint32_t step;
        int32_t err;
        int32_t wstatus;
        char detail[112];
};

void cb_report_send(int fd, enum cb_report_kind kind, unsigned step, int err, int wstatus,
                    const char *detail);

/* The steps of a cell's setup, in order.  Names appear in results. */
enum cb_step {
        CB_STEP_POLICY,
        CB_STEP_CLONE,
        CB_STEP_CGROUP,
        CB_STEP_USERNS,
        CB_STEP_PARENT_DEATH,
        CB_STEP_ARRANGE_FDS,
        CB_STEP_RELEASE,
        CB_STEP_MOUNT_SOURCES,
        CB_STEP_IDENTITY,
        CB_STEP_SESSION,
        CB_STEP_MOUNTS,
        CB_STEP_HOSTNAME,
        CB_STEP_NETWORK,
        CB_STEP_RLIMITS,
        CB_STEP_CLOSE_FDS,
        CB_STEP_CAPABILITIES,
        CB_STEP_NO_NEW_PRIVS,
        CB_STEP_LANDLOCK,
        CB_STEP_SECCOMP,
        CB_STEP_EXECVE,
        CB_STEP_COUNT
};

const char *cb_step_name(unsigned step);

/* ---- spawn.c / supervise.c: a running cell ---- */

enum cb_stream { CB_STDOUT, CB_STDERR };

struct cb_capture {
        int pipe_fd; /* read end, -1 when closed */
        int sink_fd; /* where kept bytes go */
        uint64_t kept, dropped;
};

enum cb_kill_reason {
        CB_KILL_NONE,
        CB_KILL_TIMEOUT,
        CB_KILL_CPU_TIME,
        CB_KILL_OUTPUT,
        CB_KILL_CALLER,
};

/* What an epoll event in a cb_loop points at. */
struct cb_watch {
        struct cb_cell *cell;
        int kind;
};

struct cb_cell {
        pid_t pid;
        int pidfd;
        int report_fd;
        int sync_fd;          /* held until the cell reports its execve, see spawn.c */
        int timer_fd;         /* wall-clock limit and kill grace */
        int cpu_timer_fd;     /* when to look at the cell's CPU time next */
        unsigned cpu_misses;  /* looks in a row that could not read it */
        struct cb_cgroup *cg; /* NULL when no cgroup could be used */
        double cpu_time;
        struct cb_capture out[2];
        struct timespec started, execed;
        /* copies of the policy's limits the supervisor enforces */
        double timeout, kill_grace;
        uint64_t output_limit;
        bool output_truncate;
        /* what the cell has said and done */
        struct cb_report failure; /* kind 0 when none */
        bool exec_started, program_ended, init_reaped, grace_sent;
        int program_wstatus;
        enum cb_kill_reason kill_reason;
        cb_result result;
        bool done;
        /* event-loop registration */
        struct cb_loop *loop;
        struct cb_watch watches[6];
        cb_done_fn done_fn;
        void *done_data;
};

void cb_cell_start_clock(struct cb_cell *cell);
void cb_result_init(cb_result *r);
void cb_result_set_error(cb_result *r, cb_status status, const char *step, int err, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));

/* ---- hmac.c ---- */

enum cb_hmac_kind { CB_HMAC_MD5, CB_HMAC_SHA256 };

void cb_md5(const void *data, size_t len, uint8_t out[16]);
size_t cb_hmac_len(enum cb_hmac_kind kind);
void cb_hmac(enum cb_hmac_kind kind, const uint8_t *key, size_t key_len, const uint8_t *msg,
             size_t msg_len, uint8_t *out);
void cb_wipe_stack(void);

/* ---- key.c ---- */

#define CB_KEY_MIN 32

struct cb_key {
        uint8_t *bytes; /* a locked, wipe-on-fork page */
        size_t len;
};

int cb_key_load(const char *path, struct cb_key *key, cb_error *err);
void cb_key_free(struct cb_key *key);

/* ---- wire.c ---- */

#define CB_FRAME_HEADER 4
#define CB_MAX_FDS      8

int cb_frame_parse(const uint8_t *buf, size_t len, size_t max_body, size_t *body_len);
void cb_frame_header(size_t body_len, uint8_t out[CB_FRAME_HEADER]);
ssize_t cb_wire_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *n_fds,
                     bool *fd_overflow);
ssize_t cb_wire_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds);
int cb_wire_send_frame(int sock, const void *body, size_t len, const int *fds, size_t n_fds);
int cb_wire_recv_frame(int sock, size_t max_body, uint8_t **body, size_t *len, int *fds,
                       size_t *n_fds);

/* ---- auth.c ---- */

#define CB_AUTH_MAX_FRAME 256

enum cb_auth_result { CB_AUTH_CONTINUE, CB_AUTH_DONE, CB_AUTH_FAILED };

struct cb_auth {
        const struct cb_key *key;
        bool client, require_sha256;
        bool legacy; /* the peer answered with HMAC-MD5 */
        int stage;
        uint8_t challenge[64]; /* what we sent, as it is MAC'd */
        size_t challenge_len;
        char why[64];
};

void cb_auth_init(struct cb_auth *a, const struct cb_key *key, bool client, bool require_sha256);
size_t cb_auth_begin(struct cb_auth *a, uint8_t *out);
enum cb_auth_result cb_auth_feed(struct cb_auth *a, const uint8_t *in, size_t len, uint8_t *out,
                                 size_t *out_len);

/* ---- request.c ---- */

enum cb_op { CB_OP_SPAWN, CB_OP_KILL, CB_OP_SIGNAL, CB_OP_PING };

struct cb_request {
        enum cb_op op;
        json_t *id;  /* the client's token, echoed in replies; NULL if none */
        char **argv; /* spawn: NULL-terminated */
        cb_policy *policy;
        int stdio[3]; /* spawn: index of the attached fd, -1 for none */
        bool detach;
        int signal; /* signal */
};

struct cb_reply_error {
        char code[32];
        char field[48];
        char message[256];
};

int cb_request_parse(const char *text, size_t len, size_t n_fds, struct cb_request *req,
                     struct cb_reply_error *err);
void cb_request_free(struct cb_request *req);

/* ---- check.c ---- */

bool cb_have_user_namespaces(void);

#endif
