/* The policy (policy.c): defaults, its text and JSON forms, validation, profiles. */
#include "internal.h"
#include "helpers.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_LIST_LEN  256
#define PROFILE_LIMIT (1 << 20)

/* Every policy key, with a phrase of what its error message says is allowed. */
static const struct key_info {
        const char *key;
        const char *allowed;
} KEYS[] = {
    {"ro_bind", "SRC:DST with both absolute (DST not / or under /proc)"},
    {"bind", "SRC:DST with both absolute (DST not / or under /proc)"},
    {"tmpfs", "DST:SIZE, SIZE from 4K to 1T"},
    {"chdir", "an absolute path"},
    {"env", "NAME=VALUE with NAME made of letters, digits and _"},
    {"net", "one of none, loopback, host"},
    {"memory", "at least 1M, or 0 for no limit"},
    {"pids", "from 1 to 4194304, or 0 for no limit"},
    {"cpus", "from 0.01 to 1024, or 0 for no limit"},
    {"timeout", "from 0.001 to 2678400, or 0 for no limit"},
    {"cpu_time", "from 0.01 to 2678400, or 0 for no limit"},
    {"kill_grace", "from 0 to 3600"},
    {"output_limit", "at most 1T"},
    {"output_overflow", "one of kill, truncate"},
    {"file_size", "or 0 for no limit"},
    {"uid", "a user id from 0 to 4294967294"},
    {"gid", "a group id from 0 to 4294967294"},
    {"hostname", "1 to 63 letters, digits, '-' and '.'"},
    {"seccomp", "one of default, none"},
    {"unsafe", "true or false"},
};

#define TEN     "abcdefghij"
#define HOST_63 TEN TEN TEN TEN TEN TEN "abc"

/* A key, its text, and the value cb_policy_to_json() then shows for the key. */
struct text_case {
        const char *key, *text, *want;
};

static const struct text_case GOOD_TEXT[] = {
    {"ro_bind", "/data", "[\"/data:/data\"]"},
    {"ro_bind", "/data:/in", "[\"/data:/in\"]"},
    {"ro_bind", "/:/host", "[\"/:/host\"]"},
    {"ro_bind", "/proc:/hostproc", "[\"/proc:/hostproc\"]"},
    {"ro_bind", "/srv/in:/procfs", "[\"/srv/in:/procfs\"]"},
    {"ro_bind", "/a/.../b.c", "[\"/a/.../b.c:/a/.../b.c\"]"},
    {"bind", "/out", "[\"/out:/out\"]"},
    {"bind", "/srv/job/out:/out", "[\"/srv/job/out:/out\"]"},
    {"tmpfs", "/scratch", "[\"/scratch:67108864\"]"},
    {"tmpfs", "/scratch:4K", "[\"/scratch:4096\"]"},
    {"tmpfs", "/scratch:4096", "[\"/scratch:4096\"]"},
    {"tmpfs", "/scratch:1.5M", "[\"/scratch:1572864\"]"},
    {"tmpfs", "/scratch:10MiB", "[\"/scratch:10485760\"]"},
    {"tmpfs", "/scratch:1T", "[\"/scratch:1099511627776\"]"},
    {"chdir", "/", "\"/\""},
    {"chdir", "/work/.hidden", "\"/work/.hidden\""},
    {"env", "LANG=C.UTF-8", "{\"LANG\": \"C.UTF-8\"}"},
    {"env", "_X=", "{\"_X\": \"\"}"},
    {"env", "a1=b=c", "{\"a1\": \"b=c\"}"},
    {"env", "PATH=/usr/bin:/bin", "{\"PATH\": \"/usr/bin:/bin\"}"},
    {"net", "none", "\"none\""},
    {"net", "loopback", "\"loopback\""},
    {"net", "host", "\"host\""},
    {"memory", "0", "0"},
    {"memory", "1M", "1048576"},
    {"memory", "64M", "67108864"},
    {"memory", "2g", "2147483648"},
    {"memory", "4T", "4398046511104"},
    {"pids", "0", "0"},
    {"pids", "1", "1"},
    {"pids", "4194304", "4194304"},
    {"cpus", "0", "0.0"},
    {"cpus", "0.01", "0.01"},
    {"cpus", "0.5", "0.5"},
    {"cpus", "1024", "1024.0"},
    {"timeout", "0", "0.0"},
    {"timeout", "0.001", "0.001"},
    {"timeout", "2678400", "2678400.0"},
    {"cpu_time", "0", "0.0"},
    {"cpu_time", "0.01", "0.01"},
    {"cpu_time", "2678400", "2678400.0"},
    {"kill_grace", "0", "0.0"},
    {"kill_grace", "0.001", "0.001"},
    {"kill_grace", "3600", "3600.0"},
    {"output_limit", "0", "0"},
    {"output_limit", "1M", "1048576"},
    {"output_limit", "1T", "1099511627776"},
    {"output_overflow", "kill", "\"kill\""},
    {"output_overflow", "truncate", "\"truncate\""},
    {"file_size", "0", "0"},
    {"file_size", "1", "1"},
    {"file_size", "100M", "104857600"},
    {"file_size", "1T", "1099511627776"},
    {"uid", "0", "0"},
    {"uid", "4294967294", "4294967294"},
    {"gid", "0", "0"},
    {"gid", "65534", "65534"},
    {"hostname", "a", "\"a\""},
    {"hostname", "cell-1.example", "\"cell-1.example\""},
    {"hostname", "X-", "\"X-\""},
    {"hostname", HOST_63, "\"" HOST_63 "\""},
    {"seccomp", "default", "\"default\""},
    {"seccomp", "none", "\"none\""},
    {"unsafe", "true", "true"},
    {"unsafe", "false", "false"},
};

struct bad_text_case {
        const char *key, *text;
};

