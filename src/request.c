/*
 * A server request: one JSON object, checked field by field.  Anything not
 * described in docs/protocol.md is refused with an error naming the field.
 */
#include "internal.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ID_LEN    128
#define MAX_ARGS      4096
#define MAX_ARG_BYTES (256 * 1024)

static const char *const OPS[] = {[CB_OP_SPAWN] = "spawn",
                                  [CB_OP_KILL] = "kill",
                                  [CB_OP_SIGNAL] = "signal",
                                  [CB_OP_PING] = "ping"};

/* Which keys each op takes. */
static const char *const SPAWN_KEYS[] = {"op", "id", "argv", "policy", "stdio", "detach", NULL};
static const char *const KILL_KEYS[] = {"op", "id", NULL};
static const char *const SIGNAL_KEYS[] = {"op", "id", "signal", NULL};
static const char *const PING_KEYS[] = {"op", "id", NULL};
static const char *const *const OP_KEYS[] = {SPAWN_KEYS, KILL_KEYS, SIGNAL_KEYS, PING_KEYS};

/* Signals a client may send to its cell's program: the ones init forwards. */
static const int FORWARDABLE[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

static int refuse(struct cb_reply_error *e, const char *code, const char *field, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

static int refuse(struct cb_reply_error *e, const char *code, const char *field, const char *fmt,
                  ...)
{
        va_list ap;

        snprintf(e->code, sizeof(e->code), "%s", code);
        snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return -1;
}

static bool key_allowed(const char *const *keys, const char *key)
{
        for (; *keys; keys++) {
                if (strcmp(*keys, key) == 0)
                        return true;
        }
        return false;
}

static int parse_op(const json_t *o, struct cb_request *r, struct cb_reply_error *e)
{
        json_t *v = json_object_get(o, "op");
        const char *op = json_string_value(v);

        if (!op)
                return refuse(e, "invalid-request", "op", "op: a string is required");
        if (strlen(op) != json_string_length(v))
                return refuse(e, "unknown-op", "op", "op: holds a NUL byte");
        for (size_t i = 0; i < CB_ARRAY_LEN(OPS); i++) {
                if (strcmp(op, OPS[i]) == 0) {
                        r->op = (enum cb_op)i;
                        return 0;
                }
        }
        return refuse(e, "unknown-op", "op",
                      "op: \"%.32s\" is not one of spawn, kill, signal, ping", op);
}

static int check_keys(const json_t *o, enum cb_op op, struct cb_reply_error *e)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)o, key, v)
        {
                if (!key_allowed(OP_KEYS[op], key))
                        return refuse(e, "unknown-field", key, "%.40s: not a field of \"%s\"", key,
                                      OPS[op]);
        }
        return 0;
}

static int parse_id(const json_t *o, struct cb_request *r, struct cb_reply_error *e)
{
        json_t *id = json_object_get(o, "id");

        if (!id) {
                if (r->op == CB_OP_PING)
                        return 0;
                return refuse(e, "invalid-request", "id", "id: required for %s", OPS[r->op]);
        }
        if (!(json_is_string(id) && json_string_length(id) <= MAX_ID_LEN) && !json_is_integer(id))
                return refuse(e, "wrong-type", "id",
                              "id: a string of at most %d bytes, or an integer", MAX_ID_LEN);
        r->id = json_incref(id);
        return 0;
}

/* A refused request is still answered under its id, when it has a usable one. */
static void keep_id_for_reply(const json_t *o, struct cb_request *r)
{
        json_t *id = json_object_get(o, "id");

        if ((json_is_string(id) && json_string_length(id) <= MAX_ID_LEN) || json_is_integer(id))
                r->id = json_incref(id);
}

static int parse_argv(const json_t *o, struct cb_request *r, struct cb_reply_error *e)
{
        json_t *argv = json_object_get(o, "argv"), *arg;
        size_t n = json_array_size(argv), bytes = 0, i;

        if (!argv)
                return refuse(e, "invalid-request", "argv", "argv: required for spawn");
        if (!json_is_array(argv) || n == 0 || n > MAX_ARGS)
                return refuse(e, "wrong-type", "argv",
                              "argv: a list of 1 to %d strings, the program first", MAX_ARGS);
        r->argv = calloc(n + 1, sizeof(char *));
        if (!r->argv)
                return refuse(e, "internal", "argv", "out of memory");
        json_array_foreach(argv, i, arg)
        {
                const char *s = json_string_value(arg);

                if (!s || strlen(s) != json_string_length(arg) || (i == 0 && !*s))
                        return refuse(e, "wrong-type", "argv",
                                      "argv: strings without NUL bytes, the first not empty");
                bytes += strlen(s) + 1;
                if (bytes > MAX_ARG_BYTES)
                        return refuse(e, "limit", "argv", "argv: more than %d bytes",
                                      MAX_ARG_BYTES);
                r->argv[i] = strdup(s);
                if (!r->argv[i])
                        return refuse(e, "internal", "argv", "out of memory");
        }
        return 0;
}

