/* Server requests as docs/protocol.md describes them (request.c). */
#include "internal.h"
#include "helpers.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define NO_STDIO                                                                                   \
        {                                                                                          \
                -1, -1, -1                                                                         \
        }

#define X16  "xxxxxxxxxxxxxxxx"
#define X128 X16 X16 X16 X16 X16 X16 X16 X16

static const char *const OP_NAMES[] = {"spawn", "kill", "signal", "ping"};

/* Whether the request's id is the one given as JSON text (NULL: none). */
static bool id_is(const json_t *id, const char *want)
{
        json_t *w;
        bool same;

        if (!want)
                return id == NULL;
        w = json_loads(want, JSON_DECODE_ANY, NULL);
        assert_non_null(w);
        same = id && json_equal(id, w);
        json_decref(w);
        return same;
}

static int parse(const char *json, size_t n_fds, struct cb_request *r, struct cb_reply_error *e)
{
        memset(e, 0, sizeof(*e));
        return cb_request_parse(json, strlen(json), n_fds, r, e);
}

static void assert_accepted(const char *json, size_t n_fds, struct cb_request *r)
{
        struct cb_reply_error e;

        if (parse(json, n_fds, r, &e) != 0)
                fail_msg("%s with %zu fds: refused: %s (%s) %s", json, n_fds, e.code, e.field,
                         e.message);
}

/* Refused with this code and field, answered under this id. */
static void assert_refused(const char *json, size_t n_fds, const char *code, const char *field,
                           const char *id)
{
        struct cb_request r;
        struct cb_reply_error e;

        if (parse(json, n_fds, &r, &e) != -1) {
                cb_request_free(&r);
                fail_msg("%s with %zu fds: accepted", json, n_fds);
        }
        if (strcmp(e.code, code) != 0 || strcmp(e.field, field) != 0 || !e.message[0])
                fail_msg("%s with %zu fds: %s (%s) \"%s\", want %s (%s)", json, n_fds, e.code,
                         e.field, e.message, code, field);
        if (!id_is(r.id, id))
                fail_msg("%s: the reply's id is not %s", json, id ? id : "null");
        cb_request_free(&r);
}

/* ------------------------------------------------------------------ */
/* Accepted requests                                                  */
/* ------------------------------------------------------------------ */

