/* A cell's result, its JSON form and exit status (result.c). */
#include "internal.h"
#include "helpers.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct {
        cb_status status;
        const char *name;
} STATUSES[] = {
    {CB_EXITED, "exited"},
    {CB_SIGNALED, "signaled"},
    {CB_TIMEOUT, "timeout"},
    {CB_CPU_TIME, "cpu-time"},
    {CB_OOM, "oom"},
    {CB_OUTPUT_LIMIT, "output-limit"},
    {CB_SETUP_FAILED, "setup-failed"},
    {CB_EXEC_FAILED, "exec-failed"},
    {CB_KILLED, "killed"},
};

/* The keys of a result object, as documented. */
static const char *const RESULT_KEYS[] = {
    "status",       "exit_code",
    "signal",       "wall_time_s",
    "setup_time_s", "cpu_user_s",
    "cpu_system_s", "memory_peak_bytes",
    "stdout_bytes", "stdout_dropped_bytes",
    "stderr_bytes", "stderr_dropped_bytes",
    "error",        "limits",
};

/* A plausible result of each status; times have at most six significant digits. */
static cb_result sample(cb_status status)
{
        cb_result r;

        cb_result_init(&r);
        r.status = status;
        r.wall_time_s = 0.0289;
        r.setup_time_s = 0.0021;
        r.cpu_user_s = 0.02;
        r.cpu_system_s = 1.5;
        r.memory_peak_bytes = 10674176;
        r.stdout_bytes = 467;
        r.stdout_dropped_bytes = UINT64_C(1) << 40;
        r.stderr_bytes = 16777216;
        r.stderr_dropped_bytes = 3;
        r.memory_by = CB_ENFORCE_CGROUP;
        r.pids_by = CB_ENFORCE_RLIMIT;
        r.cpu_by = CB_ENFORCE_SUPERVISOR;
        switch (status) {
        case CB_EXITED:
                r.exit_code = 3;
                break;
        case CB_SIGNALED:
                r.term_signal = SIGSEGV;
                break;
        case CB_CPU_TIME:
                r.term_signal = SIGXCPU;
                break;
        case CB_SETUP_FAILED:
                cb_result_set_error(&r, status, "mounts", EPERM, "mount /in: %s", strerror(EPERM));
                break;
        case CB_EXEC_FAILED:
                cb_result_set_error(&r, status, "execve", ENOENT, "nosuch: %s", strerror(ENOENT));
                break;
        default:
                r.term_signal = SIGKILL;
                break;
        }
        return r;
}

static void assert_results_equal(const cb_result *a, const cb_result *b)
{
        assert_int_equal(a->status, b->status);
        assert_int_equal(a->exit_code, b->exit_code);
        assert_int_equal(a->term_signal, b->term_signal);
        assert_true(a->wall_time_s == b->wall_time_s);
        assert_true(a->setup_time_s == b->setup_time_s);
        assert_true(a->cpu_user_s == b->cpu_user_s);
        assert_true(a->cpu_system_s == b->cpu_system_s);
        assert_int_equal(a->memory_peak_bytes, b->memory_peak_bytes);
        assert_int_equal(a->stdout_bytes, b->stdout_bytes);
        assert_int_equal(a->stdout_dropped_bytes, b->stdout_dropped_bytes);
        assert_int_equal(a->stderr_bytes, b->stderr_bytes);
        assert_int_equal(a->stderr_dropped_bytes, b->stderr_dropped_bytes);
        assert_string_equal(a->error_step, b->error_step);
        assert_int_equal(a->error_errno, b->error_errno);
        assert_string_equal(a->error_message, b->error_message);
        assert_int_equal(a->memory_by, b->memory_by);
        assert_int_equal(a->pids_by, b->pids_by);
        assert_int_equal(a->cpu_by, b->cpu_by);
}

static json_t *result_json(const cb_result *r)
{
        char *text = cb_result_to_json(r);
        json_t *o;

        assert_non_null(text);
        o = json_loads(text, 0, NULL);
        free(text);
        assert_non_null(o);
        return o;
}

/* Whether o[key] equals want (JSON text); why says what it holds. */
static bool member_is(json_t *o, const char *key, const char *want, char *why, size_t why_len)
{
        json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
        json_t *got = json_object_get(o, key);
        char *dump = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
        bool same = w && got && json_equal(got, w);

        snprintf(why, why_len, "%s is %s, want %s", key, dump ? dump : "missing", want);
        free(dump);
        json_decref(w);
        return same;
}