static const struct bad_text_case BAD_TEXT[] = {
    {"ro_bind", ""},
    {"ro_bind", "data"},
    {"ro_bind", "./data"},
    {"ro_bind", "/data:in"},
    {"ro_bind", "data:/in"},
    {"ro_bind", ":/in"},
    {"ro_bind", "/data:"},
    {"ro_bind", "/"},
    {"ro_bind", "/data:/"},
    {"ro_bind", "/proc"},
    {"ro_bind", "/data:/proc"},
    {"ro_bind", "/data:/proc/self"},
    {"ro_bind", "/a/../b"},
    {"ro_bind", "/a/.."},
    {"ro_bind", "/a/./b"},
    {"ro_bind", "/a/."},
    {"ro_bind", "//"},
    {"ro_bind", "//a"},
    {"ro_bind", "/a//b"},
    {"ro_bind", "/a/"},
    {"ro_bind", "/a:/b:/c"},
    {"ro_bind", "/a\nb"},
    {"ro_bind", "/a\tb"},
    {"bind", "out"},
    {"bind", "/out:/"},
    {"bind", "/out:/proc/1"},
    {"bind", "/out/"},
    {"tmpfs", ""},
    {"tmpfs", "scratch"},
    {"tmpfs", "/"},
    {"tmpfs", "/:4K"},
    {"tmpfs", "/proc"},
    {"tmpfs", "/proc/sys:4K"},
    {"tmpfs", "/a/:4K"},
    {"tmpfs", "//:4K"},
    {"tmpfs", "/a/../b"},
    {"tmpfs", "/scratch:"},
    {"tmpfs", "/scratch:x"},
    {"tmpfs", "/scratch:-1"},
    {"tmpfs", "/scratch:4095"},
    {"tmpfs", "/scratch:0.5K"},
    {"tmpfs", "/scratch:1.5"},
    {"tmpfs", "/scratch:1025G"},
    {"tmpfs", "/scratch:4K:4K"},
    {"chdir", ""},
    {"chdir", "work"},
    {"chdir", "/a/../b"},
    {"chdir", "/a/./b"},
    {"chdir", "/.."},
    {"chdir", "//"},
    {"chdir", "/a/"},
    {"chdir", "/a:b"},
    {"chdir", "/a\nb"},
    {"env", ""},
    {"env", "A"},
    {"env", "=x"},
    {"env", "1A=x"},
    {"env", "A-B=x"},
    {"env", "A B=x"},
    {"env", "A.B=x"},
    {"env", "\xc3\x84=x"},
    {"net", ""},
    {"net", "Host"},
    {"net", "bridge"},
    {"net", "none "},
    {"memory", ""},
    {"memory", "-1"},
    {"memory", "1.5"},
    {"memory", "64X"},
    {"memory", "inf"},
    {"memory", "1048575"},
    {"memory", "1023K"},
    {"memory", "0.5M"},
    {"memory", "4097G"},
    {"pids", ""},
    {"pids", "-1"},
    {"pids", "1.5"},
    {"pids", "1e3"},
    {"pids", "0x10"},
    {"pids", " 1"},
    {"pids", "4194305"},
    {"cpus", ""},
    {"cpus", "-1"},
    {"cpus", "1e2"},
    {"cpus", "half"},
    {"cpus", "0.001"},
    {"cpus", "0.009"},
    {"cpus", "1025"},
    {"timeout", ""},
    {"timeout", "-1"},
    {"timeout", "inf"},
    {"timeout", "1e3"},
    {"timeout", "5m"},
    {"timeout", "0.0009"},
    {"timeout", "2678401"},
    {"cpu_time", "-1"},
    {"cpu_time", "0.009"},
    {"cpu_time", "2678401"},
    {"kill_grace", ""},
    {"kill_grace", "-1"},
    {"kill_grace", "0.0005"},
    {"kill_grace", "3601"},
    {"output_limit", ""},
    {"output_limit", "-1"},
    {"output_limit", "1.5"},
    {"output_limit", "1025G"},
    {"output_limit", "2T"},
    {"output_overflow", ""},
    {"output_overflow", "drop"},
    {"output_overflow", "Kill"},
    {"file_size", ""},
    {"file_size", "x"},
    {"file_size", "1025G"},
    {"uid", ""},
    {"uid", "-1"},
    {"uid", "root"},
    {"uid", "1000 "},
    {"uid", "4294967295"},
    {"uid", "18446744073709551616"},
    {"gid", "-1"},
    {"gid", "4294967295"},
    {"hostname", ""},
    {"hostname", "-cell"},
    {"hostname", "a_b"},
    {"hostname", "a b"},
    {"hostname", "cell!"},
    {"hostname", "c\xc3\xa9ll"},
    {"hostname", HOST_63 "d"},
    {"seccomp", ""},
    {"seccomp", "strict"},
    {"seccomp", "None"},
    {"unsafe", ""},
    {"unsafe", "yes"},
    {"unsafe", "1"},
    {"unsafe", "TRUE"},
};

/* A JSON policy, a key, and the value cb_policy_to_json() then shows for it. */
struct json_case {
        const char *json, *key, *want;
};

