/*
 * The forkserver: one event loop serving authenticated clients that start
 * cells.  See docs/protocol.md for the frames and fields.
 *
 * Every connection is checked against the uid allow-list when accepted and
 * must finish the mutual handshake (auth.c) within a deadline before any
 * request is read; fds sent before that end the connection.  A connection
 * that breaks a rule gets an error reply where the protocol allows one and
 * is closed; the others never wait on it, since every socket is
 * non-blocking and every read and write is bounded.
 *
 * A cell belongs to the connection that asked for it and is killed when
 * that connection closes, unless it asked for "detach".
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_REQUEST     (1 << 20)
#define FRAMES_PER_TURN 16 /* then others get their turn */
#define MAX_REQUEST_FDS 3
#define MAX_QUEUED      (4 << 20)
#define READ_CHUNK      65536

enum conn_state { C_AUTH, C_READY, C_CLOSING, C_DEAD };

/* One queued frame, with at most one fd to pass along with it. */
struct out_chunk {
        struct out_chunk *next;
        int fd;
        size_t len, off;
        uint8_t data[];
};

struct conn;

/* A cell the server supervises: in its connection's list, or in the server's
 * orphans once a detached cell's connection has gone. */
struct cell_entry {
        cb_cell *cell;
        struct server *server;
        struct conn *owner;
        json_t *id;
        bool detach;
        struct cell_entry *next, *prev; /* in the owner's list */
};

struct conn {
        int fd;
        uid_t uid;
        enum conn_state state;
        struct cb_auth auth;
        double deadline; /* for the handshake */
        uint8_t *in;
        size_t in_len, in_cap;
        /* fds received, each with the offset in `in` of the frame it came with */
        int fds[CB_MAX_FDS];
        size_t fd_frame[CB_MAX_FDS];
        size_t n_fds;
        bool fd_overflow;
        bool pending; /* complete frames wait in `in` for the next turn */
        struct out_chunk *out_head, *out_tail;
        size_t out_bytes;
        struct cell_entry *cells;
        unsigned n_cells;
        struct conn *next, *prev;
        uint32_t events; /* what epoll watches for now */
};

struct server {
        const cb_server_opts *opts;
        struct cb_key key;
        int epfd, listen_fd, signal_fd;
        ino_t socket_ino;
        cb_loop *loop;
        struct conn *conns;
        struct conn *dead;          /* closed during this batch of events, freed after it */
        struct cell_entry *orphans; /* detached cells whose connection has gone */
        unsigned n_conns;
        size_t n_cells;
        bool stopping;
};

