/*
 * The C client of the forkserver.  It is blocking and simple: one request
 * at a time, replies read in order, exit events of other cells kept until
 * asked for.  It always speaks the SHA-256 handshake and checks the server
 * as the server checks it: nothing is sent to a server that cannot prove it
 * holds the key.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_REPLY (1 << 20)

struct event {
        struct event *next;
        json_t *id;
        json_t *result;
};

struct cb_client {
        int fd;
        struct cb_key key;
        struct event *events;
};

static int client_error(cb_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int client_error(cb_error *err, const char *fmt, ...)
{
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        cb_error_set(err, "", "%s", msg);
        return -1;
}

static void close_all(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

static int handshake(cb_client *c, cb_error *err)
{
        struct cb_auth auth;
        uint8_t out[CB_AUTH_MAX_FRAME];
        enum cb_auth_result res = CB_AUTH_CONTINUE;

        cb_auth_init(&auth, &c->key, true, true);
        while (res == CB_AUTH_CONTINUE) {
                uint8_t *in;
                size_t len, out_len, n_fds;
                int fds[CB_MAX_FDS];

                if (cb_wire_recv_frame(c->fd, CB_AUTH_MAX_FRAME, &in, &len, fds, &n_fds) < 0) {
                        close_all(fds, n_fds);
                        return client_error(err, "handshake: %s", strerror(errno));
                }
                close_all(fds, n_fds);
                res = cb_auth_feed(&auth, in, len, out, &out_len);
                free(in);
                if (out_len && cb_wire_send_frame(c->fd, out, out_len, NULL, 0) < 0)
                        return client_error(err, "handshake: %s", strerror(errno));
        }
        if (res == CB_AUTH_FAILED)
                return client_error(err, "authentication failed: %s", auth.why);
        return 0;
}

CB_EXPORT cb_client *cb_client_connect(const char *path, const char *key_file, cb_error *err)
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        cb_client *c = calloc(1, sizeof(*c));

        if (!c || sodium_init() < 0) {
                free(c);
                client_error(err, "out of memory");
                return NULL;
        }
        c->fd = -1;
        if (cb_key_load(key_file, &c->key, err) < 0)
                goto fail;
        if (strlen(path) >= sizeof(addr.sun_path)) {
                client_error(err, "socket path too long");
                goto fail;
        }
        memcpy(addr.sun_path, path, strlen(path) + 1);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
                client_error(err, "cannot connect to %s: %s", path, strerror(errno));
                goto fail;
        }
        if (handshake(c, err) < 0)
                goto fail;
        return c;
fail:
        cb_client_close(c);
        return NULL;
}

CB_EXPORT void cb_client_close(cb_client *c)
{
        if (!c)
                return;
        while (c->events) {
                struct event *e = c->events;

                c->events = e->next;
                json_decref(e->id);
                json_decref(e->result);
                free(e);
        }
        if (c->fd >= 0)
                close(c->fd);
        cb_key_free(&c->key);
        free(c);
}

static int send_request(cb_client *c, json_t *req, const int *fds, size_t n_fds, cb_error *err)
{
        char *text = json_dumps(req, JSON_COMPACT);
        int rc;

        json_decref(req);
        if (!text)
                return client_error(err, "out of memory");
        rc = cb_wire_send_frame(c->fd, text, strlen(text), fds, n_fds);
        free(text);
        return rc < 0 ? client_error(err, "send: %s", strerror(errno)) : 0;
}

static int keep_event(cb_client *c, json_t *msg)
{
        struct event *e = calloc(1, sizeof(*e)), **tail = &c->events;

        if (!e)
                return -1;
        e->id = json_incref(json_object_get(msg, "id"));
        e->result = json_incref(json_object_get(msg, "result"));
        while (*tail)
                tail = &(*tail)->next;
        *tail = e;
        return 0;
}

/* One message from the server, with the fd that came with it (or -1). */
static json_t *read_message(cb_client *c, int *fd, cb_error *err)
{
        uint8_t *body;
        size_t len, n_fds;
        int fds[CB_MAX_FDS];
        json_t *msg;

        *fd = -1;
        if (cb_wire_recv_frame(c->fd, MAX_REPLY, &body, &len, fds, &n_fds) < 0) {
                close_all(fds, n_fds);
                client_error(err, "receive: %s", strerror(errno));
                return NULL;
        }
        msg = json_loadb((const char *)body, len, 0, NULL);
        free(body);
        if (!json_is_object(msg)) {
                close_all(fds, n_fds);
                json_decref(msg);
                client_error(err, "the server sent something that is not a JSON object");
                return NULL;
        }
        if (n_fds) {
                *fd = fds[0];
                close_all(fds + 1, n_fds - 1);
        }
        return msg;
}

static bool is_event(const json_t *msg)
{
        return json_object_get(msg, "event") != NULL;
}

