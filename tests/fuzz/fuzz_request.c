/*
 * Any bytes as a server request: the first byte gives the number of fds
 * attached (0 to CB_MAX_FDS), the rest is the body.  What is accepted must
 * hold only what docs/protocol.md allows, and say what the JSON says, read
 * here independently; what is refused must say why.
 */
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const uint8_t *body, size_t len)
{
        fprintf(stderr, "%s: %.*s\n", what, (int)len, (const char *)body);
        abort();
}

static bool id_usable(const json_t *id)
{
        return (json_is_string(id) && json_string_length(id) <= 128) || json_is_integer(id);
}

static bool terminated(const char *s, size_t size)
{
        return memchr(s, '\0', size) != NULL;
}

static bool forwardable(int sig)
{
        static const int signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM, SIGWINCH};

        for (size_t i = 0; i < CB_ARRAY_LEN(signals); i++) {
                if (sig == signals[i])
                        return true;
        }
        return false;
}

/* NULL if the accepted request is sound, or what is wrong with it. */
static const char *accepted_problem(const struct cb_request *r, size_t n_fds)
{
        bool used[CB_MAX_FDS] = {false};
        size_t n_args = 0, bytes = 0;
        cb_error err;

        if (r->id ? !id_usable(r->id) : r->op != CB_OP_PING)
                return "accepted without a usable id";
        if (r->op != CB_OP_SPAWN) {
                if (n_fds)
                        return "fds accepted on an op other than spawn";
                if (r->argv || r->policy)
                        return "argv or policy on an op other than spawn";
                if (r->op == CB_OP_SIGNAL && !forwardable(r->signal))
                        return "a signal init does not forward";
                return NULL;
        }
        if (!r->argv || !r->argv[0] || !r->argv[0][0])
                return "spawn without a program";
        for (; r->argv[n_args]; n_args++)
                bytes += strlen(r->argv[n_args]) + 1;
        if (n_args > 4096 || bytes > 256 * 1024)
                return "argv over its limits";
        if (!r->policy || cb_policy_validate(r->policy, &err) != 0)
                return "spawn without a valid policy";
        for (size_t i = 0; i < 3; i++) {
                if (r->stdio[i] < -1 || r->stdio[i] >= (int)n_fds)
                        return "stdio names an fd that is not attached";
                if (r->stdio[i] >= 0)
                        used[r->stdio[i]] = true;
        }
        for (size_t i = 0; i < n_fds; i++) {
                if (!used[i])
                        return "an attached fd is not used";
        }
        return NULL;
}

static bool string_is(const json_t *s, const char *want)
{
        return json_is_string(s) && json_string_length(s) == strlen(want) &&
               memcmp(json_string_value(s), want, strlen(want)) == 0;
}

static const char *differs_from_json(const json_t *o, const struct cb_request *r)
{
        static const char *const ops[] = {"spawn", "kill", "signal", "ping"};
        static const char *const keys[][7] = {
            {"op", "id", "argv", "policy", "stdio", "detach", NULL},
            {"op", "id", NULL},
            {"op", "id", "signal", NULL},
            {"op", "id", NULL},
        };
        json_t *id = json_object_get(o, "id"), *argv = json_object_get(o, "argv"), *v;
        json_t *stdio = json_object_get(o, "stdio");
        const char *key;
        size_t i;

        if (!string_is(json_object_get(o, "op"), ops[r->op]))
                return "the op is not the JSON's";
        if (id ? !r->id || !json_equal(id, r->id) : r->id != NULL)
                return "the id is not the JSON's";
        json_object_foreach((json_t *)o, key, v)
        {
                for (i = 0; keys[r->op][i] && strcmp(key, keys[r->op][i]) != 0; i++)
                        ;
                if (!keys[r->op][i])
                        return "a field the op does not take was accepted";
        }
        if (r->op == CB_OP_SIGNAL && json_integer_value(json_object_get(o, "signal")) != r->signal)
                return "the signal is not the JSON's";
        if (r->op != CB_OP_SPAWN)
                return NULL;
        if (json_array_size(argv) == 0 || r->argv[json_array_size(argv)])
                return "argv does not have the JSON's length";
        json_array_foreach(argv, i, v)
        {
                if (!string_is(v, r->argv[i]))
                        return "an argv string is not the JSON's";
        }
        for (i = 0; i < 3; i++) {
                v = json_array_get(stdio, i);
                if ((json_is_integer(v) ? json_integer_value(v) : -1) != r->stdio[i])
                        return "stdio is not the JSON's";
        }
        if (json_is_true(json_object_get(o, "detach")) != r->detach)
                return "detach is not the JSON's";
        return NULL;
}

static const char *refused_problem(const struct cb_request *r, const struct cb_reply_error *e)
{
        static const char *const codes[] = {
            "invalid-json",   "invalid-request", "unknown-op", "unknown-field", "wrong-type",
            "invalid-policy", "bad-fds",         "limit",      "internal",
        };

        if (!terminated(e->code, sizeof(e->code)) || !terminated(e->field, sizeof(e->field)) ||
            !terminated(e->message, sizeof(e->message)))
                return "an unterminated error string";
        if (!e->message[0])
                return "refused without a message";
        if (r->id && !id_usable(r->id))
                return "a refusal answered under an unusable id";
        for (size_t i = 0; i < CB_ARRAY_LEN(codes); i++) {
                if (strcmp(e->code, codes[i]) == 0)
                        return NULL;
        }
        return "an undocumented error code";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct cb_request r;
        struct cb_reply_error e;
        size_t n_fds;
        const char *problem;
        int rc;

        if (size == 0)
                return 0;
        n_fds = data[0] % (CB_MAX_FDS + 1);
        memset(&e, 'x', sizeof(e));
        rc = cb_request_parse((const char *)data + 1, size - 1, n_fds, &r, &e);
        if (rc == 0) {
                json_t *o = json_loadb((const char *)data + 1, size - 1, JSON_ALLOW_NUL, NULL);

                problem = accepted_problem(&r, n_fds);
                if (!problem)
                        problem = json_is_object(o) ? differs_from_json(o, &r)
                                                    : "accepted what is not a JSON object";
                json_decref(o);
        } else if (rc == -1) {
                problem = refused_problem(&r, &e);
        } else {
                problem = "cb_request_parse returned neither 0 nor -1";
        }
        if (problem)
                fail(problem, data + 1, size - 1);
        cb_request_free(&r);
        return 0;
}