/* epoll data for the server's own fds; connections use their struct. */
static char LISTEN_TAG, SIGNAL_TAG, LOOP_TAG;

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_line(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "cellblock serve: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* ------------------------------------------------------------------ */
/* Output                                                             */
/* ------------------------------------------------------------------ */

static void set_events(struct server *s, struct conn *c)
{
        uint32_t want = (c->state == C_CLOSING ? 0 : EPOLLIN) | (c->out_head ? EPOLLOUT : 0);
        struct epoll_event ev = {.events = want, .data.ptr = c};

        if (want != c->events) {
                epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->events = want;
        }
}

static void chunk_free(struct out_chunk *ch)
{
        if (ch->fd >= 0)
                close(ch->fd);
        free(ch);
}

/* Write what the socket takes now; -1 when the connection is broken. */
static int flush(struct conn *c)
{
        while (c->out_head) {
                struct out_chunk *ch = c->out_head;
                bool first = ch->off == 0 && ch->fd >= 0;
                ssize_t n = cb_wire_send(c->fd, ch->data + ch->off, ch->len - ch->off,
                                         first ? &ch->fd : NULL, first ? 1 : 0);

                if (n < 0)
                        return errno == EAGAIN ? 0 : -1;
                if (first) {
                        close(ch->fd);
                        ch->fd = -1;
                }
                ch->off += (size_t)n;
                c->out_bytes -= (size_t)n;
                if (ch->off < ch->len)
                        return 0;
                c->out_head = ch->next;
                if (!c->out_head)
                        c->out_tail = NULL;
                chunk_free(ch);
        }
        return 0;
}

static void queue_frame(struct conn *c, const void *body, size_t len, int fd)
{
        struct out_chunk *ch = malloc(sizeof(*ch) + CB_FRAME_HEADER + len);

        if (!ch) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        ch->next = NULL;
        ch->fd = fd;
        ch->off = 0;
        ch->len = CB_FRAME_HEADER + len;
        cb_frame_header(len, ch->data);
        memcpy(ch->data + CB_FRAME_HEADER, body, len);
        if (c->out_tail)
                c->out_tail->next = ch;
        else
                c->out_head = ch;
        c->out_tail = ch;
        c->out_bytes += ch->len;
}

/* Queue a JSON reply; `id` is echoed (null when absent). */
static void reply(struct conn *c, json_t *id, json_t *body, int fd)
{
        char *text;

        json_object_set(body, "id", id ? id : json_null());
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (text)
                queue_frame(c, text, strlen(text), fd);
        else if (fd >= 0)
                close(fd);
        free(text);
}

static void reply_error(struct conn *c, json_t *id, const struct cb_reply_error *e)
{
        reply(c, id,
              json_pack("{s:b, s:{s:s, s:s, s:s}}", "ok", 0, "error", "code", e->code, "field",
                        e->field, "message", e->message),
              -1);
}

static void reply_refusal(struct conn *c, json_t *id, const char *code, const char *field,
                          const char *message)
{
        struct cb_reply_error e;

        snprintf(e.code, sizeof(e.code), "%s", code);
        snprintf(e.field, sizeof(e.field), "%s", field);
        snprintf(e.message, sizeof(e.message), "%s", message);
        reply_error(c, id, &e);
}

/* ------------------------------------------------------------------ */
/* Connections                                                        */
/* ------------------------------------------------------------------ */

static void drop_fds(struct conn *c)
{
        for (size_t i = 0; i < c->n_fds; i++)
                close(c->fds[i]);
        c->n_fds = 0;
}

/* Cells outlive their connection only when they asked to. */
static void list_push(struct cell_entry **head, struct cell_entry *e)
{
        e->prev = NULL;
        e->next = *head;
        if (*head)
                (*head)->prev = e;
        *head = e;
}

static void list_remove(struct cell_entry **head, struct cell_entry *e)
{
        if (e->prev)
                e->prev->next = e->next;
        else
                *head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        e->next = e->prev = NULL;
}

static void release_cells(struct server *s, struct conn *c)
{
        while (c->cells) {
                struct cell_entry *e = c->cells;

                list_remove(&c->cells, e);
                e->owner = NULL;
                if (e->detach)
                        list_push(&s->orphans, e);
                else
                        cb_cell_kill(e->cell);
        }
        c->n_cells = 0;
}

static void conn_close(struct server *s, struct conn *c)
{
        release_cells(s, c);
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        drop_fds(c);
        while (c->out_head) {
                struct out_chunk *ch = c->out_head;

                c->out_head = ch->next;
                chunk_free(ch);
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_conns--;
        free(c->in);
        c->in = NULL;
        sodium_memzero(&c->auth, sizeof(c->auth));
        c->state = C_DEAD;
        c->fd = -1;
        c->next = s->dead;
        s->dead = c;
}

static void bury_dead(struct server *s)
{
        while (s->dead) {
                struct conn *c = s->dead;

                s->dead = c->next;
                free(c);
        }
}

/* Say what is queued (a last error, #FAILURE#), then close. */
static void conn_finish(struct server *s, struct conn *c)
{
        c->state = C_CLOSING;
        c->deadline = now_s() + 2; /* to take its last words */
        if (flush(c) < 0 || !c->out_head) {
                conn_close(s, c);
                return;
        }
        shutdown(c->fd, SHUT_RD);
        set_events(s, c);
}

static bool uid_allowed(const struct server *s, uid_t uid)
{
        if (s->opts->n_allow_uids == 0)
                return uid == geteuid();
        for (size_t i = 0; i < s->opts->n_allow_uids; i++) {
                if (s->opts->allow_uids[i] == uid)
                        return true;
        }
        return false;
}

static void accept_one(struct server *s, int fd)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);
        uint8_t challenge[CB_AUTH_MAX_FRAME];
        struct conn *c;
        struct epoll_event ev;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || !uid_allowed(s, cred.uid)) {
                log_line("refused a connection from uid %d: not allowed", (int)cred.uid);
                close(fd);
                return;
        }
        if (s->n_conns >= s->opts->max_connections || s->stopping || !(c = calloc(1, sizeof(*c)))) {
                close(fd);
                return;
        }
        c->fd = fd;
        c->uid = cred.uid;
        c->deadline = now_s() + s->opts->auth_timeout;
        cb_auth_init(&c->auth, &s->key, false, s->opts->require_sha256);
        queue_frame(c, challenge, cb_auth_begin(&c->auth, challenge), -1);
        c->events = EPOLLIN;
        ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        if (flush(c) < 0)
                conn_close(s, c);
        else
                set_events(s, c);
}