static const struct json_case GOOD_JSON[] = {
    {"{\"ro_bind\": [\"/a\", \"/b:/c\"]}", "ro_bind", "[\"/a:/a\", \"/b:/c\"]"},
    {"{\"ro_bind\": []}", "ro_bind", "[]"},
    {"{\"bind\": [\"/srv/out:/out\"]}", "bind", "[\"/srv/out:/out\"]"},
    {"{\"tmpfs\": [\"/t\", \"/u:1M\"]}", "tmpfs", "[\"/t:67108864\", \"/u:1048576\"]"},
    {"{\"chdir\": \"/work\"}", "chdir", "\"/work\""},
    {"{\"env\": {\"A\": \"1\", \"B\": \"x=y\", \"C\": \"\"}}", "env",
     "{\"A\": \"1\", \"B\": \"x=y\", \"C\": \"\"}"},
    {"{\"env\": {}}", "env", "{}"},
    {"{\"net\": \"loopback\"}", "net", "\"loopback\""},
    {"{\"memory\": \"64M\"}", "memory", "67108864"},
    {"{\"memory\": 67108864}", "memory", "67108864"},
    {"{\"memory\": 0}", "memory", "0"},
    {"{\"pids\": 64}", "pids", "64"},
    {"{\"pids\": 0}", "pids", "0"},
    {"{\"cpus\": 0.5}", "cpus", "0.5"},
    {"{\"cpus\": 2}", "cpus", "2.0"},
    {"{\"cpus\": 1e-2}", "cpus", "0.01"},
    {"{\"timeout\": 30}", "timeout", "30.0"},
    {"{\"timeout\": 0.001}", "timeout", "0.001"},
    {"{\"cpu_time\": 1.5}", "cpu_time", "1.5"},
    {"{\"kill_grace\": 0}", "kill_grace", "0.0"},
    {"{\"kill_grace\": 3600}", "kill_grace", "3600.0"},
    {"{\"output_limit\": \"1M\"}", "output_limit", "1048576"},
    {"{\"output_limit\": 0}", "output_limit", "0"},
    {"{\"output_overflow\": \"truncate\"}", "output_overflow", "\"truncate\""},
    {"{\"file_size\": \"100M\"}", "file_size", "104857600"},
    {"{\"file_size\": 1}", "file_size", "1"},
    {"{\"uid\": 0}", "uid", "0"},
    {"{\"gid\": 4294967294}", "gid", "4294967294"},
    {"{\"hostname\": \"box\"}", "hostname", "\"box\""},
    {"{\"seccomp\": \"none\"}", "seccomp", "\"none\""},
    {"{\"unsafe\": true}", "unsafe", "true"},
    {"{\"unsafe\": false}", "unsafe", "false"},
    {"{}", "memory", "536870912"},
};

/* A JSON policy that is refused, the field named, and a phrase of the message (or NULL). */
struct bad_json_case {
        const char *json, *field, *phrase;
};

static const struct bad_json_case BAD_JSON[] = {
    {"{\"ro_bind\": \"/a\"}", "ro_bind", "a list of strings"},
    {"{\"ro_bind\": [1]}", "ro_bind", "a list of strings"},
    {"{\"ro_bind\": [null]}", "ro_bind", "a list of strings"},
    {"{\"ro_bind\": [\"/a\", \"rel\"]}", "ro_bind", "SRC:DST with both absolute"},
    {"{\"bind\": [\"/a:/proc\"]}", "bind", "DST not / or under /proc"},
    {"{\"tmpfs\": {}}", "tmpfs", "a list of strings"},
    {"{\"tmpfs\": [\"/t:1K\"]}", "tmpfs", "SIZE from 4K to 1T"},
    {"{\"chdir\": 1}", "chdir", "a string"},
    {"{\"chdir\": \"rel\"}", "chdir", "an absolute path"},
    {"{\"env\": [\"A=1\"]}", "env", "an object of NAME"},
    {"{\"env\": \"A=1\"}", "env", "an object of NAME"},
    {"{\"env\": {\"A\": 1}}", "env", "an object of NAME"},
    {"{\"env\": {\"A\": null}}", "env", "an object of NAME"},
    {"{\"env\": {\"A=B\": \"x\"}}", "env", "NAME=VALUE"},
    {"{\"env\": {\"=\": \"x\"}}", "env", "NAME=VALUE"},
    {"{\"env\": {\"1A\": \"x\"}}", "env", "NAME=VALUE"},
    {"{\"env\": {\"\": \"x\"}}", "env", "NAME=VALUE"},
    {"{\"net\": 1}", "net", "a string"},
    {"{\"net\": null}", "net", "a string"},
    {"{\"net\": \"wifi\"}", "net", "one of none, loopback, host"},
    {"{\"memory\": -1}", "memory", "a size in bytes or a string such as \"64M\""},
    {"{\"memory\": 1.5}", "memory", "a size in bytes"},
    {"{\"memory\": true}", "memory", "a size in bytes"},
    {"{\"memory\": \"12Q\"}", "memory", "at least 1M"},
    {"{\"memory\": 1000}", "memory", "at least 1M"},
    {"{\"pids\": \"64\"}", "pids", "a whole number"},
    {"{\"pids\": 64.0}", "pids", "a whole number"},
    {"{\"pids\": -1}", "pids", "a whole number"},
    {"{\"pids\": 4194305}", "pids", "from 1 to 4194304"},
    {"{\"cpus\": \"0.5\"}", "cpus", "a number"},
    {"{\"cpus\": -0.5}", "cpus", NULL},
    {"{\"cpus\": 2000}", "cpus", "from 0.01 to 1024"},
    {"{\"timeout\": \"30\"}", "timeout", "a number"},
    {"{\"timeout\": -1}", "timeout", NULL},
    {"{\"timeout\": 2678401}", "timeout", "from 0.001 to 2678400"},
    {"{\"timeout\": 1e300}", "timeout", "from 0.001 to 2678400"},
    {"{\"cpu_time\": false}", "cpu_time", "a number"},
    {"{\"kill_grace\": 3601}", "kill_grace", "from 0 to 3600"},
    {"{\"output_limit\": \"2T\"}", "output_limit", "at most 1T"},
    {"{\"output_overflow\": true}", "output_overflow", "a string"},
    {"{\"output_overflow\": \"drop\"}", "output_overflow", "one of kill, truncate"},
    {"{\"file_size\": \"1.5\"}", "file_size", "or 0 for no limit"},
    {"{\"file_size\": []}", "file_size", "a size in bytes"},
    {"{\"uid\": 4294967295}", "uid", "a user id from 0 to 4294967294"},
    {"{\"uid\": \"0\"}", "uid", "a whole number"},
    {"{\"gid\": -1}", "gid", "a whole number"},
    {"{\"hostname\": \"-x\"}", "hostname", "1 to 63 letters"},
    {"{\"hostname\": {}}", "hostname", "a string"},
    {"{\"seccomp\": \"off\"}", "seccomp", "one of default, none"},
    {"{\"unsafe\": \"true\"}", "unsafe", "true or false"},
    {"{\"unsafe\": 1}", "unsafe", "true or false"},
};

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