static void test_valid_requests_of_every_op_are_accepted(void **state)
{
        static const struct {
                const char *json;
                size_t n_fds;
                enum cb_op op;
                const char *id;
                int stdio[3];
                bool detach;
                int signal;
        } cases[] = {
            {"{\"op\": \"ping\"}", 0, CB_OP_PING, NULL, NO_STDIO, false, 0},
            {"{\"op\": \"ping\", \"id\": 1}", 0, CB_OP_PING, "1", NO_STDIO, false, 0},
            {"{\"id\": \"p\", \"op\": \"ping\"}", 0, CB_OP_PING, "\"p\"", NO_STDIO, false, 0},
            {"{\"op\": \"kill\", \"id\": \"job-42\"}", 0, CB_OP_KILL, "\"job-42\"", NO_STDIO, false,
             0},
            {"{\"op\": \"kill\", \"id\": -9223372036854775808}", 0, CB_OP_KILL,
             "-9223372036854775808", NO_STDIO, false, 0},
            {"{\"op\": \"kill\", \"id\": \"\"}", 0, CB_OP_KILL, "\"\"", NO_STDIO, false, 0},
            {"{\"op\": \"kill\", \"id\": \"" X128 "\"}", 0, CB_OP_KILL, "\"" X128 "\"", NO_STDIO,
             false, 0},
            {"{\"op\": \"kill\", \"id\": \"caf\\u00e9\"}", 0, CB_OP_KILL, "\"café\"", NO_STDIO,
             false, 0},
            {"{\"op\": \"signal\", \"id\": \"job-42\", \"signal\": 15}", 0, CB_OP_SIGNAL,
             "\"job-42\"", NO_STDIO, false, SIGTERM},
            {" {\"op\":\"signal\",\"signal\":1,\"id\":0}\n", 0, CB_OP_SIGNAL, "0", NO_STDIO, false,
             SIGHUP},
            /* the example of docs/protocol.md */
            {"{\"op\": \"spawn\", \"id\": \"job-42\", \"argv\": [\"python3\", \"step.py\"], "
             "\"policy\": {\"memory\": \"256M\", \"timeout\": 30, \"ro_bind\": "
             "[\"/srv/in:/in\"]}, \"stdio\": [0, 1, 1], \"detach\": false}",
             2,
             CB_OP_SPAWN,
             "\"job-42\"",
             {0, 1, 1},
             false,
             0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"]}", 0, CB_OP_SPAWN, "3", NO_STDIO,
             false, 0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"detach\": true}", 0,
             CB_OP_SPAWN, "3", NO_STDIO, true, 0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"policy\": {}}", 0, CB_OP_SPAWN,
             "3", NO_STDIO, false, 0},
            /* stdio: an index into the attached fds per stream, each fd used */
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"stdio\": [null, null, null]}",
             0, CB_OP_SPAWN, "3", NO_STDIO, false, 0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"stdio\": [0, 0, 0]}",
             1,
             CB_OP_SPAWN,
             "3",
             {0, 0, 0},
             false,
             0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"stdio\": [null, 0, null]}",
             1,
             CB_OP_SPAWN,
             "3",
             {-1, 0, -1},
             false,
             0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"stdio\": [null, null, 0]}",
             1,
             CB_OP_SPAWN,
             "3",
             {-1, -1, 0},
             false,
             0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"stdio\": [1, 0, 0]}",
             2,
             CB_OP_SPAWN,
             "3",
             {1, 0, 0},
             false,
             0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"stdio\": [null, 1, 0]}",
             2,
             CB_OP_SPAWN,
             "3",
             {-1, 1, 0},
             false,
             0},
            {"{\"op\": \"spawn\", \"id\": 3, \"argv\": [\"true\"], \"stdio\": [2, 0, 1]}",
             3,
             CB_OP_SPAWN,
             "3",
             {2, 0, 1},
             false,
             0},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                struct cb_request r;

                assert_accepted(cases[i].json, cases[i].n_fds, &r);
                if (r.op != cases[i].op || !id_is(r.id, cases[i].id) ||
                    memcmp(r.stdio, cases[i].stdio, sizeof(r.stdio)) != 0 ||
                    r.detach != cases[i].detach || r.signal != cases[i].signal)
                        fail_msg("%s: op %s, stdio [%d, %d, %d], detach %d, signal %d",
                                 cases[i].json, OP_NAMES[r.op], r.stdio[0], r.stdio[1], r.stdio[2],
                                 r.detach, r.signal);
                /* only spawn carries a program and a policy */
                assert_int_equal(r.argv != NULL, r.op == CB_OP_SPAWN);
                assert_int_equal(r.policy != NULL, r.op == CB_OP_SPAWN);
                cb_request_free(&r);
        }
}

static void test_argv_is_copied_in_order_and_null_terminated(void **state)
{
        static const struct {
                const char *json_argv;
                const char *want[4];
        } cases[] = {
            {"[\"python3\", \"step.py\"]", {"python3", "step.py"}},
            {"[\"/bin/sh\", \"-c\", \"echo \\u00e9 \\\"$1\\\"\"]",
             {"/bin/sh", "-c", "echo é \"$1\""}},
            {"[\"prog\", \"\", \"\"]", {"prog", "", ""}},
            {"[\" \"]", {" "}},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                char json[256];
                struct cb_request r;
                size_t n = 0;

                snprintf(json, sizeof(json), "{\"op\": \"spawn\", \"id\": 1, \"argv\": %s}",
                         cases[i].json_argv);
                assert_accepted(json, 0, &r);
                for (; cases[i].want[n]; n++)
                        assert_string_equal(r.argv[n], cases[i].want[n]);
                assert_null(r.argv[n]);
                cb_request_free(&r);
        }
}

