/* A cell's result and its JSON form. */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const STATUS_NAMES[] = {
    [CB_EXITED] = "exited",
    [CB_SIGNALED] = "signaled",
    [CB_TIMEOUT] = "timeout",
    [CB_CPU_TIME] = "cpu-time",
    [CB_OOM] = "oom",
    [CB_OUTPUT_LIMIT] = "output-limit",
    [CB_SETUP_FAILED] = "setup-failed",
    [CB_EXEC_FAILED] = "exec-failed",
    [CB_KILLED] = "killed",
};

static const char *const ENFORCEMENT_NAMES[] = {
    [CB_ENFORCE_NONE] = "none",
    [CB_ENFORCE_CGROUP] = "cgroup",
    [CB_ENFORCE_RLIMIT] = "rlimit",
    [CB_ENFORCE_SUPERVISOR] = "supervisor",
};

CB_EXPORT const char *cb_status_name(cb_status status)
{
        if ((unsigned)status >= CB_ARRAY_LEN(STATUS_NAMES))
                return "unknown";
        return STATUS_NAMES[status];
}

void cb_result_init(cb_result *r)
{
        memset(r, 0, sizeof(*r));
        r->status = CB_SETUP_FAILED;
}

void cb_result_set_error(cb_result *r, cb_status status, const char *step, int err, const char *fmt,
                         ...)
{
        va_list ap;

        r->status = status;
        r->error_errno = err;
        snprintf(r->error_step, sizeof(r->error_step), "%s", step);
        va_start(ap, fmt);
        vsnprintf(r->error_message, sizeof(r->error_message), fmt, ap);
        va_end(ap);
}

static bool has_error(const cb_result *r)
{
        return r->status == CB_SETUP_FAILED || r->status == CB_EXEC_FAILED;
}

/* Length of the valid UTF-8 sequence at s, or 0 if there is none. */
static size_t utf8_sequence(const unsigned char *s)
{
        size_t len = s[0] < 0x80             ? 1
                     : (s[0] & 0xe0) == 0xc0 ? 2
                     : (s[0] & 0xf0) == 0xe0 ? 3
                     : (s[0] & 0xf8) == 0xf0 ? 4
                                             : 0;

        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        }
        return len;
}

/*
 * Error text can hold bytes that are not UTF-8 (a program name, a message
 * cut short mid-character); JSON cannot, so such bytes become '?'.
 */
static json_t *json_text(const char *text)
{
        char out[512];
        size_t n = 0;

        for (const unsigned char *s = (const unsigned char *)text; *s && n + 5 < sizeof(out);) {
                size_t len = utf8_sequence(s);

                if (len == 0 || (len == 2 && s[0] < 0xc2)) {
                        out[n++] = '?';
                        s++;
                        continue;
                }
                memcpy(out + n, s, len);
                n += len;
                s += len;
        }
        out[n] = '\0';
        return json_stringn(out, n) ?: json_string("?");
}

static json_t *error_json(const cb_result *r)
{
        const char *name = r->error_errno ? strerrorname_np(r->error_errno) : NULL;

        if (!has_error(r))
                return json_null();
        return json_pack("{s:o, s:s?, s:o}", "step", json_text(r->error_step), "errno", name,
                         "message", json_text(r->error_message));
}

static json_t *limits_json(const cb_result *r)
{
        return json_pack("{s:s, s:s, s:s}", "memory", ENFORCEMENT_NAMES[r->memory_by], "pids",
                         ENFORCEMENT_NAMES[r->pids_by], "cpu", ENFORCEMENT_NAMES[r->cpu_by]);
}

CB_EXPORT char *cb_result_to_json(const cb_result *r)
{
        json_t *exit_code = r->status == CB_EXITED ? json_integer(r->exit_code) : json_null();
        json_t *sig = r->term_signal ? json_integer(r->term_signal) : json_null();
        json_t *o = json_pack(
            "{s:s, s:o, s:o, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "status",
            cb_status_name(r->status), "exit_code", exit_code, "signal", sig, "wall_time_s",
            r->wall_time_s, "setup_time_s", r->setup_time_s, "cpu_user_s", r->cpu_user_s,
            "cpu_system_s", r->cpu_system_s, "memory_peak_bytes", (json_int_t)r->memory_peak_bytes,
            "stdout_bytes", (json_int_t)r->stdout_bytes, "stdout_dropped_bytes",
            (json_int_t)r->stdout_dropped_bytes, "stderr_bytes", (json_int_t)r->stderr_bytes,
            "stderr_dropped_bytes", (json_int_t)r->stderr_dropped_bytes, "error", error_json(r),
            "limits", limits_json(r));
        char *s;

        if (!o)
                return NULL;
        s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(o);
        return s;
}