static const char *allowed_for(const char *key)
{
        for (size_t i = 0; i < CB_ARRAY_LEN(KEYS); i++) {
                if (strcmp(KEYS[i].key, key) == 0)
                        return KEYS[i].allowed;
        }
        fail_msg("no KEYS entry for \"%s\"", key);
        return NULL;
}

static json_t *policy_json(const cb_policy *p)
{
        char *text = cb_policy_to_json(p);
        json_t *o;

        assert_non_null(text);
        o = json_loads(text, 0, NULL);
        free(text);
        assert_non_null(o);
        return o;
}

/* Whether the policy's JSON holds want (JSON text) at key; why says what it holds. */
static bool policy_value_is(const cb_policy *p, const char *key, const char *want, char *why,
                            size_t why_len)
{
        json_t *o = policy_json(p);
        json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
        json_t *got = json_object_get(o, key);
        char *dump = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
        bool same = w && got && json_equal(got, w);

        snprintf(why, why_len, "%s is %s, want %s", key, dump ? dump : "missing", want);
        free(dump);
        json_decref(w);
        json_decref(o);
        return same;
}

static void assert_policy_value(const cb_policy *p, const char *key, const char *want)
{
        char why[512];

        if (!policy_value_is(p, key, want, why, sizeof(why)))
                fail_msg("%s", why);
}

static int apply(cb_policy *p, const char *json, cb_error *err)
{
        return cb_policy_apply_json(p, json, strlen(json), err);
}

static void assert_error(const cb_error *err, const char *field, const char *phrase)
{
        if (strcmp(err->field, field) != 0)
                fail_msg("error names field \"%s\", want \"%s\" (%s)", err->field, field,
                         err->message);
        if (phrase && !strstr(err->message, phrase))
                fail_msg("error \"%s\" does not say \"%s\"", err->message, phrase);
}

/* Writes data to a new temporary file; returns its malloc'd path. */
static char *temp_file(const char *data, size_t len)
{
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        char *path;
        int fd;

        assert_true(asprintf(&path, "%s/cellblock-test-XXXXXX", dir) > 0);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t)len);
        close(fd);
        return path;
}

static int new_policy(void **state)
{
        *state = cb_policy_new();
        return *state ? 0 : -1;
}

static int free_policy(void **state)
{
        cb_policy_free(*state);
        return 0;
}

/* ------------------------------------------------------------------ */
/* Defaults and coverage of the tables                                */
/* ------------------------------------------------------------------ */

static void test_new_policy_holds_the_documented_defaults(void **state)
{
        static const char want[] =
            "{\"ro_bind\": [], \"bind\": [], \"tmpfs\": [], \"chdir\": \"/\", \"env\": {},"
            " \"net\": \"none\", \"memory\": 536870912, \"pids\": 128, \"cpus\": 0.0,"
            " \"timeout\": 300.0, \"cpu_time\": 0.0, \"kill_grace\": 0.0,"
            " \"output_limit\": 16777216, \"output_overflow\": \"kill\", \"file_size\": 0,"
            " \"uid\": 1000, \"gid\": 1000, \"hostname\": \"cell\", \"seccomp\": \"default\","
            " \"unsafe\": false}";
        json_t *got = policy_json(*state);
        json_t *w = json_loads(want, 0, NULL);
        bool same = json_equal(got, w);

        json_decref(got);
        json_decref(w);
        assert_true(same);
}

static void test_new_policy_passes_validation(void **state)
{
        cb_error err = {{0}};

        assert_int_equal(cb_policy_validate(*state, &err), 0);
}

/* Whether a one-key JSON policy sets key. */
static bool json_sets(const char *json, const char *key)
{
        size_t n = strlen(key);

        return strncmp(json, "{\"", 2) == 0 && strncmp(json + 2, key, n) == 0 && json[2 + n] == '"';
}

/* Each key the policy shows must have rows in every table of this file. */
static void test_every_policy_key_is_covered_by_the_tables(void **state)
{
        json_t *o = policy_json(*state);
        const char *key;
        json_t *v;

        assert_int_equal(json_object_size(o), CB_ARRAY_LEN(KEYS));
        json_object_foreach(o, key, v)
        {
                unsigned found = 0;

                for (size_t i = 0; i < CB_ARRAY_LEN(GOOD_TEXT); i++)
                        found |= strcmp(GOOD_TEXT[i].key, key) == 0 ? 1 : 0;
                for (size_t i = 0; i < CB_ARRAY_LEN(BAD_TEXT); i++)
                        found |= strcmp(BAD_TEXT[i].key, key) == 0 ? 2 : 0;
                for (size_t i = 0; i < CB_ARRAY_LEN(GOOD_JSON); i++)
                        found |= json_sets(GOOD_JSON[i].json, key) ? 4 : 0;
                for (size_t i = 0; i < CB_ARRAY_LEN(BAD_JSON); i++)
                        found |= json_sets(BAD_JSON[i].json, key) ? 8 : 0;
                if (found != 15 || !allowed_for(key)) {
                        json_decref(o);
                        fail_msg("key \"%s\" is missing from a table (found mask %u)", key, found);
                }
        }
        json_decref(o);
}

/* ------------------------------------------------------------------ */
/* Text form                                                          */
/* ------------------------------------------------------------------ */

static void test_set_accepts_valid_text_for_every_key(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(GOOD_TEXT); i++) {
                const struct text_case *c = &GOOD_TEXT[i];
                cb_policy *p = cb_policy_new();
                cb_error err = {{0}};
                char why[512] = "";
                int rc = cb_policy_set(p, c->key, c->text, &err);
                bool ok = rc == 0 && policy_value_is(p, c->key, c->want, why, sizeof(why));

                cb_policy_free(p);
                if (!ok)
                        fail_msg("set(%s, \"%s\"): rc %d %s %s", c->key, c->text, rc, err.message,
                                 why);
        }
}