static int parse_policy(const json_t *o, struct cb_request *r, struct cb_reply_error *e)
{
        json_t *policy = json_object_get(o, "policy");
        cb_error err = {0};

        r->policy = cb_policy_new();
        if (!r->policy)
                return refuse(e, "internal", "policy", "out of memory");
        if (!policy)
                return 0;
        if (cb_policy_apply_object(r->policy, policy, &err) < 0 ||
            cb_policy_validate(r->policy, &err) < 0)
                return refuse(e, "invalid-policy", err.field, "%s", err.message);
        return 0;
}

/* "stdio": three entries, each an index into the attached fds or null. */
static int parse_stdio(const json_t *o, size_t n_fds, struct cb_request *r,
                       struct cb_reply_error *e)
{
        json_t *stdio = json_object_get(o, "stdio"), *v;
        bool used[CB_MAX_FDS] = {false};
        size_t i, n_used = 0;

        r->stdio[0] = r->stdio[1] = r->stdio[2] = -1;
        if (stdio && (!json_is_array(stdio) || json_array_size(stdio) != 3))
                return refuse(e, "wrong-type", "stdio", "stdio: a list of 3 fd indexes or nulls");
        json_array_foreach(stdio, i, v)
        {
                json_int_t idx;

                if (json_is_null(v))
                        continue;
                idx = json_is_integer(v) ? json_integer_value(v) : -1;
                if (idx < 0 || (size_t)idx >= n_fds)
                        return refuse(e, "bad-fds", "stdio",
                                      "stdio[%zu]: no attached fd %lld (%zu attached)", i,
                                      (long long)idx, n_fds);
                r->stdio[i] = (int)idx;
                n_used += !used[idx];
                used[idx] = true;
        }
        if (n_used != n_fds)
                return refuse(e, "bad-fds", "stdio", "%zu fds attached, %zu used by stdio", n_fds,
                              n_used);
        return 0;
}

static int parse_signal(const json_t *o, struct cb_request *r, struct cb_reply_error *e)
{
        json_t *v = json_object_get(o, "signal");
        json_int_t sig = json_is_integer(v) ? json_integer_value(v) : 0;

        if (!v)
                return refuse(e, "invalid-request", "signal", "signal: required for signal");
        for (size_t i = 0; i < CB_ARRAY_LEN(FORWARDABLE); i++) {
                if (sig == FORWARDABLE[i]) {
                        r->signal = (int)sig;
                        return 0;
                }
        }
        return refuse(e, "wrong-type", "signal",
                      "signal: one of 1 (HUP), 2 (INT), 3 (QUIT), 10 (USR1), 12 (USR2), "
                      "15 (TERM), 28 (WINCH)");
}

static int parse_detach(const json_t *o, struct cb_request *r, struct cb_reply_error *e)
{
        json_t *d = json_object_get(o, "detach");

        if (d && !json_is_boolean(d))
                return refuse(e, "wrong-type", "detach", "detach: true or false");
        r->detach = json_is_true(d);
        return 0;
}

static int parse_op_fields(const json_t *o, size_t n_fds, struct cb_request *r,
                           struct cb_reply_error *e)
{
        switch (r->op) {
        case CB_OP_SPAWN:
                return parse_argv(o, r, e) == 0 && parse_policy(o, r, e) == 0 &&
                               parse_stdio(o, n_fds, r, e) == 0 && parse_detach(o, r, e) == 0
                           ? 0
                           : -1;
        case CB_OP_SIGNAL:
                return parse_signal(o, r, e);
        case CB_OP_KILL:
        case CB_OP_PING:
                break;
        }
        return 0;
}

int cb_request_parse(const char *text, size_t len, size_t n_fds, struct cb_request *r,
                     struct cb_reply_error *e)
{
        json_error_t jerr;
        /* NULs are let through so that the field holding one can be named */
        json_t *o =
            json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
        int rc = -1;

        memset(r, 0, sizeof(*r));
        r->stdio[0] = r->stdio[1] = r->stdio[2] = -1;
        if (!o)
                return refuse(e, "invalid-json", "", "invalid JSON at column %d: %s", jerr.column,
                              jerr.text);
        if (!json_is_object(o))
                refuse(e, "invalid-request", "", "a request is a JSON object");
        else if (parse_op(o, r, e) == 0 && check_keys(o, r->op, e) == 0 && parse_id(o, r, e) == 0)
                rc = parse_op_fields(o, n_fds, r, e);
        if (rc == 0 && r->op != CB_OP_SPAWN && n_fds)
                rc = refuse(e, "bad-fds", "", "%s takes no fds", OPS[r->op]);
        if (rc < 0 && !r->id && json_is_object(o))
                keep_id_for_reply(o, r);
        json_decref(o);
        return rc;
}

void cb_request_free(struct cb_request *r)
{
        for (size_t i = 0; r->argv && r->argv[i]; i++)
                free(r->argv[i]);
        free(r->argv);
        cb_policy_free(r->policy);
        json_decref(r->id);
        memset(r, 0, sizeof(*r));
}