/* A request's policy is applied over the defaults. */
static void test_policy_is_applied_over_the_defaults(void **state)
{
        cb_policy *defaults = cb_policy_new();
        char *want = cb_policy_to_json(defaults), *got;
        struct cb_request r;

        (void)state;
        assert_accepted("{\"op\": \"spawn\", \"id\": 1, \"argv\": [\"true\"]}", 0, &r);
        got = cb_policy_to_json(r.policy);
        assert_string_equal(got, want);
        free(got);
        cb_request_free(&r);

        assert_accepted("{\"op\": \"spawn\", \"id\": 1, \"argv\": [\"true\"], \"policy\": "
                        "{\"memory\": \"256M\", \"timeout\": 30, \"ro_bind\": [\"/srv/in:/in\"], "
                        "\"seccomp\": \"none\", \"unsafe\": true}}",
                        0, &r);
        assert_int_equal(r.policy->memory, 256 << 20);
        assert_true(r.policy->timeout == 30);
        assert_int_equal(r.policy->ro_bind.n, 1);
        assert_string_equal(r.policy->ro_bind.v[0].src, "/srv/in");
        assert_string_equal(r.policy->ro_bind.v[0].dst, "/in");
        assert_int_equal(r.policy->seccomp, CB_SECCOMP_NONE);
        assert_int_equal(r.policy->pids, defaults->pids);
        cb_request_free(&r);
        free(want);
        cb_policy_free(defaults);
}

/* Only len bytes are read: the server's buffer holds the next frame after this one. */
static void test_parse_reads_only_len_bytes(void **state)
{
        static const char text[] = "{\"op\": \"ping\", \"id\": 5}{\"op\": \"kill\"}";
        struct cb_request r;
        struct cb_reply_error e;

        (void)state;
        assert_int_equal(cb_request_parse(text, strlen("{\"op\": \"ping\", \"id\": 5}"), 0, &r, &e),
                         0);
        assert_int_equal(r.op, CB_OP_PING);
        assert_true(id_is(r.id, "5"));
        cb_request_free(&r);
        assert_int_equal(cb_request_parse(text, sizeof(text) - 1, 0, &r, &e), -1);
        assert_string_equal(e.code, "invalid-json");
        cb_request_free(&r);
}

/* ------------------------------------------------------------------ */
/* Refusals                                                           */
/* ------------------------------------------------------------------ */

#define SPAWN "\"op\": \"spawn\", \"id\": \"j\", \"argv\": [\"true\"]"