static void test_set_refuses_invalid_text_naming_the_field_and_what_is_allowed(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(BAD_TEXT); i++) {
                const struct bad_text_case *c = &BAD_TEXT[i];
                cb_policy *p = cb_policy_new();
                char *before = cb_policy_to_json(p), *after;
                cb_error err = {{0}};
                int rc = cb_policy_set(p, c->key, c->text, &err);
                char prefix[64];
                bool unchanged;

                after = cb_policy_to_json(p);
                unchanged = strcmp(before, after) == 0;
                free(before);
                free(after);
                cb_policy_free(p);
                snprintf(prefix, sizeof(prefix), "%s: ", c->key);
                if (rc != -1 || !unchanged)
                        fail_msg("set(%s, \"%s\"): rc %d, policy %s", c->key, c->text, rc,
                                 unchanged ? "unchanged" : "changed");
                assert_error(&err, c->key, allowed_for(c->key));
                assert_true(strncmp(err.message, prefix, strlen(prefix)) == 0);
        }
}

/* The command-line spelling and its JSON value, for every key holding a '_'. */
static const struct {
        const char *dashed, *text, *json_value;
} DASHED[] = {
    {"ro-bind", "/a", "[\"/a\"]"},
    {"cpu-time", "1", "1"},
    {"kill-grace", "1", "1"},
    {"output-limit", "1M", "\"1M\""},
    {"output-overflow", "truncate", "\"truncate\""},
    {"file-size", "1M", "\"1M\""},
};

static void test_dashed_keys_are_accepted_by_set_but_not_in_json(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(DASHED); i++) {
                cb_policy *p = cb_policy_new();
                cb_error set_err = {{0}}, json_err = {{0}};
                char json[128];
                int set_rc, json_rc;

                snprintf(json, sizeof(json), "{\"%s\": %s}", DASHED[i].dashed,
                         DASHED[i].json_value);
                set_rc = cb_policy_set(p, DASHED[i].dashed, DASHED[i].text, &set_err);
                json_rc = apply(p, json, &json_err);
                cb_policy_free(p);
                if (set_rc != 0)
                        fail_msg("set(%s): %s", DASHED[i].dashed, set_err.message);
                if (json_rc != -1)
                        fail_msg("%s was accepted", json);
                assert_error(&json_err, DASHED[i].dashed, "unknown policy key");
        }
}

static const char *const UNKNOWN_KEYS[] = {
    "memroy",   "",
    "MEMORY",   "memory ",
    " memory",  "_memory",
    "ro__bind", "ro-bind-",
    "profile",  "a_key_much_longer_than_any_field_name_can_be_at_all_0123456789",
};

static void assert_unknown_key(const cb_error *err, const char *key)
{
        if (!strstr(err->message, "unknown policy key"))
                fail_msg("key \"%s\": %s", key, err->message);
        /* the field holds the key, cut to fit */
        assert_true(strncmp(err->field, key, sizeof(err->field) - 1) == 0);
}

static void test_unknown_keys_are_refused_in_both_forms(void **state)
{
        for (size_t i = 0; i < CB_ARRAY_LEN(UNKNOWN_KEYS); i++) {
                cb_error err = {{0}};
                char json[128];

                if (cb_policy_set(*state, UNKNOWN_KEYS[i], "1", &err) != -1)
                        fail_msg("set(\"%s\") was accepted", UNKNOWN_KEYS[i]);
                assert_unknown_key(&err, UNKNOWN_KEYS[i]);
                snprintf(json, sizeof(json), "{\"%s\": 1}", UNKNOWN_KEYS[i]);
                if (apply(*state, json, &err) != -1)
                        fail_msg("%s was accepted", json);
                assert_unknown_key(&err, UNKNOWN_KEYS[i]);
        }
}

/* ------------------------------------------------------------------ */
/* JSON form                                                          */
/* ------------------------------------------------------------------ */

static void test_apply_json_accepts_valid_values_for_every_key(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(GOOD_JSON); i++) {
                const struct json_case *c = &GOOD_JSON[i];
                cb_policy *p = cb_policy_new();
                cb_error err = {{0}};
                char why[512] = "";
                int rc = apply(p, c->json, &err);
                bool ok = rc == 0 && policy_value_is(p, c->key, c->want, why, sizeof(why));

                cb_policy_free(p);
                if (!ok)
                        fail_msg("%s: rc %d %s %s", c->json, rc, err.message, why);
        }
}

static void test_apply_json_refuses_invalid_values_naming_the_field(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(BAD_JSON); i++) {
                const struct bad_json_case *c = &BAD_JSON[i];
                cb_policy *p = cb_policy_new();
                cb_error err = {{0}};
                int rc = apply(p, c->json, &err);

                cb_policy_free(p);
                if (rc != -1)
                        fail_msg("%s was accepted", c->json);
                assert_error(&err, c->field, c->phrase);
        }
}

static void test_apply_json_refuses_what_is_not_one_json_object(void **state)
{
        static const struct {
                const char *json, *phrase;
        } cases[] = {
            {"", "invalid JSON"},
            {"{", "invalid JSON"},
            {"{} {}", "invalid JSON"},
            {"{\"memory\": 64M}", "invalid JSON"},
            {"{\"memory\": 99999999999999999999}", "invalid JSON"},
            {"{\"mem\\u0000ory\": 1}", "invalid JSON"},
            {"[]", "must be a JSON object"},
            {"[{\"memory\": \"64M\"}]", "must be a JSON object"},
            {"42", "invalid JSON"},
            {"\"memory\"", "invalid JSON"},
            {"null", "invalid JSON"},
            {"true", "invalid JSON"},
            {"{\"chdir\": \"/a\\u0000b\"}", "is not allowed"},
            {"{\"ro_bind\": [\"/a\\u0000b\"]}", "is not allowed"},
            {"{\"env\": {\"A\": \"x\\u0000y\"}}", "is not allowed"},
        };

        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                cb_error err = {{0}};

                if (apply(*state, cases[i].json, &err) != -1)
                        fail_msg("\"%s\" was accepted", cases[i].json);
                assert_error(&err, "", cases[i].phrase);
        }
}