/* The next reply; exit events met on the way are kept for cb_client_wait. */
static json_t *next_reply(cb_client *c, int *fd, cb_error *err)
{
        json_t *msg;

        while ((msg = read_message(c, fd, err)) && is_event(msg)) {
                if (*fd >= 0)
                        close(*fd);
                keep_event(c, msg);
                json_decref(msg);
        }
        return msg;
}

/* ok:true, or the server's error as ours. */
static int check_reply(json_t *msg, cb_error *err)
{
        json_t *e = json_object_get(msg, "error");

        if (json_is_true(json_object_get(msg, "ok")))
                return 0;
        cb_error_set(err, json_string_value(json_object_get(e, "field")), "%s: %s",
                     json_string_value(json_object_get(e, "code")) ?: "error",
                     json_string_value(json_object_get(e, "message")) ?: "refused");
        return -1;
}

static int simple_request(cb_client *c, json_t *req, cb_error *err)
{
        json_t *msg;
        int fd, rc;

        if (!req || send_request(c, req, NULL, 0, err) < 0)
                return -1;
        msg = next_reply(c, &fd, err);
        if (!msg)
                return -1;
        if (fd >= 0)
                close(fd);
        rc = check_reply(msg, err);
        json_decref(msg);
        return rc;
}

static json_t *policy_object(const cb_policy *policy)
{
        char *text = policy ? cb_policy_to_json(policy) : NULL;
        json_t *o = text ? json_loads(text, 0, NULL) : json_object();

        free(text);
        return o;
}

CB_EXPORT int cb_client_spawn(cb_client *c, const char *id, char *const argv[],
                              const cb_policy *policy, const int stdio[3], bool detach, int *pidfd,
                              pid_t *pid, cb_error *err)
{
        json_t *args = json_array(), *slots = json_array(), *req, *msg;
        int fds[3];
        size_t n_fds = 0;
        int rc;

        *pidfd = -1;
        for (size_t i = 0; argv[i]; i++)
                json_array_append_new(args, json_string(argv[i]));
        for (int i = 0; i < 3; i++) {
                if (stdio && stdio[i] >= 0) {
                        json_array_append_new(slots, json_integer((json_int_t)n_fds));
                        fds[n_fds++] = stdio[i];
                } else {
                        json_array_append_new(slots, json_null());
                }
        }
        req = json_pack("{s:s, s:s, s:o, s:o, s:o, s:b}", "op", "spawn", "id", id, "argv", args,
                        "policy", policy_object(policy), "stdio", slots, "detach", detach);
        if (!req || send_request(c, req, fds, n_fds, err) < 0)
                return -1;
        msg = next_reply(c, pidfd, err);
        if (!msg)
                return -1;
        rc = check_reply(msg, err);
        *pid = (pid_t)json_integer_value(json_object_get(msg, "pid"));
        json_decref(msg);
        if (rc < 0 && *pidfd >= 0) {
                close(*pidfd);
                *pidfd = -1;
        }
        return rc;
}

CB_EXPORT int cb_client_signal(cb_client *c, const char *id, int sig, cb_error *err)
{
        return simple_request(
            c, json_pack("{s:s, s:s, s:i}", "op", "signal", "id", id, "signal", sig), err);
}

CB_EXPORT int cb_client_kill(cb_client *c, const char *id, cb_error *err)
{
        return simple_request(c, json_pack("{s:s, s:s}", "op", "kill", "id", id), err);
}

static struct event *take_event(cb_client *c, const char *id)
{
        for (struct event **p = &c->events; *p; p = &(*p)->next) {
                if (json_is_string((*p)->id) && strcmp(json_string_value((*p)->id), id) == 0) {
                        struct event *e = *p;

                        *p = e->next;
                        return e;
                }
        }
        return NULL;
}

CB_EXPORT int cb_client_wait(cb_client *c, const char *id, cb_result *result, cb_error *err)
{
        struct event *e;
        char *text;
        int rc;

        while (!(e = take_event(c, id))) {
                int fd;
                json_t *msg = read_message(c, &fd, err);

                if (!msg)
                        return -1;
                if (fd >= 0)
                        close(fd);
                rc = is_event(msg) ? keep_event(c, msg) : -1;
                json_decref(msg);
                if (rc < 0)
                        return client_error(err, "the server sent an unexpected reply");
        }
        text = json_dumps(e->result, JSON_COMPACT);
        rc = text ? cb_result_from_json(text, strlen(text), result, err) : -1;
        free(text);
        json_decref(e->id);
        json_decref(e->result);
        free(e);
        return rc;
}

CB_EXPORT int cb_client_fd(const cb_client *c)
{
        return c->fd;
}

CB_EXPORT bool cb_client_has_result(const cb_client *c, const char *id)
{
        for (const struct event *e = c->events; e; e = e->next) {
                if (json_is_string(e->id) && strcmp(json_string_value(e->id), id) == 0)
                        return true;
        }
        return false;
}