static void assert_result_member(const cb_result *r, const char *key, const char *want)
{
        json_t *o = result_json(r);
        char why[512];
        bool same = member_is(o, key, want, why, sizeof(why));

        json_decref(o);
        if (!same)
                fail_msg("%s: %s", cb_status_name(r->status), why);
}

static int from_json(const char *text, cb_result *r, cb_error *err)
{
        return cb_result_from_json(text, strlen(text), r, err);
}

/* ------------------------------------------------------------------ */
/* Status names                                                       */
/* ------------------------------------------------------------------ */

static void test_status_name_names_every_status(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(STATUSES); i++)
                assert_string_equal(cb_status_name(STATUSES[i].status), STATUSES[i].name);
}

static void test_status_name_of_an_unknown_status_is_unknown(void **state)
{
        (void)state;
        assert_string_equal(cb_status_name((cb_status)(CB_KILLED + 1)), "unknown");
        assert_string_equal(cb_status_name((cb_status)-1), "unknown");
}

/* ------------------------------------------------------------------ */
/* To JSON                                                            */
/* ------------------------------------------------------------------ */

static void test_to_json_writes_exactly_the_documented_keys(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(STATUSES); i++) {
                cb_result r = sample(STATUSES[i].status);
                json_t *o = result_json(&r);
                size_t n = json_object_size(o), missing = 0;

                for (size_t k = 0; k < CB_ARRAY_LEN(RESULT_KEYS); k++)
                        missing += json_object_get(o, RESULT_KEYS[k]) ? 0 : 1;
                json_decref(o);
                if (n != CB_ARRAY_LEN(RESULT_KEYS) || missing)
                        fail_msg("%s: %zu keys, %zu missing", STATUSES[i].name, n, missing);
        }
}

static void test_to_json_writes_the_status_name(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(STATUSES); i++) {
                cb_result r = sample(STATUSES[i].status);
                char want[64];

                snprintf(want, sizeof(want), "\"%s\"", STATUSES[i].name);
                assert_result_member(&r, "status", want);
        }
}

static void test_to_json_writes_exit_code_only_when_exited(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(STATUSES); i++) {
                cb_result r = sample(STATUSES[i].status);

                r.exit_code = 5;
                assert_result_member(&r, "exit_code", r.status == CB_EXITED ? "5" : "null");
        }
}

static void test_to_json_writes_signal_null_when_zero(void **state)
{
        static const struct {
                int sig;
                const char *want;
        } cases[] = {{0, "null"}, {SIGKILL, "9"}, {SIGTERM, "15"}, {SIGXCPU, "24"}};

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                cb_result r = sample(CB_SIGNALED);

                r.term_signal = cases[i].sig;
                assert_result_member(&r, "signal", cases[i].want);
        }
}

static void test_to_json_writes_an_error_object_only_for_failures(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(STATUSES); i++) {
                cb_result r = sample(STATUSES[i].status);
                bool failed = r.status == CB_SETUP_FAILED || r.status == CB_EXEC_FAILED;

                cb_result_set_error(&r, r.status, "landlock", EPERM, "no entry");
                assert_result_member(&r, "error",
                                     failed ? "{\"step\": \"landlock\", \"errno\": \"EPERM\","
                                              " \"message\": \"no entry\"}"
                                            : "null");
        }
}

static void test_to_json_names_errno_symbolically(void **state)
{
        static const struct {
                int err;
                const char *want;
        } cases[] = {{EPERM, "\"EPERM\""},
                     {ENOENT, "\"ENOENT\""},
                     {EACCES, "\"EACCES\""},
                     {ENOEXEC, "\"ENOEXEC\""},
                     {0, "null"}};

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                cb_result r = sample(CB_EXEC_FAILED);
                json_t *o;
                char why[256];
                bool same;

                r.error_errno = cases[i].err;
                o = result_json(&r);
                same = member_is(json_object_get(o, "error"), "errno", cases[i].want, why,
                                 sizeof(why));
                json_decref(o);
                if (!same)
                        fail_msg("errno %d: %s", cases[i].err, why);
        }
}

static void test_to_json_writes_which_mechanism_enforced_each_limit(void **state)
{
        cb_result r = sample(CB_EXITED);

        (void)state;
        assert_result_member(&r, "limits",
                             "{\"memory\": \"cgroup\", \"pids\": \"rlimit\","
                             " \"cpu\": \"supervisor\"}");
        r.memory_by = r.pids_by = r.cpu_by = CB_ENFORCE_NONE;
        assert_result_member(&r, "limits",
                             "{\"memory\": \"none\", \"pids\": \"none\", \"cpu\": \"none\"}");
}