/* A parser allowing NUL (JSON_ALLOW_NUL) may hand such strings to cb_policy_apply_object. */
static void test_apply_object_refuses_strings_holding_nul(void **state)
{
        static const struct bad_json_case cases[] = {
            {"{\"chdir\": \"/a\\u0000b\"}", "chdir", "a string"},
            {"{\"hostname\": \"a\\u0000b\"}", "hostname", "a string"},
            {"{\"memory\": \"64M\\u0000junk\"}", "memory", "a string"},
            {"{\"ro_bind\": [\"/a\\u0000b\"]}", "ro_bind", "a list of strings"},
            {"{\"env\": {\"A\": \"x\\u0000y\"}}", "env", "an object of NAME"},
        };

        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                json_t *o = json_loads(cases[i].json, JSON_ALLOW_NUL, NULL);
                cb_error err = {{0}};
                int rc;

                assert_non_null(o);
                rc = cb_policy_apply_object(*state, o, &err);
                json_decref(o);
                if (rc != -1)
                        fail_msg("%s was accepted", cases[i].json);
                assert_error(&err, cases[i].field, cases[i].phrase);
        }
}

static void test_apply_json_refuses_duplicate_keys(void **state)
{
        static const char *const cases[] = {
            "{\"memory\": \"1G\", \"memory\": \"2G\"}",
            "{\"env\": {\"A\": \"1\", \"A\": \"2\"}}",
        };

        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                cb_error err = {{0}};

                if (apply(*state, cases[i], &err) != -1)
                        fail_msg("%s was accepted", cases[i]);
                assert_error(&err, "", "duplicate");
        }
}

static void test_apply_json_reads_only_len_bytes(void **state)
{
        static const char text[] = "{\"memory\": \"64M\"} trailing garbage";
        cb_error err = {{0}};

        assert_int_equal(cb_policy_apply_json(*state, text, strlen("{\"memory\": \"64M\"}"), &err),
                         0);
        assert_policy_value(*state, "memory", "67108864");
}

/* Text and JSON forms of a number: both must be accepted or refused alike. */
struct number_case {
        const char *key, *json_number, *text;
};

static void check_number_like_text(const struct number_case *c)
{
        cb_policy *by_text = cb_policy_new(), *by_json = cb_policy_new();
        cb_error err = {{0}};
        char json[128];
        char *a, *b;
        int rc_text, rc_json;
        bool same;

        snprintf(json, sizeof(json), "{\"%s\": %s}", c->key, c->json_number);
        rc_text = cb_policy_set(by_text, c->key, c->text, &err);
        rc_json = apply(by_json, json, &err);
        a = cb_policy_to_json(by_text);
        b = cb_policy_to_json(by_json);
        same = strcmp(a, b) == 0;
        free(a);
        free(b);
        cb_policy_free(by_text);
        cb_policy_free(by_json);
        if (rc_text != rc_json || !same)
                fail_msg("%s: text \"%s\" gives %d, JSON %s gives %d (%s)", c->key, c->text,
                         rc_text, c->json_number, rc_json, same ? "same policy" : "differ");
}

