/*
 * What this kernel and host allow.  Each feature is probed by trying it,
 * not by reading version numbers, and a trial cell with the default policy
 * proves the whole chain works.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

/* Linux 7.1 clone3 flags (include/uapi/linux/sched.h). */
#define CB_CLONE_AUTOREAP       (1ULL << 34)
#define CB_CLONE_PIDFD_AUTOKILL (1ULL << 36)

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* Run fn in a forked child; true if it exits 0. */
static bool probe_in_child(int (*fn)(void))
{
        pid_t pid = fork();
        int status;

        if (pid == 0)
                _exit(fn() == 0 ? 0 : 1);
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
                return false;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int try_unshare_user(void)
{
        return unshare(CLONE_NEWUSER);
}

bool cb_have_user_namespaces(void)
{
        return probe_in_child(try_unshare_user);
}

static bool have_seccomp_filter(void)
{
        return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
}

static bool have_seccomp_user_notif(void)
{
        struct seccomp_notif_sizes sizes;

        return syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) == 0;
}

static bool have_pidfd(void)
{
        int fd = pidfd_open(getpid(), 0);

        if (fd < 0)
                return false;
        close(fd);
        return true;
}

/* clone3 with flags; a child that is created exits at once. */
static bool clone3_accepts(unsigned long long flags)
{
        int pidfd = -1;
        struct clone_args args = {
            .flags = flags,
            .pidfd = (uint64_t)(uintptr_t)&pidfd,
            .exit_signal = (flags & CB_CLONE_AUTOREAP) ? 0 : SIGCHLD,
        };
        pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));

        if (pid == 0)
                _exit(0);
        if (pid < 0)
                return false;
        if (!(flags & CB_CLONE_AUTOREAP))
                waitpid(pid, NULL, 0);
        if (pidfd >= 0)
                close(pidfd);
        return true;
}

static const char *enforcer(bool cgroup)
{
        return cgroup ? "cgroup" : "rlimit";
}

/* Where each limit would be enforced for a cell started now. */
static json_t *limits_json(void)
{
        const struct cb_cgroup_host *h = cb_cgroup_host();
        json_t *ctrls = json_object();

        for (int c = 0; c < CB_CTRL_COUNT; c++) {
                int at = h->where[c];

                json_object_set_new(ctrls, cb_ctrl_name((enum cb_ctrl)c),
                                    at < 0 ? json_null() : json_string(h->h[at].base));
        }
        return json_pack("{s:s, s:s, s:s, s:s, s:o}", "memory",
                         enforcer(cb_cgroup_has(CB_CTRL_MEMORY)), "pids",
                         enforcer(cb_cgroup_has(CB_CTRL_PIDS)), "cpus",
                         cb_cgroup_has(CB_CTRL_CPU) ? "cgroup" : "unavailable", "cpu_time",
                         cb_cgroup_measures_cpu() ? "supervisor" : "rlimit", "controllers", ctrls);
}

static const char *cgroup_layout(void)
{
        struct statfs fs;

        if (statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
                return "v2";
        if (statfs("/sys/fs/cgroup/unified", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
                return "hybrid";
        if (access("/sys/fs/cgroup/memory", F_OK) == 0)
                return "v1";
        return "none";
}

/* Start a default cell running /bin/true and say how it went. */
static json_t *trial_cell(bool *ok)
{
        char *argv[] = {"true", NULL};
        cb_policy *p = cb_policy_new();
        cb_cell *cell = NULL;
        cb_result r;
        json_t *out;

        *ok = false;
        if (!p)
                return json_string("out of memory");
        if (cb_spawn(p, argv, NULL, &cell, &r) == 0)
                cb_cell_wait(cell, &r);
        cb_cell_free(cell);
        cb_policy_free(p);
        *ok = r.status == CB_EXITED && r.exit_code == 0;
        if (*ok)
                out = json_string("ok");
        else
                out = json_pack("{s:s, s:s, s:s}", "status", cb_status_name(r.status), "step",
                                r.error_step, "message", r.error_message);
        return out;
}

CB_EXPORT char *cb_check_host(bool *enforceable)
{
        struct utsname u;
        bool userns = cb_have_user_namespaces(), seccomp = have_seccomp_filter(),
             pidfd = have_pidfd(), clone3 = clone3_accepts(CLONE_PIDFD), trial_ok = false;
        int abi = cb_landlock_abi();
        json_t *trial = trial_cell(&trial_ok), *o;
        char *s;

        uname(&u);
        *enforceable = userns && seccomp && pidfd && clone3 && abi >= 1 && trial_ok;
        o = json_pack(
            "{s:s, s:s, s:s, s:b, s:i, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:{s:s}, s:o, s:b}",
            "kernel", u.release, "machine", u.machine, "running_as",
            geteuid() == 0 ? "root" : "rootless", "user_namespaces", userns, "landlock_abi", abi,
            "landlock_net", abi >= 4, "landlock_scoping", abi >= 6, "seccomp_filter", seccomp,
            "seccomp_user_notif", have_seccomp_user_notif(), "clone3", clone3, "pidfd", pidfd,
            "clone_autoreap", clone3_accepts(CLONE_PIDFD | CB_CLONE_AUTOREAP), "cgroup", "layout",
            cgroup_layout(), "trial_cell", trial, "enforceable", *enforceable);
        if (!o)
                return NULL;
        json_object_set_new(json_object_get(o, "cgroup"), "limits", limits_json());
        json_object_set_new(o, "clone_pidfd_autokill",
                            json_boolean(clone3_accepts(CLONE_PIDFD | CB_CLONE_AUTOREAP |
                                                        CB_CLONE_PIDFD_AUTOKILL)));
        s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        return s;
}