static void on_listen(struct server *s)
{
        int fd;

        while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
                accept_one(s, fd);
}

/* ------------------------------------------------------------------ */
/* Requests                                                           */
/* ------------------------------------------------------------------ */

static struct cell_entry *find_cell(struct conn *c, const json_t *id)
{
        for (struct cell_entry *e = c->cells; e; e = e->next) {
                if (json_equal(e->id, (json_t *)id))
                        return e;
        }
        return NULL;
}

/* Only what a program may safely hold as stdio: no directories (a way out
 * of the mount view), no O_PATH handles, no block devices or kernel objects. */
static const char *fd_refusal(int fd)
{
        struct stat st;
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fstat(fd, &st) < 0)
                return "an attached fd cannot be inspected";
        if (flags & O_PATH)
                return "an attached fd is an O_PATH handle";
        if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISREG(st.st_mode) &&
            !S_ISCHR(st.st_mode))
                return "an attached fd is not a pipe, socket, regular file or character device";
        return NULL;
}

static void on_cell_done(cb_cell *cell, const cb_result *r, void *data);

static char *cell_label(const json_t *id)
{
        char *s =
            json_is_string(id) ? strdup(json_string_value(id)) : json_dumps(id, JSON_ENCODE_ANY);

        return s;
}

static void do_spawn(struct server *s, struct conn *c, struct cb_request *r, const int *fds,
                     size_t n_fds)
{
        cb_spawn_opts o = cb_spawn_opts_default();
        struct cell_entry *e;
        const char *why = NULL;
        cb_result failure;
        char *label;
        int pidfd;

        for (size_t i = 0; i < n_fds && !why; i++)
                why = fd_refusal(fds[i]);
        if (why)
                return reply_refusal(c, r->id, "bad-fds", "stdio", why);
        if (c->n_cells >= s->opts->max_cells)
                return reply_refusal(c, r->id, "limit", "",
                                     "this connection has as many cells "
                                     "as --max-cells allows");
        if (find_cell(c, r->id))
                return reply_refusal(c, r->id, "duplicate-id", "id",
                                     "id: a live cell of this connection has it");
        e = calloc(1, sizeof(*e));
        if (!e)
                return reply_refusal(c, r->id, "internal", "", "out of memory");
        o.stdin_fd = r->stdio[0] < 0 ? -1 : fds[r->stdio[0]];
        o.stdout_fd = r->stdio[1] < 0 ? -1 : fds[r->stdio[1]];
        o.stderr_fd = r->stdio[2] < 0 ? -1 : fds[r->stdio[2]];
        label = cell_label(r->id);
        o.name = label;
        if (cb_spawn(r->policy, r->argv, &o, &e->cell, &failure) < 0) {
                free(label);
                free(e);
                return reply_refusal(c, r->id, "spawn-failed", failure.error_step,
                                     failure.error_message);
        }
        free(label);
        if (cb_loop_add(s->loop, e->cell, on_cell_done, e) < 0) {
                /* unwatched, a cell would have no timeout and never be reaped */
                char reason[128];

                snprintf(reason, sizeof(reason), "%s", strerror(errno));
                cb_cell_free(e->cell); /* kills and reaps it */
                free(e);
                return reply_refusal(c, r->id, "spawn-failed", "supervise", reason);
        }
        e->server = s;
        e->owner = c;
        e->id = json_incref(r->id);
        e->detach = r->detach;
        list_push(&c->cells, e);
        c->n_cells++;
        s->n_cells++;
        pidfd = fcntl(cb_cell_pidfd(e->cell), F_DUPFD_CLOEXEC, 0);
        reply(c, r->id, json_pack("{s:b, s:i}", "ok", 1, "pid", (int)cb_cell_pid(e->cell)), pidfd);
}