static void test_json_numbers_are_checked_like_their_text(void **state)
{
        static const struct number_case cases[] = {
            {"timeout", "30", "30"},
            {"timeout", "0.001", "0.001"},
            {"timeout", "0.0009", "0.0009"},
            {"timeout", "2678401", "2678401"},
            {"cpus", "0.5", "0.5"},
            {"cpus", "1e2", "100"},
            {"cpus", "1E-2", "0.01"},
            {"cpus", "0.009", "0.009"},
            {"cpu_time", "2.25", "2.25"},
            {"kill_grace", "3600.5", "3600.5"},
            {"memory", "1048576", "1048576"},
            {"memory", "1048575", "1048575"},
            {"pids", "4194305", "4194305"},
            {"uid", "4294967294", "4294967294"},
            {"uid", "4294967295", "4294967295"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++)
                check_number_like_text(&cases[i]);
}

static void test_json_numbers_below_the_minimum_are_refused_like_their_text(void **state)
{
        static const struct number_case cases[] = {
            {"timeout", "1e-10", "0.0000000001"},
            {"cpus", "1e-12", "0.000000000001"},
            {"cpu_time", "4e-10", "0.0000000004"},
            {"timeout", "0.0009999999999", "0.0009999999999"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++)
                check_number_like_text(&cases[i]);
}

/* ------------------------------------------------------------------ */
/* Lists                                                              */
/* ------------------------------------------------------------------ */

/* Two entries set one after the other, what that gives, and a JSON list. */
static const struct {
        const char *key, *first, *second, *want_both, *json, *want_json;
} LISTS[] = {
    {"ro_bind", "/a", "/b:/c", "[\"/a:/a\", \"/b:/c\"]", "{\"ro_bind\": [\"/d\"]}", "[\"/d:/d\"]"},
    {"bind", "/a:/x", "/a:/y", "[\"/a:/x\", \"/a:/y\"]", "{\"bind\": []}", "[]"},
    {"tmpfs", "/t", "/u:1M", "[\"/t:67108864\", \"/u:1048576\"]", "{\"tmpfs\": [\"/v:8K\"]}",
     "[\"/v:8192\"]"},
    {"env", "A=1", "B=2", "{\"A\": \"1\", \"B\": \"2\"}", "{\"env\": {\"C\": \"3\"}}",
     "{\"C\": \"3\"}"},
};

static void test_list_keys_append_through_set_and_are_replaced_by_json(void **state)
{
        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(LISTS); i++) {
                cb_policy *p = cb_policy_new();
                cb_error err = {{0}};
                char why[512] = "";
                bool appended =
                    cb_policy_set(p, LISTS[i].key, LISTS[i].first, &err) == 0 &&
                    cb_policy_set(p, LISTS[i].key, LISTS[i].second, &err) == 0 &&
                    policy_value_is(p, LISTS[i].key, LISTS[i].want_both, why, sizeof(why));
                bool replaced =
                    appended && apply(p, LISTS[i].json, &err) == 0 &&
                    policy_value_is(p, LISTS[i].key, LISTS[i].want_json, why, sizeof(why));

                cb_policy_free(p);
                if (!replaced)
                        fail_msg("%s, after %s: %s %s", LISTS[i].key,
                                 appended ? LISTS[i].json : "two sets", err.message, why);
        }
}

static void test_set_env_replaces_only_the_same_name(void **state)
{
        static const char *const sets[] = {"AB=1", "A=2", "B=", "A=3=4"};
        cb_error err = {{0}};

        for (size_t i = 0; i < CB_ARRAY_LEN(sets); i++)
                assert_int_equal(cb_policy_set(*state, "env", sets[i], &err), 0);
        assert_policy_value(*state, "env", "{\"AB\": \"1\", \"A\": \"3=4\", \"B\": \"\"}");
}

/* How to write the i-th distinct entry of a list key. */
/* How to write the i-th distinct entry of a list key, and one more entry. */
static const struct {
        const char *key, *prefix, *suffix, *extra;
} FILLERS[] = {
    {"ro_bind", "/d", "", "/x"},
    {"bind", "/d", ":/e", "/x"},
    {"tmpfs", "/t", ":4K", "/x"},
    {"env", "V", "=1", "X=1"},
};

static void fill_list(cb_policy *p, size_t f, size_t count)
{
        for (size_t i = 0; i < count; i++) {
                cb_error err = {{0}};
                char text[64];

                snprintf(text, sizeof(text), "%s%zu%s", FILLERS[f].prefix, i, FILLERS[f].suffix);
                if (cb_policy_set(p, FILLERS[f].key, text, &err) != 0)
                        fail_msg("%s entry %zu: %s", FILLERS[f].key, i, err.message);
        }
}

static void test_lists_hold_at_most_256_entries(void **state)
{
        (void)state;
        for (size_t f = 0; f < CB_ARRAY_LEN(FILLERS); f++) {
                cb_policy *p = cb_policy_new();
                cb_error err = {{0}};
                int rc;

                fill_list(p, f, MAX_LIST_LEN);
                rc = cb_policy_set(p, FILLERS[f].key, FILLERS[f].extra, &err);
                cb_policy_free(p);
                if (rc != -1)
                        fail_msg("%s took a %dth entry", FILLERS[f].key, MAX_LIST_LEN + 1);
                assert_error(&err, FILLERS[f].key, "at most 256");
        }
}

static void test_env_name_can_be_replaced_in_a_full_list(void **state)
{
        cb_error err = {{0}};

        fill_list(*state, 3, MAX_LIST_LEN);
        if (cb_policy_set(*state, "env", "V0=2", &err) != 0)
                fail_msg("replacing V0: %s", err.message);
}

/* ------------------------------------------------------------------ */
/* Validation                                                         */
/* ------------------------------------------------------------------ */

static void test_validate_refuses_seccomp_none_without_unsafe(void **state)
{
        cb_error err = {{0}};

        assert_int_equal(cb_policy_set(*state, "seccomp", "none", &err), 0);
        assert_int_equal(cb_policy_validate(*state, &err), -1);
        assert_error(&err, "seccomp", "needs unsafe");
}

static void test_validate_accepts_seccomp_none_with_unsafe(void **state)
{
        cb_error err = {{0}};

        assert_int_equal(apply(*state, "{\"seccomp\": \"none\", \"unsafe\": true}", &err), 0);
        assert_int_equal(cb_policy_validate(*state, &err), 0);
}

/* ------------------------------------------------------------------ */
/* Profiles                                                           */
/* ------------------------------------------------------------------ */

static void test_load_file_applies_a_profile(void **state)
{
        static const char profile[] =
            "{\"ro_bind\": [\"/srv/job/in:/in\"], \"bind\": [\"/srv/job/out:/out\"],\n"
            " \"memory\": \"256M\", \"timeout\": 30, \"env\": {\"LANG\": \"C.UTF-8\"}}\n";
        char *path = temp_file(profile, strlen(profile));
        cb_error err = {{0}};
        int rc = cb_policy_load_file(*state, path, &err);

        unlink(path);
        free(path);
        if (rc != 0)
                fail_msg("%s", err.message);
        assert_policy_value(*state, "ro_bind", "[\"/srv/job/in:/in\"]");
        assert_policy_value(*state, "bind", "[\"/srv/job/out:/out\"]");
        assert_policy_value(*state, "memory", "268435456");
        assert_policy_value(*state, "timeout", "30.0");
        assert_policy_value(*state, "env", "{\"LANG\": \"C.UTF-8\"}");
}

static void test_load_file_refuses_unreadable_paths(void **state)
{
        static const struct {
                const char *path, *phrase;
        } cases[] = {
            {"/nonexistent/cellblock/profile.json", "No such file or directory"},
            {"/", "Is a directory"},
            {"", "No such file or directory"},
        };

        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                cb_error err = {{0}};

                if (cb_policy_load_file(*state, cases[i].path, &err) != -1)
                        fail_msg("\"%s\" was loaded", cases[i].path);
                assert_error(&err, "profile", cases[i].phrase);
        }
}

static void test_load_file_takes_at_most_1_mib(void **state)
{
        static const char object[] = "{\"pids\": 7}";
        static const struct {
                size_t size;
                int rc;
        } cases[] = {{PROFILE_LIMIT, 0}, {PROFILE_LIMIT + 1, -1}, {4 * PROFILE_LIMIT, -1}};

        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                char *data = malloc(cases[i].size), *path;
                cb_error err = {{0}};
                int rc;

                assert_non_null(data);
                memset(data, ' ', cases[i].size);
                memcpy(data, object, strlen(object));
                path = temp_file(data, cases[i].size);
                free(data);
                rc = cb_policy_load_file(*state, path, &err);
                unlink(path);
                free(path);
                if (rc != cases[i].rc)
                        fail_msg("%zu bytes: rc %d (%s)", cases[i].size, rc, err.message);
                if (rc < 0)
                        assert_error(&err, "profile", "larger than 1 MiB");
        }
        assert_policy_value(*state, "pids", "7");
}