/* ------------------------------------------------------------------ */
/* From JSON                                                          */
/* ------------------------------------------------------------------ */

static void test_result_round_trips_through_json_for_every_status(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(STATUSES); i++) {
                cb_result r = sample(STATUSES[i].status), back;
                char *text = cb_result_to_json(&r);
                cb_error err = {{0}};
                int rc;

                assert_non_null(text);
                rc = from_json(text, &back, &err);
                free(text);
                if (rc != 0)
                        fail_msg("%s: %s", STATUSES[i].name, err.message);
                assert_results_equal(&r, &back);
        }
}

/* The README's example, which has no setup_time_s: that key is optional. */
static void test_from_json_reads_a_documented_result(void **state)
{
        static const char text[] =
            "{\"status\": \"exited\", \"exit_code\": 0, \"signal\": null,\n"
            " \"wall_time_s\": 0.0289, \"cpu_user_s\": 0.020, \"cpu_system_s\": 0.0036,\n"
            " \"memory_peak_bytes\": 10674176,\n"
            " \"stdout_bytes\": 467, \"stdout_dropped_bytes\": 0,\n"
            " \"stderr_bytes\": 0, \"stderr_dropped_bytes\": 0,\n"
            " \"error\": null, \"limits\": {\"memory\": \"cgroup\", \"pids\": \"cgroup\","
            " \"cpu\": \"none\"}}";
        cb_result r;
        cb_error err = {{0}};

        (void)state;
        assert_int_equal(from_json(text, &r, &err), 0);
        assert_int_equal(r.status, CB_EXITED);
        assert_int_equal(r.exit_code, 0);
        assert_int_equal(r.term_signal, 0);
        assert_true(r.wall_time_s == 0.0289 && r.cpu_user_s == 0.02 && r.cpu_system_s == 0.0036);
        assert_true(r.setup_time_s == 0);
        assert_int_equal(r.memory_peak_bytes, 10674176);
        assert_int_equal(r.stdout_bytes, 467);
        assert_string_equal(r.error_step, "");
        assert_int_equal(r.error_errno, 0);
        assert_int_equal(r.memory_by, CB_ENFORCE_CGROUP);
        assert_int_equal(r.pids_by, CB_ENFORCE_CGROUP);
        assert_int_equal(r.cpu_by, CB_ENFORCE_NONE);
}

/* Sets key of a sample result object to value (JSON text), or removes it when NULL. */
static char *sample_with(const char *key, const char *value)
{
        cb_result r = sample(CB_SETUP_FAILED);
        json_t *o = result_json(&r);
        char *text;

        if (value)
                json_object_set_new(o, key, json_loads(value, JSON_DECODE_ANY, NULL));
        else
                json_object_del(o, key);
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        assert_non_null(text);
        return text;
}

static void test_from_json_maps_errno_names_to_numbers(void **state)
{
        static const struct {
                const char *error;
                int want;
        } cases[] = {
            {"{\"step\": \"s\", \"errno\": \"EPERM\", \"message\": \"m\"}", EPERM},
            {"{\"step\": \"s\", \"errno\": \"ENOENT\", \"message\": \"m\"}", ENOENT},
            {"{\"step\": \"s\", \"errno\": \"EACCES\", \"message\": \"m\"}", EACCES},
            {"{\"step\": \"s\", \"errno\": \"ENOMEM\", \"message\": \"m\"}", ENOMEM},
            {"{\"step\": \"s\", \"message\": \"m\"}", 0},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                char *text = sample_with("error", cases[i].error);
                cb_error err = {{0}};
                cb_result r;
                int rc = from_json(text, &r, &err);

                free(text);
                if (rc != 0 || r.error_errno != cases[i].want)
                        fail_msg("%s: rc %d, errno %d", cases[i].error, rc, r.error_errno);
                assert_string_equal(r.error_step, "s");
                assert_string_equal(r.error_message, "m");
        }
}

static void test_from_json_takes_missing_limits_as_none(void **state)
{
        char *text = sample_with("limits", NULL);
        cb_error err = {{0}};
        cb_result r;
        int rc = from_json(text, &r, &err);

        (void)state;
        free(text);
        assert_int_equal(rc, 0);
        assert_int_equal(r.memory_by, CB_ENFORCE_NONE);
        assert_int_equal(r.pids_by, CB_ENFORCE_NONE);
        assert_int_equal(r.cpu_by, CB_ENFORCE_NONE);
}