static void do_request(struct server *s, struct conn *c, const uint8_t *body, size_t len,
                       const int *fds, size_t n_fds)
{
        struct cb_request r;
        struct cb_reply_error e;
        struct cell_entry *cell;

        if (cb_request_parse((const char *)body, len, n_fds, &r, &e) < 0) {
                reply_error(c, r.id, &e);
        } else if (r.op == CB_OP_SPAWN) {
                do_spawn(s, c, &r, fds, n_fds);
        } else if (r.op == CB_OP_PING) {
                reply(c, r.id, json_pack("{s:b, s:b}", "ok", 1, "pong", 1), -1);
        } else if (!(cell = find_cell(c, r.id))) {
                reply_refusal(c, r.id, "unknown-id", "id", "id: no live cell of this connection");
        } else {
                if (r.op == CB_OP_KILL)
                        cb_cell_kill(cell->cell);
                else
                        cb_cell_signal(cell->cell, r.signal);
                reply(c, r.id, json_pack("{s:b}", "ok", 1), -1);
        }
        cb_request_free(&r);
}

static void do_auth_frame(struct server *s, struct conn *c, const uint8_t *body, size_t len)
{
        uint8_t out[CB_AUTH_MAX_FRAME];
        size_t out_len;
        enum cb_auth_result res;

        res = cb_auth_feed(&c->auth, body, len, out, &out_len);
        if (out_len)
                queue_frame(c, out, out_len, -1);
        if (res == CB_AUTH_FAILED) {
                log_line("authentication failed for uid %d: %s", (int)c->uid, c->auth.why);
                conn_finish(s, c);
        } else if (res == CB_AUTH_DONE) {
                c->state = C_READY;
        }
}

/*
 * Which frame do fds belong to?  The kernel ends a read right after the
 * message that carried fds, and a client sends a frame in one message, so
 * they came with the last frame that starts in the buffer.
 */
static size_t frame_of_new_fds(const struct conn *c)
{
        size_t start = 0, last = 0, body;

        while (start < c->in_len) {
                last = start;
                if (cb_frame_parse(c->in + start, c->in_len - start, MAX_REQUEST, &body) < 0 ||
                    c->in_len - start < CB_FRAME_HEADER)
                        break;
                start += CB_FRAME_HEADER + body;
        }
        return last;
}

/* Take the fds that came with the frame starting at `off`. */
static size_t take_frame_fds(struct conn *c, size_t off, int *out)
{
        size_t n = 0, kept = 0;

        for (size_t i = 0; i < c->n_fds; i++) {
                if (c->fd_frame[i] == off) {
                        out[n++] = c->fds[i];
                } else {
                        c->fds[kept] = c->fds[i];
                        c->fd_frame[kept++] = c->fd_frame[i];
                }
        }
        c->n_fds = kept;
        return n;
}

static void handle_frame(struct server *s, struct conn *c, size_t off, size_t body_len)
{
        const uint8_t *body = c->in + off + CB_FRAME_HEADER;
        int fds[CB_MAX_FDS] = {0};
        size_t n_fds = take_frame_fds(c, off, fds);

        if (c->state == C_AUTH && n_fds) {
                /* nothing but the handshake before the handshake */
                for (size_t i = 0; i < n_fds; i++)
                        close(fds[i]);
                conn_close(s, c);
                return;
        }
        if (n_fds > MAX_REQUEST_FDS)
                c->fd_overflow = true;
        if (c->state == C_READY && c->fd_overflow) {
                for (size_t i = 0; i < n_fds; i++)
                        close(fds[i]);
                reply_refusal(c, NULL, "bad-fds", "", "more fds attached than a request may carry");
                conn_finish(s, c);
                return;
        }
        if (c->state == C_AUTH)
                do_auth_frame(s, c, body, body_len);
        else
                do_request(s, c, body, body_len, fds, n_fds);
        for (size_t i = 0; i < n_fds; i++)
                close(fds[i]);
}

