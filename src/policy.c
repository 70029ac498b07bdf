/*
 * The policy: defaults, validation, and its two text forms (command-line
 * words and JSON).  Both forms go through the same per-field functions, so
 * a value is accepted or refused the same way wherever it comes from.
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PATH_LEN      4095
#define MAX_LIST_LEN      256
#define MAX_PROFILE_BYTES (1 << 20)

void cb_error_set(cb_error *err, const char *field, const char *fmt, ...)
{
        va_list ap;

        if (!err)
                return;
        snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Lists                                                              */
/* ------------------------------------------------------------------ */

static void path_list_clear(struct cb_path_list *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].src);
                free(l->v[i].dst);
        }
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

static void str_list_clear(struct cb_str_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

static int path_list_push(struct cb_path_list *l, char *src, char *dst, uint64_t size)
{
        struct cb_path_spec *v = realloc(l->v, (l->n + 1) * sizeof(*v));

        if (!v)
                return -1;
        l->v = v;
        l->v[l->n++] = (struct cb_path_spec){.src = src, .dst = dst, .size = size};
        return 0;
}

/* The entry for NAME in a NAME=VALUE list, or NULL. */
static char **env_slot(const struct cb_str_list *l, const char *pair, size_t name_len)
{
        for (size_t i = 0; i < l->n; i++) {
                if (strncmp(l->v[i], pair, name_len + 1) == 0)
                        return &l->v[i];
        }
        return NULL;
}

static bool env_has(const struct cb_str_list *l, const char *pair, size_t name_len)
{
        return env_slot(l, pair, name_len) != NULL;
}

static int str_list_put(struct cb_str_list *l, char *s, size_t name_len)
{
        char **v, **slot = env_slot(l, s, name_len);

        /* a second NAME= replaces the first */
        if (slot) {
                free(*slot);
                *slot = s;
                return 0;
        }
        v = realloc(l->v, (l->n + 1) * sizeof(*v));
        if (!v)
                return -1;
        l->v = v;
        l->v[l->n++] = s;
        return 0;
}

/* ------------------------------------------------------------------ */
/* Policy lifetime                                                    */
/* ------------------------------------------------------------------ */

CB_EXPORT cb_policy *cb_policy_new(void)
{
        cb_policy *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->net = CB_NET_NONE;
        p->memory = 512ULL << 20;
        p->pids = 128;
        p->timeout = 300;
        p->output_limit = 16ULL << 20;
        p->uid = 1000;
        p->gid = 1000;
        p->seccomp = CB_SECCOMP_DEFAULT;
        p->hostname = strdup("cell");
        p->chdir = strdup("/");
        if (!p->hostname || !p->chdir) {
                cb_policy_free(p);
                return NULL;
        }
        return p;
}

CB_EXPORT void cb_policy_free(cb_policy *p)
{
        if (!p)
                return;
        path_list_clear(&p->ro_bind);
        path_list_clear(&p->bind);
        path_list_clear(&p->tmpfs);
        str_list_clear(&p->env);
        free(p->chdir);
        free(p->hostname);
        free(p);
}

/* ------------------------------------------------------------------ */
/* Field table                                                        */
/* ------------------------------------------------------------------ */

struct field;
typedef int (*text_setter)(cb_policy *p, const struct field *f, const char *text, cb_error *err);

enum json_shape { J_STRING, J_SIZE, J_NUMBER, J_INTEGER, J_BOOL, J_LIST, J_ENV };

struct field {
        const char *key;
        text_setter set;
        enum json_shape shape;
        size_t offset;
        double min, max;            /* numeric range; 0 is always allowed when zero_ok */
        bool zero_ok;               /* 0 means "no limit" */
        const char *help;           /* what is allowed */
        const char *const *choices; /* an enum's value names */
};

#define AT(f, p, type) ((type *)((char *)(p) + (f)->offset))

static int out_of_memory(cb_error *err, const struct field *f)
{
        cb_error_set(err, f->key, "out of memory");
        return -1;
}

static int bad_value(cb_error *err, const struct field *f, const char *text)
{
        cb_error_set(err, f->key, "%s: invalid value \"%.64s\": expected %s", f->key, text,
                     f->help);
        return -1;
}

static bool in_range(const struct field *f, double v)
{
        return (f->zero_ok && v == 0) || (v >= f->min && v <= f->max);
}

/* Well-formed UTF-8: policies are JSON, so every value must be expressible in it. */
static bool is_utf8(const char *text)
{
        json_t *j = json_string(text);

        json_decref(j);
        return j != NULL;
}

/* An absolute, normalised path: no ".", "..", empty components, ':' or controls. */
static bool path_is_clean(const char *path)
{
        size_t len = strlen(path);

        if (len == 0 || len > MAX_PATH_LEN || path[0] != '/' || strchr(path, ':') || !is_utf8(path))
                return false;
        for (const char *c = path; *c; c++) {
                if ((unsigned char)*c < 0x20)
                        return false;
        }
        if (len == 1)
                return true;
        for (const char *c = path; *c;) {
                const char *name = c + 1;
                size_t n = strcspn(name, "/");

                if (n == 0 || (n == 1 && name[0] == '.') ||
                    (n == 2 && name[0] == '.' && name[1] == '.'))
                        return false;
                c = name + n;
        }
        return true;
}

/* Mounting over / or into /proc would undo the view the cell relies on. */
static bool dst_is_allowed(const char *dst)
{
        return strcmp(dst, "/") != 0 && strcmp(dst, "/proc") != 0 && strncmp(dst, "/proc/", 6) != 0;
}

static int set_size(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        uint64_t v;

        if (cb_parse_size(text, &v) < 0 || !in_range(f, (double)v))
                return bad_value(err, f, text);
        *AT(f, p, uint64_t) = v;
        return 0;
}

static int set_count(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        uint64_t v;

        if (cb_parse_uint(text, (uint64_t)f->max, &v) < 0 || !in_range(f, (double)v))
                return bad_value(err, f, text);
        *AT(f, p, uint64_t) = v;
        return 0;
}

static int set_decimal(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        double v;

        if (cb_parse_seconds(text, &v) < 0 || !in_range(f, v))
                return bad_value(err, f, text);
        *AT(f, p, double) = v;
        return 0;
}

static int set_bool(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0)
                return bad_value(err, f, text);
        *AT(f, p, bool) = strcmp(text, "true") == 0;
        return 0;
}