static void test_load_file_reports_errors_in_its_json(void **state)
{
        static const struct bad_json_case cases[] = {
            {"{\"memory\": ", "", "invalid JSON at line 1"},
            {"{\"memory\": \"lots\"}", "memory", "at least 1M"},
            {"", "", "invalid JSON"},
        };

        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                char *path = temp_file(cases[i].json, strlen(cases[i].json));
                cb_error err = {{0}};
                int rc = cb_policy_load_file(*state, path, &err);

                unlink(path);
                free(path);
                assert_int_equal(rc, -1);
                assert_error(&err, cases[i].field, cases[i].phrase);
        }
}

/* ------------------------------------------------------------------ */
/* Round trip                                                         */
/* ------------------------------------------------------------------ */

static void test_to_json_round_trips_through_apply_json(void **state)
{
        static const struct bad_text_case sets[] = {
            {"ro_bind", "/usr"},       {"ro_bind", "/srv/data:/in"},
            {"bind", "/srv/out:/out"}, {"tmpfs", "/scratch:8M"},
            {"tmpfs", "/cache"},       {"chdir", "/out"},
            {"env", "LANG=C.UTF-8"},   {"env", "PATH=/usr/bin:/bin"},
            {"env", "EMPTY="},         {"net", "loopback"},
            {"memory", "256M"},        {"pids", "64"},
            {"cpus", "1.5"},           {"timeout", "30"},
            {"cpu_time", "10.25"},     {"kill_grace", "0.5"},
            {"output_limit", "1M"},    {"output_overflow", "truncate"},
            {"file_size", "100M"},     {"uid", "0"},
            {"gid", "4294967294"},     {"hostname", "box.example"},
            {"seccomp", "none"},       {"unsafe", "true"},
        };
        cb_policy *copy = cb_policy_new();
        cb_error err = {{0}};
        char *first, *second;

        for (size_t i = 0; i < CB_ARRAY_LEN(sets); i++)
                assert_int_equal(cb_policy_set(*state, sets[i].key, sets[i].text, &err), 0);
        first = cb_policy_to_json(*state);
        assert_non_null(first);
        assert_int_equal(apply(copy, first, &err), 0);
        assert_int_equal(cb_policy_validate(copy, &err), 0);
        second = cb_policy_to_json(copy);
        cb_policy_free(copy);
        assert_string_equal(first, second);
        free(first);
        free(second);
}

/* Host paths and values are bytes; an accepted one must survive serialisation. */
static void test_to_json_keeps_every_key_with_non_utf8_values(void **state)
{
        static const struct bad_text_case cases[] = {
            {"ro_bind", "/data/\xff"}, {"bind", "/out/\xe9t\xe9"}, {"tmpfs", "/t\xff"},
            {"env", "A=\xff"},         {"chdir", "/\xff"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                cb_policy *p = cb_policy_new();
                cb_error err = {{0}};
                int rc = cb_policy_set(p, cases[i].key, cases[i].text, &err);
                char *text = rc == 0 ? cb_policy_to_json(p) : NULL;
                json_t *o = text ? json_loads(text, 0, NULL) : NULL;
                size_t keys = json_object_size(o);

                json_decref(o);
                free(text);
                cb_policy_free(p);
                if (rc == 0 && keys != CB_ARRAY_LEN(KEYS))
                        fail_msg("set(%s) accepted it, then cb_policy_to_json showed %zu keys",
                                 cases[i].key, keys);
        }
}

#define WITH_POLICY(f) cmocka_unit_test_setup_teardown(f, new_policy, free_policy)

int main(void)
{
        const struct CMUnitTest tests[] = {
            WITH_POLICY(test_new_policy_holds_the_documented_defaults),
            WITH_POLICY(test_new_policy_passes_validation),
            WITH_POLICY(test_every_policy_key_is_covered_by_the_tables),
            cmocka_unit_test(test_set_accepts_valid_text_for_every_key),
            cmocka_unit_test(test_set_refuses_invalid_text_naming_the_field_and_what_is_allowed),
            cmocka_unit_test(test_dashed_keys_are_accepted_by_set_but_not_in_json),
            WITH_POLICY(test_unknown_keys_are_refused_in_both_forms),
            cmocka_unit_test(test_apply_json_accepts_valid_values_for_every_key),
            cmocka_unit_test(test_apply_json_refuses_invalid_values_naming_the_field),
            WITH_POLICY(test_apply_json_refuses_what_is_not_one_json_object),
            WITH_POLICY(test_apply_object_refuses_strings_holding_nul),
            WITH_POLICY(test_apply_json_refuses_duplicate_keys),
            WITH_POLICY(test_apply_json_reads_only_len_bytes),
            cmocka_unit_test(test_json_numbers_are_checked_like_their_text),
            cmocka_unit_test(test_json_numbers_below_the_minimum_are_refused_like_their_text),
            cmocka_unit_test(test_list_keys_append_through_set_and_are_replaced_by_json),
            WITH_POLICY(test_set_env_replaces_only_the_same_name),
            cmocka_unit_test(test_lists_hold_at_most_256_entries),
            WITH_POLICY(test_env_name_can_be_replaced_in_a_full_list),
            WITH_POLICY(test_validate_refuses_seccomp_none_without_unsafe),
            WITH_POLICY(test_validate_accepts_seccomp_none_with_unsafe),
            WITH_POLICY(test_load_file_applies_a_profile),
            WITH_POLICY(test_load_file_refuses_unreadable_paths),
            WITH_POLICY(test_load_file_takes_at_most_1_mib),
            WITH_POLICY(test_load_file_reports_errors_in_its_json),
            WITH_POLICY(test_to_json_round_trips_through_apply_json),
            cmocka_unit_test(test_to_json_keeps_every_key_with_non_utf8_values),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