/*
 * Handle the complete frames in the input buffer, at most FRAMES_PER_TURN
 * of them, so that one client pipelining requests cannot keep the server
 * from the others; c->pending says more are waiting.  False once c is gone.
 */
static bool process_input(struct server *s, struct conn *c)
{
        size_t off = 0, body_len;
        unsigned handled = 0;
        int parsed;

        c->pending = false;
        while (c->state == C_AUTH || c->state == C_READY) {
                if (handled++ == FRAMES_PER_TURN) {
                        c->pending = true;
                        break;
                }
                size_t max = c->state == C_AUTH ? CB_AUTH_MAX_FRAME : MAX_REQUEST;

                parsed = cb_frame_parse(c->in + off, c->in_len - off, max, &body_len);
                if (parsed == 0)
                        break;
                if (parsed < 0) {
                        if (c->state == C_READY)
                                reply_refusal(c, NULL, "bad-frame", "", "frame too large");
                        conn_finish(s, c);
                        return false;
                }
                handle_frame(s, c, off, body_len);
                off += CB_FRAME_HEADER + body_len;
        }
        if (c->state != C_AUTH && c->state != C_READY)
                return false;
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        for (size_t i = 0; i < c->n_fds; i++)
                c->fd_frame[i] -= off;
        return true;
}

/* Read what is there; fds are tagged with the frame they came with. */
static ssize_t receive(struct conn *c)
{
        int fds[CB_MAX_FDS];
        size_t n_fds = 0;
        bool overflow = false;
        ssize_t n =
            cb_wire_recv(c->fd, c->in + c->in_len, READ_CHUNK, fds, CB_MAX_FDS, &n_fds, &overflow);

        if (n > 0)
                c->in_len += (size_t)n;
        for (size_t i = 0; i < n_fds; i++) {
                if (c->n_fds == CB_MAX_FDS) {
                        close(fds[i]);
                        overflow = true;
                        continue;
                }
                c->fds[c->n_fds] = fds[i];
                c->fd_frame[c->n_fds++] = frame_of_new_fds(c);
        }
        c->fd_overflow |= overflow;
        return n;
}

static bool grow_input(struct conn *c)
{
        size_t want = c->in_len + READ_CHUNK;
        uint8_t *p;

        if (c->in_cap >= want)
                return true;
        p = realloc(c->in, want);
        if (!p)
                return false;
        c->in = p;
        c->in_cap = want;
        return true;
}

/* After a turn: send what is queued, or drop a client that does not read it. */
static void after_turn(struct server *s, struct conn *c)
{
        if (c->state == C_DEAD)
                return;
        if (flush(c) < 0 || c->out_bytes > MAX_QUEUED)
                conn_close(s, c);
        else
                set_events(s, c);
}

/* One read per event: epoll reports the socket again while data remains. */
static void on_readable(struct server *s, struct conn *c)
{
        ssize_t n;

        if (!grow_input(c) || c->in_len > MAX_REQUEST + CB_FRAME_HEADER) {
                conn_finish(s, c);
                return;
        }
        n = receive(c);
        if (n < 0 && errno == EAGAIN)
                return;
        if (n <= 0) {
                conn_close(s, c);
                return;
        }
        process_input(s, c);
        after_turn(s, c);
}

/* Frames left from earlier turns get theirs now. */
static void serve_pending(struct server *s)
{
        for (struct conn *c = s->conns; c; c = c->next) {
                if (c->pending && c->state != C_DEAD) {
                        process_input(s, c);
                        after_turn(s, c);
                }
        }
}

static bool any_pending(const struct server *s)
{
        for (const struct conn *c = s->conns; c; c = c->next) {
                if (c->pending)
                        return true;
        }
        return false;
}