/* The names of an enum field's values, NULL-terminated, in the enum's order. */
static const char *const NET_NAMES[] = {"none", "loopback", "host", "none-shared", NULL};
static const char *const SECCOMP_NAMES[] = {"default", "none", NULL};
static const char *const OVERFLOW_NAMES[] = {"kill", "truncate", NULL};

static int set_enum(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        for (int i = 0; f->choices[i]; i++) {
                if (strcmp(text, f->choices[i]) == 0) {
                        *AT(f, p, int) = i;
                        return 0;
                }
        }
        return bad_value(err, f, text);
}

static int replace_string(char **slot, const char *text, cb_error *err, const struct field *f)
{
        char *copy = strdup(text);

        if (!copy)
                return out_of_memory(err, f);
        free(*slot);
        *slot = copy;
        return 0;
}

static int set_abs_path(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        if (!path_is_clean(text))
                return bad_value(err, f, text);
        return replace_string(AT(f, p, char *), text, err, f);
}

static int set_hostname(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        size_t len = strlen(text);

        if (len == 0 || len > 63 || text[0] == '-' ||
            strspn(text, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789-.") != len)
                return bad_value(err, f, text);
        return replace_string(&p->hostname, text, err, f);
}

/* "SRC" or "SRC:DST" for ro_bind and bind. */
static int add_bind(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        struct cb_path_list *list = AT(f, p, struct cb_path_list);
        const char *colon = strchr(text, ':');
        char *src, *dst;

        if (list->n >= MAX_LIST_LEN) {
                cb_error_set(err, f->key, "%s: at most %d entries", f->key, MAX_LIST_LEN);
                return -1;
        }
        src = colon ? strndup(text, (size_t)(colon - text)) : strdup(text);
        dst = strdup(colon ? colon + 1 : text);
        if (!src || !dst) {
                free(src);
                free(dst);
                return out_of_memory(err, f);
        }
        if (!path_is_clean(src) || !path_is_clean(dst) || !dst_is_allowed(dst)) {
                free(src);
                free(dst);
                return bad_value(err, f, text);
        }
        if (path_list_push(list, src, dst, 0) < 0) {
                free(src);
                free(dst);
                return out_of_memory(err, f);
        }
        return 0;
}

/* "DST" or "DST:SIZE" for tmpfs. */
static int add_tmpfs(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        const char *colon = strchr(text, ':');
        uint64_t size = CB_DEFAULT_TMP_SIZE;
        char *dst;

        if (p->tmpfs.n >= MAX_LIST_LEN) {
                cb_error_set(err, f->key, "%s: at most %d entries", f->key, MAX_LIST_LEN);
                return -1;
        }
        if (colon && (cb_parse_size(colon + 1, &size) < 0 || size < 4096 || size > (1ULL << 40)))
                return bad_value(err, f, text);
        dst = colon ? strndup(text, (size_t)(colon - text)) : strdup(text);
        if (!dst)
                return out_of_memory(err, f);
        if (!path_is_clean(dst) || !dst_is_allowed(dst)) {
                free(dst);
                return bad_value(err, f, text);
        }
        if (path_list_push(&p->tmpfs, NULL, dst, size) < 0) {
                free(dst);
                return out_of_memory(err, f);
        }
        return 0;
}

static bool env_name_ok(const char *name, size_t len)
{
        if (len == 0 || isdigit((unsigned char)name[0]))
                return false;
        for (size_t i = 0; i < len; i++) {
                if (!isalnum((unsigned char)name[i]) && name[i] != '_')
                        return false;
        }
        return true;
}

/* "NAME=VALUE". */
static int add_env(cb_policy *p, const struct field *f, const char *text, cb_error *err)
{
        const char *eq = strchr(text, '=');
        char *copy;

        if (!eq || !env_name_ok(text, (size_t)(eq - text)) || !is_utf8(text))
                return bad_value(err, f, text);
        if (p->env.n >= MAX_LIST_LEN && !env_has(&p->env, text, (size_t)(eq - text))) {
                cb_error_set(err, f->key, "%s: at most %d variables", f->key, MAX_LIST_LEN);
                return -1;
        }
        copy = strdup(text);
        if (!copy || str_list_put(&p->env, copy, (size_t)(eq - text)) < 0) {
                free(copy);
                return out_of_memory(err, f);
        }
        return 0;
}

#define OFF(member) offsetof(struct cb_policy, member)
#define GiB         (1024.0 * 1024 * 1024)

static const struct field FIELDS[] = {
    {"ro_bind", add_bind, J_LIST, OFF(ro_bind), 0, 0, false,
     "an absolute host path, or SRC:DST with both absolute (DST not / or under /proc)"},
    {"bind", add_bind, J_LIST, OFF(bind), 0, 0, false,
     "an absolute host path, or SRC:DST with both absolute (DST not / or under /proc)"},
    {"tmpfs", add_tmpfs, J_LIST, OFF(tmpfs), 0, 0, false,
     "an absolute path DST or DST:SIZE, SIZE from 4K to 1T"},
    {"chdir", set_abs_path, J_STRING, OFF(chdir), 0, 0, false, "an absolute path"},
    {"env", add_env, J_ENV, OFF(env), 0, 0, false,
     "NAME=VALUE with NAME made of letters, digits and _"},
    {"net", set_enum, J_STRING, OFF(net), 0, 0, false, "one of none, loopback, host, none-shared",
     NET_NAMES},
    {"memory", set_size, J_SIZE, OFF(memory), 1 << 20, 4096 * GiB, true,
     "a size such as 64M or 2G, at least 1M, or 0 for no limit"},
    {"pids", set_count, J_INTEGER, OFF(pids), 1, 4194304, true,
     "a whole number from 1 to 4194304, or 0 for no limit"},
    {"cpus", set_decimal, J_NUMBER, OFF(cpus), 0.01, 1024, true,
     "a number of CPUs from 0.01 to 1024, or 0 for no limit"},
    {"timeout", set_decimal, J_NUMBER, OFF(timeout), 0.001, 31 * 86400, true,
     "seconds from 0.001 to 2678400, or 0 for no limit"},
    {"cpu_time", set_decimal, J_NUMBER, OFF(cpu_time), 0.01, 31 * 86400, true,
     "seconds from 0.01 to 2678400, or 0 for no limit"},
    {"kill_grace", set_decimal, J_NUMBER, OFF(kill_grace), 0.001, 3600, true,
     "seconds from 0 to 3600"},
    {"output_limit", set_size, J_SIZE, OFF(output_limit), 0, 1024 * GiB, true,
     "a size such as 1M, at most 1T"},
    {"output_overflow", set_enum, J_STRING, OFF(output_overflow), 0, 0, false,
     "one of kill, truncate", OVERFLOW_NAMES},
    {"file_size", set_size, J_SIZE, OFF(file_size), 1, 1024 * GiB, true,
     "a size such as 100M, or 0 for no limit"},
    {"uid", set_count, J_INTEGER, OFF(uid), 0, 4294967294.0, true,
     "a user id from 0 to 4294967294"},
    {"gid", set_count, J_INTEGER, OFF(gid), 0, 4294967294.0, true,
     "a group id from 0 to 4294967294"},
    {"hostname", set_hostname, J_STRING, 0, 0, 0, false,
     "1 to 63 letters, digits, '-' and '.', not starting with '-'"},
    {"seccomp", set_enum, J_STRING, OFF(seccomp), 0, 0, false, "one of default, none",
     SECCOMP_NAMES},
    {"unsafe", set_bool, J_BOOL, OFF(unsafe), 0, 0, false, "true or false"},
};

static const struct field *find_field(const char *key)
{
        char norm[48];
        size_t i;

        for (i = 0; key[i] && i + 1 < sizeof(norm); i++)
                norm[i] = key[i] == '-' ? '_' : key[i];
        if (key[i])
                return NULL;
        norm[i] = '\0';
        for (i = 0; i < CB_ARRAY_LEN(FIELDS); i++) {
                if (strcmp(FIELDS[i].key, norm) == 0)
                        return &FIELDS[i];
        }
        return NULL;
}

static int unknown_key(const char *key, cb_error *err)
{
        cb_error_set(err, key, "unknown policy key \"%.40s\"", key);
        return -1;
}

CB_EXPORT int cb_policy_set(cb_policy *p, const char *key, const char *text, cb_error *err)
{
        const struct field *f = find_field(key);

        if (!f)
                return unknown_key(key, err);
        return f->set(p, f, text, err);
}

/* ------------------------------------------------------------------ */
/* JSON                                                               */
/* ------------------------------------------------------------------ */

static int wrong_type(cb_error *err, const struct field *f, const char *expected)
{
        cb_error_set(err, f->key, "%s: expected %s: %s", f->key, expected, f->help);
        return -1;
}

/* A JSON string without embedded NULs. */
static const char *json_text(const json_t *v)
{
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return NULL;
        return json_string_value(v);
}

static int apply_json_list(cb_policy *p, const struct field *f, const json_t *v, cb_error *err)
{
        size_t i;
        json_t *item;

        if (!json_is_array(v))
                return wrong_type(err, f, "a list of strings");
        path_list_clear(AT(f, p, struct cb_path_list));
        json_array_foreach(v, i, item)
        {
                const char *text = json_text(item);

                if (!text)
                        return wrong_type(err, f, "a list of strings");
                if (f->set(p, f, text, err) < 0)
                        return -1;
        }
        return 0;
}

static int apply_json_env(cb_policy *p, const struct field *f, const json_t *v, cb_error *err)
{
        const char *name;
        json_t *value;

        if (!json_is_object(v))
                return wrong_type(err, f, "an object of NAME: \"value\" strings");
        str_list_clear(&p->env);
        json_object_foreach((json_t *)v, name, value)
        {
                const char *text = json_text(value);
                char *pair;
                int rc;

                if (!text)
                        return wrong_type(err, f, "an object of NAME: \"value\" strings");
                if (asprintf(&pair, "%s=%s", name, text) < 0)
                        return out_of_memory(err, f);
                /* a '=' in the name would shift the split: refuse it */
                rc = strchr(name, '=') ? bad_value(err, f, name) : f->set(p, f, pair, err);
                free(pair);
                if (rc < 0)
                        return -1;
        }
        return 0;
}

/* Numbers are checked exactly like their text form, by formatting them. */
static int apply_json_number(cb_policy *p, const struct field *f, const json_t *v, cb_error *err)
{
        char text[64];

        if (f->shape == J_INTEGER || f->shape == J_SIZE) {
                if (!json_is_integer(v) || json_integer_value(v) < 0)
                        return wrong_type(err, f,
                                          f->shape == J_SIZE
                                              ? "a size in bytes or a string such as \"64M\""
                                              : "a whole number");
                snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
        } else {
                if (!json_is_number(v) || json_number_value(v) < 0)
                        return wrong_type(err, f, "a number");
                /* every digit, so that what the text form refuses stays refused */
                snprintf(text, sizeof(text), "%.17g", json_number_value(v));
        }
        return f->set(p, f, text, err);
}

static int apply_json_field(cb_policy *p, const struct field *f, const json_t *v, cb_error *err)
{
        const char *text;

        switch (f->shape) {
        case J_LIST:
                return apply_json_list(p, f, v, err);
        case J_ENV:
                return apply_json_env(p, f, v, err);
        case J_BOOL:
                if (!json_is_boolean(v))
                        return wrong_type(err, f, "true or false");
                return f->set(p, f, json_is_true(v) ? "true" : "false", err);
        case J_SIZE:
                if (json_is_string(v))
                        break;
                return apply_json_number(p, f, v, err);
        case J_NUMBER:
        case J_INTEGER:
                return apply_json_number(p, f, v, err);
        case J_STRING:
                break;
        }
        text = json_text(v);
        if (!text)
                return wrong_type(err, f, "a string");
        return f->set(p, f, text, err);
}

int cb_policy_apply_object(cb_policy *p, const json_t *obj, cb_error *err)
{
        const char *key;
        json_t *v;

        if (!json_is_object(obj)) {
                cb_error_set(err, "", "a policy must be a JSON object");
                return -1;
        }
        json_object_foreach((json_t *)obj, key, v)
        {
                const struct field *f = find_field(key);

                /* only the JSON spelling is accepted in JSON */
                if (!f || strchr(key, '-'))
                        return unknown_key(key, err);
                if (apply_json_field(p, f, v, err) < 0)
                        return -1;
        }
        return 0;
}

CB_EXPORT int cb_policy_apply_json(cb_policy *p, const char *text, size_t len, cb_error *err)
{
        json_error_t jerr;
        json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        int rc;

        if (!obj) {
                cb_error_set(err, "", "invalid JSON at line %d column %d: %s", jerr.line,
                             jerr.column, jerr.text);
                return -1;
        }
        rc = cb_policy_apply_object(p, obj, err);
        json_decref(obj);
        return rc;
}

CB_EXPORT int cb_policy_load_file(cb_policy *p, const char *path, cb_error *err)
{
        char *buf = malloc(MAX_PROFILE_BYTES + 1);
        size_t len = 0;
        ssize_t n = 1;
        int fd, rc;

        if (!buf) {
                cb_error_set(err, "profile", "out of memory");
                return -1;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                cb_error_set(err, "profile", "cannot open %s: %s", path, strerror(errno));
                free(buf);
                return -1;
        }
        while (len <= MAX_PROFILE_BYTES && n > 0) {
                n = read(fd, buf + len, MAX_PROFILE_BYTES + 1 - len);
                if (n < 0 && errno == EINTR)
                        n = 1;
                else if (n > 0)
                        len += (size_t)n;
        }
        close(fd);
        if (n < 0 || len > MAX_PROFILE_BYTES) {
                cb_error_set(err, "profile", "%s: %s", path,
                             n < 0 ? strerror(errno) : "larger than 1 MiB");
                free(buf);
                return -1;
        }
        rc = cb_policy_apply_json(p, buf, len, err);
        free(buf);
        return rc;
}

CB_EXPORT int cb_policy_validate(const cb_policy *p, cb_error *err)
{
        if (p->seccomp == CB_SECCOMP_NONE && !p->unsafe) {
                cb_error_set(err, "seccomp",
                             "seccomp: \"none\" turns off the syscall filter "
                             "and needs unsafe (--unsafe)");
                return -1;
        }
        return 0;
}

static json_t *path_list_json(const struct cb_path_list *l, bool with_size)
{
        json_t *arr = json_array();

        for (size_t i = 0; arr && i < l->n; i++) {
                char *s = NULL;

                if (with_size)
                        (void)!asprintf(&s, "%s:%llu", l->v[i].dst,
                                        (unsigned long long)l->v[i].size);
                else
                        (void)!asprintf(&s, "%s:%s", l->v[i].src, l->v[i].dst);
                if (!s || json_array_append_new(arr, json_string(s)) < 0) {
                        free(s);
                        json_decref(arr);
                        return NULL;
                }
                free(s);
        }
        return arr;
}

static json_t *env_json(const struct cb_str_list *l)
{
        json_t *obj = json_object();

        for (size_t i = 0; obj && i < l->n; i++) {
                const char *eq = strchr(l->v[i], '=');
                char *name = strndup(l->v[i], (size_t)(eq - l->v[i]));

                if (!name || json_object_set_new(obj, name, json_string(eq + 1)) < 0) {
                        free(name);
                        json_decref(obj);
                        return NULL;
                }
                free(name);
        }
        return obj;
}

CB_EXPORT char *cb_policy_to_json(const cb_policy *p)
{
        json_t *o = json_pack(
            "{s:o*, s:o*, s:o*, s:s, s:o*, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:s, s:I, "
            "s:I, s:I, s:s, s:s, s:b}",
            "ro_bind", path_list_json(&p->ro_bind, false), "bind", path_list_json(&p->bind, false),
            "tmpfs", path_list_json(&p->tmpfs, true), "chdir", p->chdir, "env", env_json(&p->env),
            "net", NET_NAMES[p->net], "memory", (json_int_t)p->memory, "pids", (json_int_t)p->pids,
            "cpus", p->cpus, "timeout", p->timeout, "cpu_time", p->cpu_time, "kill_grace",
            p->kill_grace, "output_limit", (json_int_t)p->output_limit, "output_overflow",
            OVERFLOW_NAMES[p->output_overflow], "file_size", (json_int_t)p->file_size, "uid",
            (json_int_t)p->uid, "gid", (json_int_t)p->gid, "hostname", p->hostname, "seccomp",
            SECCOMP_NAMES[p->seccomp], "unsafe", p->unsafe);
        char *s;

        if (!o)
                return NULL;
        s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return s;
}
