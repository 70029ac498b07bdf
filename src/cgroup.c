/*
 * cgroups: each cell's limits, its accounting, and its removal.
 *
 * One interface, two backends chosen by detection:
 *   v2      memory.max + memory.swap.max, pids.max, cpu.max; memory.peak,
 *           memory.events, cpu.stat; cgroup.kill; CLONE_INTO_CGROUP.
 *   v1      memory.limit_in_bytes + memory.memsw.limit_in_bytes, pids.max,
 *           cpu.cfs_quota_us; memory.max_usage_in_bytes, memory.oom_control,
 *           cpuacct.usage_user/sys.
 * On a hybrid host the controllers live on v1 while the (controller-less)
 * v2 tree still gives cgroup.kill, cpu.stat and CLONE_INTO_CGROUP, so a cell
 * gets a directory in each hierarchy it uses.
 *
 * Everything lives beneath the cgroup the supervisor was started in:
 *   <own>/cellblock-<supervisor pid>/cell-<n>-<label>
 * The supervisor's reaper (cgroup_reaper.c) removes each cell's directories
 * once it has ended, and all of them when the supervisor is gone.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CPU_PERIOD_US 100000

static const char *const CTRL_NAMES[CB_CTRL_COUNT] = {"memory", "pids", "cpu", "cpuacct"};

static struct cb_cgroup_host host;
static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------------ */
/* Small file helpers                                                 */
/* ------------------------------------------------------------------ */

/* dir/name, opened close-on-exec. */
static int open_in(const char *dir, const char *name, int flags)
{
        char path[PATH_MAX];

        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
                errno = ENAMETOOLONG;
                return -1;
        }
        return open(path, flags | O_CLOEXEC);
}

static int write_file(const char *dir, const char *name, const char *text)
{
        ssize_t len = (ssize_t)strlen(text), n;
        int fd = open_in(dir, name, O_WRONLY), saved;

        if (fd < 0)
                return -1;
        n = write(fd, text, (size_t)len);
        saved = errno;
        close(fd);
        errno = saved;
        return n == len ? 0 : -1;
}

static ssize_t read_file(const char *dir, const char *name, char *buf, size_t size)
{
        ssize_t n;
        int fd = open_in(dir, name, O_RDONLY);

        if (fd < 0)
                return -1;
        n = read(fd, buf, size - 1);
        close(fd);
        if (n >= 0)
                buf[n] = '\0';
        return n;
}

/* A "key value" line of a flat-keyed file such as cpu.stat. */
static bool read_keyed(const char *dir, const char *name, const char *key, uint64_t *value)
{
        char buf[4096];
        size_t klen = strlen(key);

        if (read_file(dir, name, buf, sizeof(buf)) < 0)
                return false;
        for (char *line = buf; line && *line;
             line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
                        *value = strtoull(line + klen + 1, NULL, 10);
                        return true;
                }
        }
        return false;
}

static bool read_number(const char *dir, const char *name, uint64_t *value)
{
        char buf[64];

        if (read_file(dir, name, buf, sizeof(buf)) <= 0)
                return false;
        *value = strtoull(buf, NULL, 10);
        return true;
}

/* ------------------------------------------------------------------ */
/* Detection                                                          */
/* ------------------------------------------------------------------ */

/* Our own path in the v2 tree ("0::/x") or in the v1 hierarchy of ctrl. */
static bool own_path(const char *ctrl, char *out, size_t size)
{
        FILE *f = fopen("/proc/self/cgroup", "re");
        char line[PATH_MAX + 64];
        bool found = false;

        while (f && !found && fgets(line, sizeof(line), f)) {
                char *list = strchr(line, ':'), *path = list ? strchr(list + 1, ':') : NULL;

                if (!path)
                        continue;
                *path++ = '\0';
                path[strcspn(path, "\n")] = '\0';
                list++;
                if (ctrl ? strstr(list, ctrl) && (strlen(list) == strlen(ctrl) || strchr(list, ','))
                         : *list == '\0') {
                        snprintf(out, size, "%s", path);
                        found = true;
                }
        }
        if (f)
                fclose(f);
        return found;
}