static void on_conn_event(struct server *s, struct conn *c, uint32_t events)
{
        if (c->state == C_DEAD)
                return;
        if (events & EPOLLIN) {
                on_readable(s, c);
                return;
        }
        if (events & (EPOLLERR | EPOLLHUP) || flush(c) < 0 ||
            (c->state == C_CLOSING && !c->out_head)) {
                conn_close(s, c);
                return;
        }
        set_events(s, c);
}

/* ------------------------------------------------------------------ */
/* Cells ending                                                       */
/* ------------------------------------------------------------------ */

static void on_cell_done(cb_cell *cell, const cb_result *r, void *data)
{
        struct cell_entry *e = data;
        struct server *s = e->server;
        struct conn *c = e->owner;
        char *text = cb_result_to_json(r);
        json_t *result = text ? json_loads(text, 0, NULL) : NULL;

        free(text);
        if (c) {
                reply(c, e->id,
                      json_pack("{s:s, s:o}", "event", "exit", "result",
                                result ? result : json_null()),
                      -1);
                if (e->prev)
                        e->prev->next = e->next;
                else
                        c->cells = e->next;
                if (e->next)
                        e->next->prev = e->prev;
                c->n_cells--;
                if (flush(c) < 0)
                        conn_close(s, c);
                else
                        set_events(s, c);
        } else {
                list_remove(&s->orphans, e);
                json_decref(result);
        }
        s->n_cells--;
        json_decref(e->id);
        cb_cell_free(cell);
        free(e);
}

/* ------------------------------------------------------------------ */
/* Start, loop, stop                                                  */
/* ------------------------------------------------------------------ */

/* Replace a stale socket file, never a live server's or a non-socket. */
static int clear_stale_socket(const char *path, cb_error *err)
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        struct stat st;
        int fd, rc;

        if (lstat(path, &st) < 0)
                return errno == ENOENT
                           ? 0
                           : (cb_error_set(err, "socket", "%s: %s", path, strerror(errno)), -1);
        if (!S_ISSOCK(st.st_mode)) {
                cb_error_set(err, "socket", "%s exists and is not a socket", path);
                return -1;
        }
        snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&addr, sizeof(addr));
        if (fd >= 0) {
                int saved = errno;

                close(fd);
                errno = saved;
        }
        if (rc == 0 || errno != ECONNREFUSED) {
                cb_error_set(err, "socket", "%s: %s", path,
                             rc == 0 ? "a server is already listening there"
                                     : "cannot tell whether a server is listening there");
                return -1;
        }
        return unlink(path);
}

static int listen_on(struct server *s, cb_error *err)
{
        const char *path = s->opts->socket_path;
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        struct stat st;
        mode_t old;
        int rc;

        if (!path || !*path || strlen(path) >= sizeof(addr.sun_path)) {
                cb_error_set(err, "socket", "the socket path must be 1 to %zu bytes",
                             sizeof(addr.sun_path) - 1);
                return -1;
        }
        if (clear_stale_socket(path, err) < 0)
                return -1;
        memcpy(addr.sun_path, path, strlen(path) + 1);
        s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->listen_fd < 0)
                goto fail;
        old = umask(0177); /* the socket is born 0600 */
        rc = bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
        umask(old);
        if (rc < 0 || chmod(path, 0600) < 0 || listen(s->listen_fd, 512) < 0 || stat(path, &st) < 0)
                goto fail;
        s->socket_ino = st.st_ino;
        return 0;
fail:
        cb_error_set(err, "socket", "%s: %s", path, strerror(errno));
        return -1;
}

static void remove_socket(struct server *s)
{
        struct stat st;

        if (stat(s->opts->socket_path, &st) == 0 && st.st_ino == s->socket_ino)
                unlink(s->opts->socket_path);
}