static void test_refusals_name_the_code_and_field_and_keep_the_id(void **state)
{
        static const struct {
                const char *json;
                size_t n_fds;
                const char *code, *field;
                const char *id; /* the reply's, as JSON; NULL: null */
        } cases[] = {
            {"", 0, "invalid-json", "", NULL},
            {"{", 0, "invalid-json", "", NULL},
            {"{\"op\": \"ping\", \"id\": 1} x", 0, "invalid-json", "", NULL},
            {"{\"op\": \"ping\", \"id\": 1,}", 0, "invalid-json", "", NULL},
            {"{'op': 'ping'}", 0, "invalid-json", "", NULL},
            {"\xff", 0, "invalid-json", "", NULL},
            {"{\"op\": \"ping\", \"id\": 1, \"id\": 2}", 0, "invalid-json", "", NULL},
            {"{\"op\": \"ping\", \"id\": \"\xc3\"}", 0, "invalid-json", "", NULL},
            {"[]", 0, "invalid-request", "", NULL},
            {"[{\"op\": \"ping\", \"id\": 1}]", 0, "invalid-request", "", NULL},
            {"{}", 0, "invalid-request", "op", NULL},
            {"{\"id\": 7}", 0, "invalid-request", "op", "7"},
            {"{\"op\": null, \"id\": 7}", 0, "invalid-request", "op", "7"},
            {"{\"op\": 5, \"id\": \"x\"}", 0, "invalid-request", "op", "\"x\""},
            {"{\"op\": [\"ping\"]}", 0, "invalid-request", "op", NULL},
            {"{\"op\": \"kill\"}", 0, "invalid-request", "id", NULL},
            {"{\"op\": \"signal\", \"signal\": 15}", 0, "invalid-request", "id", NULL},
            {"{\"op\": \"spawn\", \"argv\": [\"true\"]}", 0, "invalid-request", "id", NULL},
            {"{\"op\": \"spawn\", \"id\": 1}", 0, "invalid-request", "argv", "1"},
            {"{\"op\": \"signal\", \"id\": 1}", 0, "invalid-request", "signal", "1"},
            {"{\"op\": \"Spawn\", \"id\": \"a\"}", 0, "unknown-op", "op", "\"a\""},
            {"{\"op\": \"spawn \", \"id\": 1}", 0, "unknown-op", "op", "1"},
            {"{\"op\": \"\", \"id\": 1}", 0, "unknown-op", "op", "1"},
            {"{\"op\": \"exec\"}", 0, "unknown-op", "op", NULL},
            {"{" SPAWN ", \"signal\": 15}", 0, "unknown-field", "signal", "\"j\""},
            {"{" SPAWN ", \"ID\": 1}", 0, "unknown-field", "ID", "\"j\""},
            {"{" SPAWN ", \"\": 1}", 0, "unknown-field", "", "\"j\""},
            {"{" SPAWN ", \"env\": {}}", 0, "unknown-field", "env", "\"j\""},
            {"{\"op\": \"kill\", \"id\": 1, \"argv\": [\"true\"]}", 0, "unknown-field", "argv",
             "1"},
            {"{\"op\": \"kill\", \"id\": 1, \"signal\": 9}", 0, "unknown-field", "signal", "1"},
            {"{\"op\": \"ping\", \"policy\": {}}", 0, "unknown-field", "policy", NULL},
            {"{\"op\": \"signal\", \"id\": 1, \"signal\": 2, \"detach\": true}", 0, "unknown-field",
             "detach", "1"},
            {"{\"op\": \"signal\", \"id\": 1, \"signal\": 2, \"stdio\": [0, 0, 0]}", 1,
             "unknown-field", "stdio", "1"},
            {"{\"op\": \"kill\", \"id\": true}", 0, "wrong-type", "id", NULL},
            {"{\"op\": \"kill\", \"id\": 1.5}", 0, "wrong-type", "id", NULL},
            {"{\"op\": \"kill\", \"id\": null}", 0, "wrong-type", "id", NULL},
            {"{\"op\": \"ping\", \"id\": null}", 0, "wrong-type", "id", NULL},
            {"{\"op\": \"kill\", \"id\": [1]}", 0, "wrong-type", "id", NULL},
            {"{\"op\": \"kill\", \"id\": {}}", 0, "wrong-type", "id", NULL},
            {"{\"op\": \"kill\", \"id\": \"" X128 "x\"}", 0, "wrong-type", "id", NULL},
            {"{\"op\": \"spawn\", \"id\": \"" X128 "x\", \"argv\": []}", 0, "wrong-type", "id",
             NULL},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": []}", 0, "wrong-type", "argv", "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": \"true\"}", 0, "wrong-type", "argv", "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": null}", 0, "wrong-type", "argv", "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": [1]}", 0, "wrong-type", "argv", "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": [\"\"]}", 0, "wrong-type", "argv", "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": [\"a\", 2]}", 0, "wrong-type", "argv", "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": [\"a\", null]}", 0, "wrong-type", "argv",
             "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": [[\"a\"]]}", 0, "wrong-type", "argv", "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": [\"a\\u0000b\"]}", 0, "wrong-type", "argv",
             "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": [\"a\", \"\\u0000\"]}", 0, "wrong-type",
             "argv", "1"},
            {"{\"op\": \"spawn\", \"id\": 1, \"argv\": [\"a\"], \"policy\": {\"hostname\": "
             "\"a\\u0000b\"}}",
             0, "invalid-policy", "hostname", "1"},
            {"{\"op\": \"ping\", \"id\": 1, \"x\\u0000\": 1}", 0, "invalid-json", "", NULL},
            {"{" SPAWN ", \"stdio\": \"0 1 2\"}", 0, "wrong-type", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": null}", 0, "wrong-type", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": {}}", 0, "wrong-type", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": []}", 0, "wrong-type", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [0, 0]}", 1, "wrong-type", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [0, 0, 0, 0]}", 1, "wrong-type", "stdio", "\"j\""},
            {"{" SPAWN ", \"detach\": 1}", 0, "wrong-type", "detach", "\"j\""},
            {"{" SPAWN ", \"detach\": \"true\"}", 0, "wrong-type", "detach", "\"j\""},
            {"{" SPAWN ", \"detach\": null}", 0, "wrong-type", "detach", "\"j\""},
            {"{" SPAWN ", \"policy\": {\"memory\": \"lots\"}}", 0, "invalid-policy", "memory",
             "\"j\""},
            {"{" SPAWN ", \"policy\": {\"timeout\": -1}}", 0, "invalid-policy", "timeout", "\"j\""},
            {"{" SPAWN ", \"policy\": {\"ro_bind\": 5}}", 0, "invalid-policy", "ro_bind", "\"j\""},
            {"{" SPAWN ", \"policy\": {\"net\": \"everywhere\"}}", 0, "invalid-policy", "net",
             "\"j\""},
            {"{" SPAWN ", \"policy\": {\"nosuch\": 1}}", 0, "invalid-policy", "nosuch", "\"j\""},
            {"{" SPAWN ", \"policy\": {\"kill-grace\": 1}}", 0, "invalid-policy", "kill-grace",
             "\"j\""},
            {"{" SPAWN ", \"policy\": {\"seccomp\": \"none\"}}", 0, "invalid-policy", "seccomp",
             "\"j\""},
            {"{" SPAWN ", \"policy\": []}", 0, "invalid-policy", "", "\"j\""},
            {"{" SPAWN ", \"policy\": \"default\"}", 0, "invalid-policy", "", "\"j\""},
            /* fds: every attached one used, none on other ops */
            {"{" SPAWN "}", 1, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [null, null, null]}", 1, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [0, 1, 1]}", 1, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [0, 0, 0]}", 0, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [0, 0, 1]}", 3, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [null, 1, null]}", 2, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [0, 1, 2]}", 4, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [0, 1, 2]}", CB_MAX_FDS, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [-1, null, null]}", 1, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [true, null, null]}", 1, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [\"0\", null, null]}", 1, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [0.0, null, null]}", 1, "bad-fds", "stdio", "\"j\""},
            {"{" SPAWN ", \"stdio\": [4294967296, null, null]}", 1, "bad-fds", "stdio", "\"j\""},
            {"{\"op\": \"kill\", \"id\": \"k\"}", 1, "bad-fds", "", "\"k\""},
            {"{\"op\": \"ping\"}", 1, "bad-fds", "", NULL},
            {"{\"op\": \"ping\", \"id\": 2}", 3, "bad-fds", "", "2"},
            {"{\"op\": \"signal\", \"id\": 1, \"signal\": 15}", 2, "bad-fds", "", "1"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++)
                assert_refused(cases[i].json, cases[i].n_fds, cases[i].code, cases[i].field,
                               cases[i].id);
}