/* Mount point of the v2 tree, or of the v1 hierarchy holding ctrl. */
static bool mount_point(const char *ctrl, char *out, size_t size)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[PATH_MAX * 2];
        bool found = false;

        while (f && !found && fgets(line, sizeof(line), f)) {
                char mnt[PATH_MAX], type[32], opts[512];
                char *sep = strstr(line, " - ");

                if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
                    sscanf(sep + 3, "%31s %*s %511s", type, opts) != 2)
                        continue;
                if (!ctrl && strcmp(type, "cgroup2") == 0)
                        found = true;
                else if (ctrl && strcmp(type, "cgroup") == 0) {
                        for (char *o = strtok(opts, ","); o && !found; o = strtok(NULL, ","))
                                found = strcmp(o, ctrl) == 0;
                }
                if (found)
                        snprintf(out, size, "%s", mnt);
        }
        if (f)
                fclose(f);
        return found;
}

static int add_hierarchy(const char *mnt, const char *own, bool v2)
{
        struct cb_cg_hier *h;

        for (size_t i = 0; i < host.n; i++) {
                if (strcmp(host.h[i].mount, mnt) == 0)
                        return (int)i;
        }
        if (host.n >= CB_ARRAY_LEN(host.h))
                return -1;
        h = &host.h[host.n];
        snprintf(h->mount, sizeof(h->mount), "%s", mnt);
        snprintf(h->base, sizeof(h->base), "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own);
        h->v2 = v2;
        return (int)host.n++;
}

/* v2 controllers we may use: offered to our cgroup and enabled (or enable-able) below it. */
static bool v2_offers(const struct cb_cg_hier *h, const char *ctrl)
{
        char buf[512];

        if (read_file(h->base, "cgroup.controllers", buf, sizeof(buf)) < 0)
                return false;
        for (char *w = strtok(buf, " \n"); w; w = strtok(NULL, " \n")) {
                if (strcmp(w, ctrl) == 0)
                        return true;
        }
        return false;
}

static void detect(void)
{
        char mnt[PATH_MAX], own[PATH_MAX];
        int v2 = -1;

        host.v2 = -1;
        for (int c = 0; c < CB_CTRL_COUNT; c++)
                host.where[c] = -1;
        if (mount_point(NULL, mnt, sizeof(mnt)) && own_path(NULL, own, sizeof(own))) {
                v2 = add_hierarchy(mnt, own, true);
                host.v2 = v2;
        }
        for (int c = 0; c < CB_CTRL_COUNT; c++) {
                /* with a v2 tree, accounting comes from its always-present cpu.stat */
                if (c == CB_CTRL_CPUACCT && v2 >= 0)
                        continue;
                if (v2 >= 0 && v2_offers(&host.h[v2], CTRL_NAMES[c]))
                        host.where[c] = v2;
                else if (mount_point(CTRL_NAMES[c], mnt, sizeof(mnt)) &&
                         own_path(CTRL_NAMES[c], own, sizeof(own)))
                        host.where[c] = add_hierarchy(mnt, own, false);
        }
        /* usable only where we may create directories */
        for (size_t i = 0; i < host.n; i++)
                host.h[i].writable = access(host.h[i].base, W_OK) == 0;
        for (int c = 0; c < CB_CTRL_COUNT; c++) {
                if (host.where[c] >= 0 && !host.h[host.where[c]].writable)
                        host.where[c] = -1;
        }
        if (host.v2 >= 0 && !host.h[host.v2].writable)
                host.v2 = -1;
}

const struct cb_cgroup_host *cb_cgroup_host(void)
{
        pthread_once(&host_once, detect);
        return &host;
}

bool cb_cgroup_has(enum cb_ctrl ctrl)
{
        return cb_cgroup_host()->where[ctrl] >= 0;
}

bool cb_cgroup_measures_cpu(void)
{
        return cb_cgroup_host()->v2 >= 0 || host.where[CB_CTRL_CPUACCT] >= 0;
}

/* ------------------------------------------------------------------ */
/* The per-supervisor directory                                       */
/* ------------------------------------------------------------------ */

static void group_dir(const struct cb_cg_hier *h, char *out, size_t size)
{
        snprintf(out, size, "%s/cellblock-%d", h->base, (int)getpid());
}

/* v2: controllers must be enabled in every parent's subtree_control. */
static int enable_v2_controllers(const char *dir)
{
        char list[64] = "";

        for (int c = 0; c < CB_CTRL_COUNT; c++) {
                if (c != CB_CTRL_CPUACCT && host.where[c] == host.v2) {
                        strcat(list, list[0] ? " +" : "+");
                        strcat(list, CTRL_NAMES[c]);
                }
        }
        return list[0] ? write_file(dir, "cgroup.subtree_control", list) : 0;
}

/*
 * v2's no-internal-processes rule: controllers can be enabled for the
 * children of our cgroup only once no process lives in it, so the
 * supervisor moves into a leaf of its own first.
 */
static int enable_below_own(const struct cb_cg_hier *h)
{
        char leaf[PATH_MAX];

        if (enable_v2_controllers(h->base) == 0)
                return 0;
        if (errno != EBUSY)
                return -1;
        snprintf(leaf, sizeof(leaf), "%s/cellblock-%d.supervisor", h->base, (int)getpid());
        if ((mkdir(leaf, 0755) < 0 && errno != EEXIST) || write_file(leaf, "cgroup.procs", "0") < 0)
                return -1;
        return enable_v2_controllers(h->base);
}

static int groups_create(void)
{
        char dir[PATH_MAX];

        cb_cgroup_sweep_stale(&host);
        for (size_t i = 0; i < host.n; i++) {
                if (!host.h[i].writable)
                        continue;
                group_dir(&host.h[i], dir, sizeof(dir));
                if (host.h[i].v2 && enable_below_own(&host.h[i]) < 0)
                        return -1;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                        return -1;
                if (host.h[i].v2 && enable_v2_controllers(dir) < 0)
                        return -1;
        }
        return cb_cgroup_reaper_start(&host);
}

/* ------------------------------------------------------------------ */
/* A cell's cgroups                                                   */
/* ------------------------------------------------------------------ */

static void sanitize_label(const char *label, char *out, size_t size)
{
        size_t n = 0;

        for (; label && *label && n + 1 < size; label++) {
                char c = *label;

                out[n++] = (c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') ||
                            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                               ? c
                               : '_';
        }
        out[n] = '\0';
}

/* The cell's directory in hierarchy h (empty when it has none there). */
struct cell_path {
        char s[PATH_MAX];
};

static struct cell_path cell_dir(const struct cb_cgroup *cg, int h)
{
        struct cell_path p = {""};
        char group[sizeof(host.h[0].base) + 32];

        if (h >= 0 && (cg->in & (1u << h))) {
                group_dir(&host.h[h], group, sizeof(group));
                snprintf(p.s, sizeof(p.s), "%s/%s", group, cg->name);
        }
        return p;
}

static struct cell_path ctrl_dir(const struct cb_cgroup *cg, enum cb_ctrl ctrl)
{
        return cell_dir(cg, host.where[ctrl]);
}

static bool ctrl_is_v2(enum cb_ctrl ctrl)
{
        return host.where[ctrl] >= 0 && host.h[host.where[ctrl]].v2;
}

static int set_memory(const struct cb_cgroup *cg, uint64_t bytes)
{
        struct cell_path dir = ctrl_dir(cg, CB_CTRL_MEMORY);
        char v[32];

        snprintf(v, sizeof(v), "%" PRIu64, bytes);
        if (ctrl_is_v2(CB_CTRL_MEMORY)) {
                if (write_file(dir.s, "memory.max", v) < 0)
                        return -1;
                return write_file(dir.s, "memory.swap.max", "0") < 0 && errno != ENOENT ? -1 : 0;
        }
        if (write_file(dir.s, "memory.limit_in_bytes", v) < 0)
                return -1;
        /* without swap accounting there is no memsw file, and no swap to limit */
        return write_file(dir.s, "memory.memsw.limit_in_bytes", v) < 0 && errno != ENOENT ? -1 : 0;
}

static int set_pids(const struct cb_cgroup *cg, uint64_t max)
{
        char v[32];

        snprintf(v, sizeof(v), "%" PRIu64, max);
        return write_file(ctrl_dir(cg, CB_CTRL_PIDS).s, "pids.max", v);
}

static int set_cpus(const struct cb_cgroup *cg, double cpus)
{
        struct cell_path dir = ctrl_dir(cg, CB_CTRL_CPU);
        long quota = (long)(cpus * CPU_PERIOD_US);
        char v[64];

        if (quota < 1000)
                quota = 1000; /* the kernel's minimum quota is 1 ms */
        if (ctrl_is_v2(CB_CTRL_CPU)) {
                snprintf(v, sizeof(v), "%ld %d", quota, CPU_PERIOD_US);
                return write_file(dir.s, "cpu.max", v);
        }
        snprintf(v, sizeof(v), "%d", CPU_PERIOD_US);
        if (write_file(dir.s, "cpu.cfs_period_us", v) < 0)
                return -1;
        snprintf(v, sizeof(v), "%ld", quota);
        return write_file(dir.s, "cpu.cfs_quota_us", v);
}

static int apply_limits(struct cb_cgroup *cg, const cb_policy *p, const char **what)
{
        *what = "memory";
        if (p->memory && cb_cgroup_has(CB_CTRL_MEMORY) && set_memory(cg, p->memory) < 0)
                return -1;
        *what = "pids";
        if (p->pids && cb_cgroup_has(CB_CTRL_PIDS) && set_pids(cg, p->pids) < 0)
                return -1;
        *what = "cpus";
        if (p->cpus > 0 && cb_cgroup_has(CB_CTRL_CPU) && set_cpus(cg, p->cpus) < 0)
                return -1;
        return 0;
}

static int open_join(struct cb_cgroup *cg, int h)
{
        int fd = open_in(cell_dir(cg, h).s, "cgroup.procs", O_WRONLY);

        if (fd < 0)
                return -1;
        cg->join_fd[cg->n_join++] = fd;
        return 0;
}

/* Every hierarchy but v2, which CLONE_INTO_CGROUP places the cell in. */
static int open_joins(struct cb_cgroup *cg)
{
        for (size_t i = 0; i < host.n; i++) {
                if ((cg->in & (1u << i)) && !host.h[i].v2 && open_join(cg, (int)i) < 0)
                        return -1;
        }
        return 0;
}

/* Hierarchies this cell needs a directory in. */
static unsigned needed_hierarchies(const cb_policy *p)
{
        bool need[CB_CTRL_COUNT] = {
            [CB_CTRL_MEMORY] = true, /* peak and OOM accounting even without a limit */
            [CB_CTRL_PIDS] = p->pids > 0,
            [CB_CTRL_CPU] = p->cpus > 0,
            [CB_CTRL_CPUACCT] = true,
        };
        unsigned mask = host.v2 >= 0 ? 1u << host.v2 : 0;

        for (int c = 0; c < CB_CTRL_COUNT; c++) {
                if (need[c] && host.where[c] >= 0)
                        mask |= 1u << host.where[c];
        }
        return mask;
}

/* The per-supervisor directories, created with the first cell and kept until we exit. */
static int groups_ready(void)
{
        static bool ready;
        int rc = 0;

        pthread_mutex_lock(&host_lock);
        if (!ready && (rc = groups_create()) == 0)
                ready = true;
        pthread_mutex_unlock(&host_lock);
        return rc;
}

int cb_cgroup_create(const cb_policy *p, const char *label, struct cb_cgroup **out,
                     const char **what)
{
        static unsigned seq;
        struct cb_cgroup *cg;
        unsigned want;
        char name[40];

        *out = NULL;
        cb_cgroup_host();
        want = needed_hierarchies(p);
        if (!want)
                return 0;
        cg = calloc(1, sizeof(*cg));
        if (!cg)
                return -1;
        cg->v2_fd = -1;
        *what = "cellblock group";
        if (groups_ready() < 0) {
                free(cg);
                return -1;
        }
        sanitize_label(label, name, sizeof(name));
        snprintf(cg->name, sizeof(cg->name), "cell-%u%s%s",
                 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED), name[0] ? "-" : "", name);
        for (size_t i = 0; i < host.n; i++) {
                struct cell_path dir;

                if (!(want & (1u << i)))
                        continue;
                cg->in |= 1u << i;
                dir = cell_dir(cg, (int)i);
                if (mkdir(dir.s, 0755) < 0) {
                        cg->in &= ~(1u << i);
                        *what = host.h[i].v2 ? "cgroup v2" : "cgroup v1";
                        goto fail;
                }
        }
        if (apply_limits(cg, p, what) < 0)
                goto fail;
        *what = "cgroup.procs";
        if (open_joins(cg) < 0)
                goto fail;
        /* without it the cell would start outside its v2 group */
        *what = "cgroup v2";
        if (host.v2 >= 0 &&
            (cg->v2_fd = open(cell_dir(cg, host.v2).s, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
                goto fail;
        *out = cg;
        return 0;
fail:
        cb_cgroup_destroy(cg);
        return -1;
}

int cb_cgroup_clone_fd(const struct cb_cgroup *cg)
{
        return cg ? cg->v2_fd : -1;
}

/* A kernel without CLONE_INTO_CGROUP: the cell joins its v2 group by itself too. */
int cb_cgroup_join_v2_too(struct cb_cgroup *cg)
{
        return open_join(cg, host.v2);
}

/*
 * In the cell, before anything else runs there: join each group it was not
 * cloned into.  The fds were opened by the supervisor, whose credentials the
 * kernel checks.  A move can wait out an RCU grace period (milliseconds)
 * while holding the kernel's cgroup lock, so the supervisor's next cgroup
 * mkdir may still wait for it; doing it here only keeps that wait out of
 * the spawn of this cell.  A pool of groups made ahead would hide it.
 */
int cb_cgroup_join(const struct cb_cgroup *cg)
{
        for (size_t i = 0; cg && i < cg->n_join; i++) {
                if (write(cg->join_fd[i], "0", 1) != 1)
                        return -1;
        }
        return 0;
}

/* The cell exists: a server with many cells need not hold these fds for each. */
void cb_cgroup_close_setup_fds(struct cb_cgroup *cg)
{
        if (!cg)
                return;
        if (cg->v2_fd >= 0)
                close(cg->v2_fd);
        cg->v2_fd = -1;
        for (size_t i = 0; i < cg->n_join; i++)
                close(cg->join_fd[i]);
        cg->n_join = 0;
}

/* Kill every process in the cell at once, where the kernel can. */
void cb_cgroup_kill(const struct cb_cgroup *cg)
{
        if (cg && host.v2 >= 0)
                write_file(cell_dir(cg, host.v2).s, "cgroup.kill", "1");
}

/* CPU time of the whole cell so far, in seconds; false if not measured. */
bool cb_cgroup_cpu(const struct cb_cgroup *cg, double *user, double *system)
{
        struct cell_path dir;
        uint64_t u, s;

        if (!cg)
                return false;
        if (host.v2 >= 0) {
                dir = cell_dir(cg, host.v2);
                if (read_keyed(dir.s, "cpu.stat", "user_usec", &u) &&
                    read_keyed(dir.s, "cpu.stat", "system_usec", &s)) {
                        *user = (double)u / 1e6;
                        *system = (double)s / 1e6;
                        return true;
                }
        }
        dir = ctrl_dir(cg, CB_CTRL_CPUACCT);
        if (dir.s[0] && read_number(dir.s, "cpuacct.usage_user", &u) &&
            read_number(dir.s, "cpuacct.usage_sys", &s)) {
                *user = (double)u / 1e9;
                *system = (double)s / 1e9;
                return true;
        }
        return false;
}

bool cb_cgroup_memory(const struct cb_cgroup *cg, uint64_t *peak, uint64_t *oom_kills)
{
        struct cell_path dir;

        *oom_kills = 0;
        if (!cg)
                return false;
        dir = ctrl_dir(cg, CB_CTRL_MEMORY);
        if (!dir.s[0])
                return false;
        if (ctrl_is_v2(CB_CTRL_MEMORY))
                return read_number(dir.s, "memory.peak", peak) &&
                       read_keyed(dir.s, "memory.events", "oom_kill", oom_kills);
        return read_number(dir.s, "memory.max_usage_in_bytes", peak) &&
               read_keyed(dir.s, "memory.oom_control", "oom_kill", oom_kills);
}

/* rmdir fails while the kernel still holds the last exiting task: retry briefly. */
static void remove_dir(const char *dir)
{
        struct timespec pause = {0, 1000000};

        for (int tries = 0; tries < 1000 && rmdir(dir) < 0 && errno == EBUSY; tries++)
                nanosleep(&pause, NULL);
}

void cb_cgroup_destroy(struct cb_cgroup *cg)
{
        if (!cg)
                return;
        cb_cgroup_close_setup_fds(cg);
        if (!cb_cgroup_reaper_remove(cg)) {
                for (size_t i = 0; i < host.n; i++) {
                        if (cg->in & (1u << i))
                                remove_dir(cell_dir(cg, (int)i).s);
                }
        }
        free(cg);
}

const char *cb_ctrl_name(enum cb_ctrl ctrl)
{
        return CTRL_NAMES[ctrl];
}