static int watch_fd(struct server *s, int fd, void *tag)
{
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

        return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int stop_signals_fd(void)
{
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return -1;
        signal(SIGPIPE, SIG_IGN);
        return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Many cells mean many fds: use what the hard limit allows. */
static void raise_fd_limit(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static int server_start(struct server *s, cb_error *err)
{
        /* before the key exists anywhere in this process */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
                cb_error_set(err, "", "PR_SET_DUMPABLE: %s", strerror(errno));
                return -1;
        }
        if (sodium_init() < 0) {
                cb_error_set(err, "", "libsodium failed to initialise");
                return -1;
        }
        if (cb_key_load(s->opts->key_file, &s->key, err) < 0)
                return -1;
        raise_fd_limit();
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        s->signal_fd = stop_signals_fd();
        s->loop = cb_loop_new();
        if (s->epfd < 0 || s->signal_fd < 0 || !s->loop) {
                cb_error_set(err, "", "cannot set up the event loop: %s", strerror(errno));
                return -1;
        }
        if (listen_on(s, err) < 0)
                return -1;
        if (watch_fd(s, s->listen_fd, &LISTEN_TAG) < 0 ||
            watch_fd(s, s->signal_fd, &SIGNAL_TAG) < 0 ||
            watch_fd(s, cb_loop_fd(s->loop), &LOOP_TAG) < 0) {
                cb_error_set(err, "", "epoll: %s", strerror(errno));
                return -1;
        }
        cb_net_pool_start();
        return 0;
}

/*
 * Drop the connections past their handshake deadline, after one last look
 * at what they may have sent while the server was busy.  Returns the
 * milliseconds until the next deadline (-1: none).
 */
static int expire_handshakes(struct server *s)
{
        double now = now_s(), next = -1;
        struct conn *c = s->conns;

        while (c) {
                struct conn *following = c->next;

                if (c->state == C_AUTH && c->deadline <= now)
                        on_readable(s, c);
                if (c->state == C_AUTH || c->state == C_CLOSING) {
                        if (c->deadline <= now)
                                conn_close(s, c);
                        else if (next < 0 || c->deadline - now < next)
                                next = c->deadline - now;
                }
                c = following;
        }
        return next < 0 ? -1 : (int)(next * 1000) + 1;
}

static void on_signal(struct server *s)
{
        struct signalfd_siginfo si;

        while (read(s->signal_fd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        s->stopping = true;
        }
}

static void dispatch(struct server *s, struct epoll_event *ev)
{
        void *tag = ev->data.ptr;

        if (tag == &LISTEN_TAG)
                on_listen(s);
        else if (tag == &SIGNAL_TAG)
                on_signal(s);
        else if (tag == &LOOP_TAG)
                cb_loop_dispatch(s->loop, 0);
        else
                on_conn_event(s, (struct conn *)tag, ev->events);
}

/* Kill every cell, detached ones too, let each end and be cleaned up. */
static void shut_down(struct server *s)
{
        while (s->conns)
                conn_close(s, s->conns);
        for (struct cell_entry *e = s->orphans; e; e = e->next)
                cb_cell_kill(e->cell);
        while (s->n_cells > 0) {
                if (cb_loop_dispatch(s->loop, 1000) < 0)
                        break;
        }
        remove_socket(s);
}

static void server_free(struct server *s)
{
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        if (s->signal_fd >= 0)
                close(s->signal_fd);
        if (s->epfd >= 0)
                close(s->epfd);
        cb_loop_free(s->loop);
        cb_key_free(&s->key);
}

CB_EXPORT int cb_serve(const cb_server_opts *opts, cb_error *err)
{
        struct server s = {.opts = opts, .epfd = -1, .listen_fd = -1, .signal_fd = -1};
        struct epoll_event events[64];
        int rc = -1;

        if (server_start(&s, err) == 0) {
                log_line("listening on %s", opts->socket_path);
                while (!s.stopping) {
                        int timeout = expire_handshakes(&s);
                        int n;

                        bury_dead(&s);
                        n = epoll_wait(s.epfd, events, 64, any_pending(&s) ? 0 : timeout);
                        if (n < 0 && errno != EINTR)
                                break;
                        for (int i = 0; i < n; i++)
                                dispatch(&s, &events[i]);
                        serve_pending(&s);
                        bury_dead(&s);
                }
                shut_down(&s);
                bury_dead(&s);
                rc = s.stopping ? 0 : -1;
                if (rc < 0)
                        cb_error_set(err, "", "event loop: %s", strerror(errno));
        }
        server_free(&s);
        return rc;
}

CB_EXPORT cb_server_opts cb_server_opts_default(void)
{
        return (cb_server_opts){.max_connections = 256, .max_cells = 1024, .auth_timeout = 2};
}