/* Only the signals cellblock's init forwards to the program. */
static void test_signal_takes_only_forwardable_signals(void **state)
{
        static const struct {
                const char *value;
                int want; /* 0: refused */
        } cases[] = {
            {"1", SIGHUP},     {"2", SIGINT},      {"3", SIGQUIT}, {"10", SIGUSR1}, {"12", SIGUSR2},
            {"15", SIGTERM},   {"28", SIGWINCH},   {"0", 0},       {"9", 0},        {"19", 0},
            {"17", 0},         {"14", 0},          {"11", 0},      {"-15", 0},      {"65", 0},
            {"4294967311", 0}, {"-4294967281", 0}, {"15.0", 0},    {"\"15\"", 0},   {"\"TERM\"", 0},
            {"true", 0},       {"null", 0},        {"[15]", 0},    {"1e1", 0},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                char json[128];
                struct cb_request r;

                snprintf(json, sizeof(json), "{\"op\": \"signal\", \"id\": 1, \"signal\": %s}",
                         cases[i].value);
                if (!cases[i].want) {
                        assert_refused(json, 0, "wrong-type", "signal", "1");
                        continue;
                }
                assert_accepted(json, 0, &r);
                assert_int_equal(r.signal, cases[i].want);
                cb_request_free(&r);
        }
}