static void test_from_json_takes_whole_numbers_as_times(void **state)
{
        char *text = sample_with("wall_time_s", "2");
        cb_error err = {{0}};
        cb_result r;
        int rc = from_json(text, &r, &err);

        (void)state;
        free(text);
        assert_int_equal(rc, 0);
        assert_true(r.wall_time_s == 2.0);
}

static void test_from_json_refuses_what_is_not_a_json_object(void **state)
{
        static const char *const cases[] = {
            "", "garbage", "{", "[]", "42", "null", "\"exited\"", "{}", "{\"status\": \"exited\"}",
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                cb_error err = {{0}};
                cb_result r;

                if (from_json(cases[i], &r, &err) != -1)
                        fail_msg("\"%s\" was accepted", cases[i]);
                assert_string_equal(err.field, "result");
                assert_non_null(strstr(err.message, "not a cellblock result"));
        }
}

static void test_from_json_refuses_trailing_text(void **state)
{
        cb_result r = sample(CB_EXITED);
        char *text = cb_result_to_json(&r), *longer;
        cb_error err = {{0}};

        (void)state;
        assert_true(asprintf(&longer, "%s x", text) > 0);
        free(text);
        assert_int_equal(from_json(longer, &r, &err), -1);
        free(longer);
}

static void test_from_json_refuses_missing_keys_wrong_types_and_unknown_names(void **state)
{
        static const struct {
                const char *key, *value;
        } cases[] = {
            {"status", NULL},
            {"status", "1"},
            {"status", "null"},
            {"status", "\"finished\""},
            {"status", "\"Exited\""},
            {"status", "\"unknown\""},
            {"exit_code", NULL},
            {"exit_code", "\"0\""},
            {"exit_code", "1.5"},
            {"exit_code", "true"},
            {"signal", NULL},
            {"signal", "\"SIGKILL\""},
            {"signal", "[]"},
            {"wall_time_s", NULL},
            {"wall_time_s", "\"1\""},
            {"wall_time_s", "null"},
            {"setup_time_s", "\"0.1\""},
            {"setup_time_s", "null"},
            {"cpu_user_s", "true"},
            {"cpu_system_s", NULL},
            {"memory_peak_bytes", "1.5"},
            {"memory_peak_bytes", "\"1M\""},
            {"stdout_bytes", NULL},
            {"stdout_dropped_bytes", "null"},
            {"stderr_bytes", "{}"},
            {"stderr_dropped_bytes", NULL},
            {"error", NULL},
            {"error", "\"EPERM\""},
            {"error", "[]"},
            {"error", "{}"},
            {"error", "{\"step\": \"s\"}"},
            {"error", "{\"message\": \"m\"}"},
            {"error", "{\"step\": 1, \"message\": \"m\"}"},
            {"error", "{\"step\": \"s\", \"errno\": 1, \"message\": \"m\"}"},
            {"limits", "null"},
            {"limits", "[]"},
            {"limits", "{\"memory\": \"magic\"}"},
            {"limits", "{\"pids\": \"Cgroup\"}"},
            {"limits", "{\"cpu\": 1}"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                char *text = sample_with(cases[i].key, cases[i].value);
                cb_error err = {{0}};
                cb_result r;
                int rc = from_json(text, &r, &err);

                free(text);
                if (rc != -1)
                        fail_msg("%s %s was accepted", cases[i].key,
                                 cases[i].value ? cases[i].value : "missing");
                assert_string_equal(err.field, "result");
        }
}

/* Seen in results of cells that ended before exec without an errno. */
static void test_failure_without_errno_round_trips(void **state)
{
        static const int errnos[] = {0, 4095};

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(errnos); i++) {
                cb_result r = sample(CB_SETUP_FAILED), back;
                char *text;
                cb_error err = {{0}};
                int rc;

                cb_result_set_error(&r, CB_SETUP_FAILED, "init", errnos[i],
                                    "the cell ended before its program started");
                text = cb_result_to_json(&r);
                assert_non_null(text);
                rc = from_json(text, &back, &err);
                if (rc != 0)
                        fail_msg("errno %d: %s does not parse back: %s", errnos[i], text,
                                 err.message);
                free(text);
        }
}