static int errno_from_name(const char *name)
{
        for (int e = 1; e < 256; e++) {
                const char *n = strerrorname_np(e);

                if (n && strcmp(n, name) == 0)
                        return e;
        }
        return 0;
}

static int lookup_name(const char *const *names, size_t count, const char *name)
{
        for (size_t i = 0; name && i < count; i++) {
                if (names[i] && strcmp(names[i], name) == 0)
                        return (int)i;
        }
        return -1;
}

static int parse_error_object(const json_t *e, cb_result *r)
{
        const char *step = NULL, *message = NULL;
        json_t *err_name = NULL;

        if (json_is_null(e))
                return 0;
        if (json_unpack((json_t *)e, "{s:s, s?o, s:s}", "step", &step, "errno", &err_name,
                        "message", &message) < 0 ||
            (err_name && !json_is_null(err_name) && !json_is_string(err_name)))
                return -1;
        snprintf(r->error_step, sizeof(r->error_step), "%s", step);
        snprintf(r->error_message, sizeof(r->error_message), "%s", message);
        r->error_errno =
            json_is_string(err_name) ? errno_from_name(json_string_value(err_name)) : 0;
        return 0;
}

static int parse_limits_object(const json_t *l, cb_result *r)
{
        const char *mem = "none", *pids = "none", *cpu = "none";
        size_t n = CB_ARRAY_LEN(ENFORCEMENT_NAMES);
        int m, p, c;

        if (!l)
                return 0;
        if (json_unpack((json_t *)l, "{s?s, s?s, s?s}", "memory", &mem, "pids", &pids, "cpu",
                        &cpu) < 0)
                return -1;
        m = lookup_name(ENFORCEMENT_NAMES, n, mem);
        p = lookup_name(ENFORCEMENT_NAMES, n, pids);
        c = lookup_name(ENFORCEMENT_NAMES, n, cpu);
        if (m < 0 || p < 0 || c < 0)
                return -1;
        r->memory_by = (cb_enforcement)m;
        r->pids_by = (cb_enforcement)p;
        r->cpu_by = (cb_enforcement)c;
        return 0;
}

CB_EXPORT int cb_result_from_json(const char *text, size_t len, cb_result *r, cb_error *err)
{
        json_t *o = json_loadb(text, len, 0, NULL), *exit_code = NULL, *sig = NULL, *e = NULL,
               *limits = NULL;
        const char *status = NULL;
        json_int_t mem = 0, ob = 0, od = 0, eb = 0, ed = 0;
        int st, rc = -1;

        cb_result_init(r);
        if (o &&
            json_unpack(o, "{s:s, s:o, s:o, s:F, s?F, s:F, s:F, s:I, s:I, s:I, s:I, s:I, s:o, s?o}",
                        "status", &status, "exit_code", &exit_code, "signal", &sig, "wall_time_s",
                        &r->wall_time_s, "setup_time_s", &r->setup_time_s, "cpu_user_s",
                        &r->cpu_user_s, "cpu_system_s", &r->cpu_system_s, "memory_peak_bytes", &mem,
                        "stdout_bytes", &ob, "stdout_dropped_bytes", &od, "stderr_bytes", &eb,
                        "stderr_dropped_bytes", &ed, "error", &e, "limits", &limits) == 0 &&
            (st = lookup_name(STATUS_NAMES, CB_ARRAY_LEN(STATUS_NAMES), status)) >= 0 &&
            (json_is_null(exit_code) || json_is_integer(exit_code)) &&
            (json_is_null(sig) || json_is_integer(sig)) && mem >= 0 && ob >= 0 && od >= 0 &&
            eb >= 0 && ed >= 0 && parse_error_object(e, r) == 0 &&
            parse_limits_object(limits, r) == 0) {
                r->status = (cb_status)st;
                r->exit_code = (int)json_integer_value(exit_code);
                r->term_signal = (int)json_integer_value(sig);
                r->memory_peak_bytes = (uint64_t)mem;
                r->stdout_bytes = (uint64_t)ob;
                r->stdout_dropped_bytes = (uint64_t)od;
                r->stderr_bytes = (uint64_t)eb;
                r->stderr_dropped_bytes = (uint64_t)ed;
                rc = 0;
        } else {
                cb_error_set(err, "result", "not a cellblock result object");
        }
        json_decref(o);
        return rc;
}

CB_EXPORT int cb_result_exit_status(const cb_result *r)
{
        switch (r->status) {
        case CB_EXITED:
                return r->exit_code;
        case CB_SETUP_FAILED:
                return 125;
        case CB_EXEC_FAILED:
                return r->error_errno == ENOENT ? 127 : 126;
        default:
                return 128 + (r->term_signal ? r->term_signal : SIGKILL);
        }
}