/* A spawn request whose argv holds n strings of len bytes each. */
static char *spawn_with_args(size_t n, size_t len)
{
        size_t cap = 64 + n * (len + 3);
        char *json = malloc(cap), *p = json;

        assert_non_null(json);
        p += sprintf(p, "{\"op\": \"spawn\", \"id\": 1, \"argv\": [");
        for (size_t i = 0; i < n; i++) {
                *p++ = '"';
                memset(p, 'a', len);
                p += len;
                p += sprintf(p, "\"%s", i + 1 < n ? "," : "");
        }
        sprintf(p, "]}");
        return json;
}

/* At most 4096 strings, 256 KiB with their NUL bytes. */
static void test_argv_size_limits(void **state)
{
        static const struct {
                size_t n, len;
                const char *code; /* NULL: accepted */
        } cases[] = {
            {4096, 1, NULL},          {4097, 1, "wrong-type"},   {1, 256 * 1024 - 1, NULL},
            {1, 256 * 1024, "limit"}, {2, 128 * 1024 - 1, NULL}, {2, 128 * 1024, "limit"},
            {4096, 63, NULL},         {4096, 64, "limit"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                char *json = spawn_with_args(cases[i].n, cases[i].len);
                struct cb_request r;

                if (cases[i].code) {
                        assert_refused(json, 0, cases[i].code, "argv", "1");
                } else {
                        assert_accepted(json, 0, &r);
                        assert_null(r.argv[cases[i].n]);
                        assert_int_equal(strlen(r.argv[cases[i].n - 1]), cases[i].len);
                        cb_request_free(&r);
                }
                free(json);
        }
}

/* docs/protocol.md: invalid-request is "not an object"; invalid-json "not JSON". */
static void test_json_other_than_an_object_is_an_invalid_request(void **state)
{
        static const char *const cases[] = {"5", "\"ping\"", "null", "true", "-0.5"};

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++)
                assert_refused(cases[i], 0, "invalid-request", "", NULL);
}

/* JSON strings may hold NULs; "ping\u0000x" is not "ping". */
static void test_an_op_holding_a_nul_is_unknown(void **state)
{
        static const char *const cases[] = {
            "{\"op\": \"ping\\u0000\", \"id\": 1}",
            "{\"op\": \"ping\\u0000junk\", \"id\": 1}",
            "{\"op\": \"kill\\u0000\", \"id\": 1}",
            "{\"op\": \"spawn\\u0000\", \"id\": 1, \"argv\": [\"true\"]}",
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++)
                assert_refused(cases[i], 0, "unknown-op", "op", "1");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_valid_requests_of_every_op_are_accepted),
            cmocka_unit_test(test_argv_is_copied_in_order_and_null_terminated),
            cmocka_unit_test(test_policy_is_applied_over_the_defaults),
            cmocka_unit_test(test_parse_reads_only_len_bytes),
            cmocka_unit_test(test_refusals_name_the_code_and_field_and_keep_the_id),
            cmocka_unit_test(test_signal_takes_only_forwardable_signals),
            cmocka_unit_test(test_argv_size_limits),
            cmocka_unit_test(test_json_other_than_an_object_is_an_invalid_request),
            cmocka_unit_test(test_an_op_holding_a_nul_is_unknown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