/* Messages hold program paths, which are bytes, and are cut at 255 bytes. */
static void test_to_json_writes_messages_that_are_not_utf8(void **state)
{
        char cut[300];
        const char *const messages[] = {"/bin/\xff: No such file or directory", cut};

        (void)state;
        memset(cut, 'a', 254);
        snprintf(cut + 254, sizeof(cut) - 254, "\xc3\xa9 and more");
        for (size_t i = 0; i < CB_ARRAY_LEN(messages); i++) {
                cb_result r = sample(CB_EXEC_FAILED);
                char *text;

                cb_result_set_error(&r, CB_EXEC_FAILED, "execve", ENOENT, "%s", messages[i]);
                text = cb_result_to_json(&r);
                if (!text)
                        fail_msg("no JSON for message %zu", i);
                free(text);
        }
}

/* ------------------------------------------------------------------ */
/* Exit status                                                        */
/* ------------------------------------------------------------------ */

static void test_exit_status_follows_the_documented_mapping(void **state)
{
        static const struct {
                cb_status status;
                int code, sig, err, want;
        } cases[] = {
            {CB_EXITED, 0, 0, 0, 0},
            {CB_EXITED, 3, 0, 0, 3},
            {CB_EXITED, 255, 0, 0, 255},
            {CB_SIGNALED, 0, SIGKILL, 0, 128 + SIGKILL},
            {CB_SIGNALED, 0, SIGSEGV, 0, 128 + SIGSEGV},
            {CB_SIGNALED, 0, SIGTERM, 0, 128 + SIGTERM},
            {CB_SETUP_FAILED, 0, 0, EPERM, 125},
            {CB_SETUP_FAILED, 0, 0, 0, 125},
            {CB_SETUP_FAILED, 0, 0, ENOENT, 125},
            {CB_EXEC_FAILED, 0, 0, ENOENT, 127},
            {CB_EXEC_FAILED, 0, 0, EACCES, 126},
            {CB_EXEC_FAILED, 0, 0, ENOEXEC, 126},
            {CB_EXEC_FAILED, 0, 0, 0, 126},
            {CB_TIMEOUT, 0, 0, 0, 128 + SIGKILL},
            {CB_TIMEOUT, 0, SIGKILL, 0, 128 + SIGKILL},
            {CB_TIMEOUT, 0, SIGTERM, 0, 128 + SIGTERM},
            {CB_CPU_TIME, 0, 0, 0, 128 + SIGKILL},
            {CB_CPU_TIME, 0, SIGXCPU, 0, 128 + SIGXCPU},
            {CB_OOM, 0, 0, 0, 128 + SIGKILL},
            {CB_OUTPUT_LIMIT, 0, 0, 0, 128 + SIGKILL},
            {CB_KILLED, 0, 0, 0, 128 + SIGKILL},
            {CB_KILLED, 0, SIGTERM, 0, 128 + SIGTERM},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                cb_result r;
                int got;

                cb_result_init(&r);
                r.status = cases[i].status;
                r.exit_code = cases[i].code;
                r.term_signal = cases[i].sig;
                r.error_errno = cases[i].err;
                got = cb_result_exit_status(&r);
                if (got != cases[i].want)
                        fail_msg("%s code %d signal %d errno %d: %d, want %d",
                                 cb_status_name(r.status), r.exit_code, r.term_signal,
                                 r.error_errno, got, cases[i].want);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_status_name_names_every_status),
            cmocka_unit_test(test_status_name_of_an_unknown_status_is_unknown),
            cmocka_unit_test(test_to_json_writes_exactly_the_documented_keys),
            cmocka_unit_test(test_to_json_writes_the_status_name),
            cmocka_unit_test(test_to_json_writes_exit_code_only_when_exited),
            cmocka_unit_test(test_to_json_writes_signal_null_when_zero),
            cmocka_unit_test(test_to_json_writes_an_error_object_only_for_failures),
            cmocka_unit_test(test_to_json_names_errno_symbolically),
            cmocka_unit_test(test_to_json_writes_which_mechanism_enforced_each_limit),
            cmocka_unit_test(test_result_round_trips_through_json_for_every_status),
            cmocka_unit_test(test_from_json_reads_a_documented_result),
            cmocka_unit_test(test_from_json_maps_errno_names_to_numbers),
            cmocka_unit_test(test_from_json_takes_missing_limits_as_none),
            cmocka_unit_test(test_from_json_takes_whole_numbers_as_times),
            cmocka_unit_test(test_from_json_refuses_what_is_not_a_json_object),
            cmocka_unit_test(test_from_json_refuses_trailing_text),
            cmocka_unit_test(test_from_json_refuses_missing_keys_wrong_types_and_unknown_names),
            cmocka_unit_test(test_failure_without_errno_round_trips),
            cmocka_unit_test(test_to_json_writes_messages_that_are_not_utf8),
            cmocka_unit_test(test_exit_status_follows_the_documented_mapping),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
