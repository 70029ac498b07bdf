/* Frames and the fds beside them, parsed and over real sockets (wire.c). */
#include "internal.h"
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1u << 20)

/* ------------------------------------------------------------------ */
/* Parsing                                                            */
/* ------------------------------------------------------------------ */

static void test_frame_parse_needs_a_whole_frame_within_the_limit(void **state)
{
        static const struct {
                const char *header; /* hex; zero bytes follow up to avail */
                size_t avail, max;
                int rc;
                size_t body_len; /* checked when rc is 1 or the header is complete */
        } cases[] = {
            {"", 0, 256, 0, 0},
            {"00", 1, 256, 0, 0},
            {"000000", 3, 256, 0, 0},
            {"00000000", 4, 256, 1, 0},
            {"00000000", 9, 256, 1, 0},
            {"00000005", 4, 256, 0, 5},
            {"00000005", 8, 256, 0, 5},
            {"00000005", 9, 256, 1, 5},
            {"00000005", 10, 256, 1, 5},
            {"00000100", 259, 256, 0, 256},
            {"00000100", 260, 256, 1, 256},
            {"00000100", 4, 255, -1, 0},
            {"00000101", 4, 256, -1, 0},
            {"00000101", 300, 256, -1, 0},
            {"00000005", 9, 4, -1, 0},
            {"00000001", 5, 0, -1, 0},
            {"00000000", 4, 0, 1, 0},
            {"00100000", 4, MiB, 0, MiB},
            {"00100001", 4, MiB, -1, 0},
            {"01000000", 4, MiB, -1, 0},
            {"7fffffff", 4, MiB, -1, 0},
            {"80000000", 4, MiB, -1, 0},
            {"80000001", 4, MiB, -1, 0},
            /* Python's marker for an 8-byte length */
            {"ffffffff", 4, MiB, -1, 0},
            {"ffffffff", 12, MiB, -1, 0},
            /* high bits are not sign-extended */
            {"ffffffff", 4, SIZE_MAX, 0, 0xffffffffu},
            {"80000000", 4, SIZE_MAX, 0, 0x80000000u},
            {"ff000000", 4, 0xff000000u, 0, 0xff000000u},
            {"ff000001", 4, 0xff000000u, -1, 0},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                uint8_t *buf = calloc(1, cases[i].avail + 1);
                size_t body_len = 12345;
                int rc;

                assert_non_null(buf);
                unhex(cases[i].header, buf, cases[i].avail);
                rc = cb_frame_parse(buf, cases[i].avail, cases[i].max, &body_len);
                free(buf);
                if (rc != cases[i].rc)
                        fail_msg("case %zu: %d, want %d", i, rc, cases[i].rc);
                if (rc == 1 || (rc == 0 && cases[i].avail >= CB_FRAME_HEADER))
                        assert_int_equal(body_len, cases[i].body_len);
        }
}

static void test_frame_header_is_big_endian_and_parses_back(void **state)
{
        static const struct {
                size_t len;
                const char *header;
        } cases[] = {
            {0, "00000000"},          {1, "00000001"},          {255, "000000ff"},
            {256, "00000100"},        {65535, "0000ffff"},      {65536, "00010000"},
            {MiB, "00100000"},        {0x01020304, "01020304"}, {0x7fffffff, "7fffffff"},
            {0x80000000, "80000000"}, {0xfffffffe, "fffffffe"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                uint8_t header[CB_FRAME_HEADER], want[CB_FRAME_HEADER];
                size_t body_len = 0;

                cb_frame_header(cases[i].len, header);
                unhex(cases[i].header, want, sizeof(want));
                assert_memory_equal(header, want, CB_FRAME_HEADER);
                assert_int_equal(cb_frame_parse(header, CB_FRAME_HEADER, SIZE_MAX, &body_len),
                                 cases[i].len == 0 ? 1 : 0);
                assert_int_equal(body_len, cases[i].len);
        }
}

/* ------------------------------------------------------------------ */
/* Over a socketpair                                                  */
/* ------------------------------------------------------------------ */

static size_t open_fd_count(void)
{
        DIR *d = opendir("/proc/self/fd");
        size_t n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static void close_fds(const int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

struct link {
        int fd[2]; /* a connected pair: send on 0, receive on 1 */
};

static void link_open(struct link *l)
{
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, l->fd), 0);
}

static void link_close(struct link *l)
{
        close(l->fd[0]);
        close(l->fd[1]);
}

/* Files of different kinds to attach: a pipe, a regular file, a socket, /dev/null. */
struct files {
        int fd[5];
};

static void files_open(struct files *f)
{
        char path[] = "/tmp/cb-test-wire-XXXXXX";
        int sv[2];

        assert_int_equal(pipe2(f->fd, O_CLOEXEC), 0);
        f->fd[2] = mkostemp(path, O_CLOEXEC);
        assert_true(f->fd[2] >= 0);
        unlink(path);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        f->fd[3] = sv[0];
        close(sv[1]);
        f->fd[4] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(f->fd[4] >= 0);
}

static void files_close(struct files *f)
{
        close_fds(f->fd, CB_ARRAY_LEN(f->fd));
}

/* got must be a new fd, close-on-exec, for the same file as want. */
static void assert_same_file(int got, int want)
{
        struct stat a, b;

        assert_int_not_equal(got, want);
        assert_int_equal(fstat(got, &a), 0);
        assert_int_equal(fstat(want, &b), 0);
        assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
        assert_true(fcntl(got, F_GETFD) & FD_CLOEXEC);
}

/* Receives one frame, which must be `body` with the files of `sent` attached. */
static void expect_frame(int sock, const void *body, size_t len, const int *sent, size_t n_sent)
{
        uint8_t *got;
        size_t got_len, n_fds = SIZE_MAX;
        int fds[CB_MAX_FDS];

        assert_int_equal(cb_wire_recv_frame(sock, len, &got, &got_len, fds, &n_fds), 0);
        assert_int_equal(got_len, len);
        assert_memory_equal(got, body, len);
        assert_int_equal(got[len], '\0');
        assert_int_equal(n_fds, n_sent);
        for (size_t i = 0; i < n_fds; i++)
                assert_same_file(fds[i], sent[i]);
        close_fds(fds, n_fds);
        free(got);
}

static void test_frames_carry_zero_to_three_fds(void **state)
{
        static const struct {
                const char *body;
                size_t n_fds;
                size_t first; /* which of struct files first */
        } cases[] = {
            {"{\"op\": \"ping\"}", 0, 0},  {"x", 1, 0},  {"{}", 1, 2},  {"", 1, 4},
            {"{\"op\": \"spawn\"}", 2, 1}, {"[]", 3, 0}, {"abc", 3, 2},
        };
        struct files files;
        struct link l;
        size_t before = open_fd_count();

        (void)state;
        files_open(&files);
        link_open(&l);
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                const int *fds = files.fd + cases[i].first;
                size_t len = strlen(cases[i].body);

                assert_int_equal(
                    cb_wire_send_frame(l.fd[0], cases[i].body, len, fds, cases[i].n_fds), 0);
                expect_frame(l.fd[1], cases[i].body, len, fds, cases[i].n_fds);
        }
        /* frames sent back to back keep their own fds */
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++)
                assert_int_equal(cb_wire_send_frame(l.fd[0], cases[i].body, strlen(cases[i].body),
                                                    files.fd + cases[i].first, cases[i].n_fds),
                                 0);
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++)
                expect_frame(l.fd[1], cases[i].body, strlen(cases[i].body),
                             files.fd + cases[i].first, cases[i].n_fds);
        link_close(&l);
        files_close(&files);
        assert_int_equal(open_fd_count(), before);
}

struct sender {
        int sock;
        const uint8_t *body;
        size_t len;
        const int *fds;
        size_t n_fds;
        int rc;
};

static void *send_in_thread(void *arg)
{
        struct sender *s = arg;

        s->rc = cb_wire_send_frame(s->sock, s->body, s->len, s->fds, s->n_fds);
        return NULL;
}

/* Many times the socket buffer, from a blocking and a non-blocking sender. */
static void test_frames_larger_than_the_socket_buffer_arrive_whole(void **state)
{
        static const struct {
                size_t len;
                bool nonblocking;
                size_t n_fds;
        } cases[] = {
            {4 * MiB, false, 0},
            {4 * MiB, true, 0},
            {4 * MiB + 3, true, 2},
            {MiB, false, 3},
        };
        struct files files;
        size_t before = open_fd_count();

        (void)state;
        files_open(&files);
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                uint8_t *body = malloc(cases[i].len);
                struct sender s = {.body = body,
                                   .len = cases[i].len,
                                   .fds = files.fd,
                                   .n_fds = cases[i].n_fds,
                                   .rc = 99};
                struct link l;
                pthread_t t;
                int sndbuf = 0;
                socklen_t optlen = sizeof(sndbuf);

                assert_non_null(body);
                for (size_t j = 0; j < cases[i].len; j++)
                        body[j] = (uint8_t)(j * 7 + j / 251);
                link_open(&l);
                assert_int_equal(getsockopt(l.fd[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &optlen), 0);
                assert_true((size_t)sndbuf < cases[i].len);
                if (cases[i].nonblocking)
                        assert_int_equal(fcntl(l.fd[0], F_SETFL, O_NONBLOCK), 0);
                s.sock = l.fd[0];
                assert_int_equal(pthread_create(&t, NULL, send_in_thread, &s), 0);
                expect_frame(l.fd[1], body, cases[i].len, files.fd, cases[i].n_fds);
                assert_int_equal(pthread_join(t, NULL), 0);
                assert_int_equal(s.rc, 0);
                link_close(&l);
                free(body);
        }
        files_close(&files);
        assert_int_equal(open_fd_count(), before);
}

/* The peer writes these bytes, with an fd, and hangs up. */
static void test_a_peer_that_hangs_up_mid_frame_is_an_error(void **state)
{
        static const struct {
                const char *bytes; /* hex */
                size_t max;
                int err;
        } cases[] = {
            {"", 64, ECONNRESET},
            {"0000", 64, ECONNRESET},
            {"00000001", 64, ECONNRESET},
            {"0000000a", 64, ECONNRESET},
            {"0000000a0102030405", 64, ECONNRESET},
            {"0000000a010203040506070809", 64, ECONNRESET},
            {"00000041", 64, EMSGSIZE},
            {"ffffffff0000000000000001", MiB, EMSGSIZE},
        };
        struct files files;
        size_t before = open_fd_count();

        (void)state;
        files_open(&files);
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                uint8_t bytes[32], *body = (uint8_t *)"not touched";
                size_t len = unhex(cases[i].bytes, bytes, sizeof(bytes)), got_len, n_fds;
                int fds[CB_MAX_FDS];
                struct link l;

                link_open(&l);
                if (len)
                        assert_int_equal(cb_wire_send(l.fd[0], bytes, len, files.fd, 1),
                                         (ssize_t)len);
                close(l.fd[0]);
                errno = 0;
                assert_int_equal(
                    cb_wire_recv_frame(l.fd[1], cases[i].max, &body, &got_len, fds, &n_fds), -1);
                if (errno != cases[i].err)
                        fail_msg("case %zu: %s", i, strerror(errno));
                assert_null(body);
                /* what came along is the caller's to close */
                assert_true(n_fds <= 1);
                close_fds(fds, n_fds);
                close(l.fd[1]);
        }
        files_close(&files);
        assert_int_equal(open_fd_count(), before);
}

static void test_sending_to_a_closed_peer_fails_without_a_signal(void **state)
{
        struct link l;

        (void)state;
        link_open(&l);
        close(l.fd[1]);
        errno = 0;
        assert_int_equal(cb_wire_send_frame(l.fd[0], "x", 1, NULL, 0), -1);
        assert_int_equal(errno, EPIPE);
        close(l.fd[0]);
}

static void test_sending_more_than_cb_max_fds_is_refused(void **state)
{
        int fds[CB_MAX_FDS + 1];
        uint8_t byte;
        struct link l;

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(fds); i++)
                fds[i] = STDERR_FILENO;
        link_open(&l);
        errno = 0;
        assert_int_equal(cb_wire_send_frame(l.fd[0], "x", 1, fds, CB_MAX_FDS + 1), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(cb_wire_send(l.fd[0], "x", 1, fds, CB_MAX_FDS + 1), -1);
        /* nothing went out */
        assert_int_equal(recv(l.fd[1], &byte, 1, MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN);
        assert_int_equal(cb_wire_send_frame(l.fd[0], "x", 1, fds, CB_MAX_FDS), 0);
        expect_frame(l.fd[1], "x", 1, fds, CB_MAX_FDS);
        link_close(&l);
}

/* sendmsg with n fds, bypassing cb_wire_send's limit. */
static void send_raw(int sock, const void *buf, size_t len, const int *fds, size_t n)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * 32)];
                struct cmsghdr align;
        } control = {{0}};
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

        assert_true(n <= 32);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
        assert_int_equal(sendmsg(sock, &msg, 0), (ssize_t)len);
}

/* Received fds beyond CB_MAX_FDS are closed, and the frame is an error. */
static void test_receiving_more_than_cb_max_fds_is_an_error_without_a_leak(void **state)
{
        static const struct {
                size_t with_header, with_body;
        } cases[] = {
            {CB_MAX_FDS + 1, 0}, {CB_MAX_FDS + 4, 0}, {32, 0},
            {CB_MAX_FDS, 1},     {1, CB_MAX_FDS},     {CB_MAX_FDS, CB_MAX_FDS},
        };
        struct files files;
        size_t before = open_fd_count();

        (void)state;
        files_open(&files);
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                int send_fds[32], fds[CB_MAX_FDS];
                uint8_t header[CB_FRAME_HEADER], *body;
                size_t len, n_fds;
                struct link l;

                for (size_t j = 0; j < CB_ARRAY_LEN(send_fds); j++)
                        send_fds[j] = files.fd[j % CB_ARRAY_LEN(files.fd)];
                link_open(&l);
                cb_frame_header(2, header);
                send_raw(l.fd[0], header, sizeof(header), send_fds, cases[i].with_header);
                if (cases[i].with_body)
                        send_raw(l.fd[0], "{}", 2, send_fds, cases[i].with_body);
                else
                        assert_int_equal(send(l.fd[0], "{}", 2, 0), 2);
                errno = 0;
                assert_int_equal(cb_wire_recv_frame(l.fd[1], 64, &body, &len, fds, &n_fds), -1);
                if (errno != EMSGSIZE)
                        fail_msg("case %zu: %s", i, strerror(errno));
                assert_null(body);
                assert_true(n_fds <= CB_MAX_FDS);
                close_fds(fds, n_fds);
                link_close(&l);
        }
        files_close(&files);
        assert_int_equal(open_fd_count(), before);
}

/* The server's read: fds beyond max_fds are closed and flagged. */
static void test_recv_flags_and_closes_fds_beyond_max(void **state)
{
        static const struct {
                size_t sent, max, kept;
                bool overflow;
        } cases[] = {
            {0, 0, 0, false},
            {1, 0, 0, true},
            {3, 3, 3, false},
            {3, 2, 2, true},
            {CB_MAX_FDS, CB_MAX_FDS, CB_MAX_FDS, false},
            {CB_MAX_FDS + 1, CB_MAX_FDS, CB_MAX_FDS, true},
        };
        struct files files;
        size_t before = open_fd_count();

        (void)state;
        files_open(&files);
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                int send_fds[CB_MAX_FDS + 1], fds[CB_MAX_FDS];
                uint8_t buf[16];
                size_t n_fds = 0;
                bool overflow = false;
                struct link l;

                for (size_t j = 0; j < CB_ARRAY_LEN(send_fds); j++)
                        send_fds[j] = files.fd[j % CB_ARRAY_LEN(files.fd)];
                link_open(&l);
                if (cases[i].sent)
                        send_raw(l.fd[0], "abc", 3, send_fds, cases[i].sent);
                else
                        assert_int_equal(send(l.fd[0], "abc", 3, 0), 3);
                assert_int_equal(
                    cb_wire_recv(l.fd[1], buf, sizeof(buf), fds, cases[i].max, &n_fds, &overflow),
                    3);
                assert_int_equal(n_fds, cases[i].kept);
                assert_int_equal(overflow, cases[i].overflow);
                for (size_t j = 0; j < n_fds; j++)
                        assert_same_file(fds[j], send_fds[j]);
                close_fds(fds, n_fds);
                /* nothing waiting: EAGAIN, not a block */
                assert_int_equal(
                    cb_wire_recv(l.fd[1], buf, sizeof(buf), fds, cases[i].max, &n_fds, &overflow),
                    -1);
                assert_int_equal(errno, EAGAIN);
                link_close(&l);
        }
        files_close(&files);
        assert_int_equal(open_fd_count(), before);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_frame_parse_needs_a_whole_frame_within_the_limit),
            cmocka_unit_test(test_frame_header_is_big_endian_and_parses_back),
            cmocka_unit_test(test_frames_carry_zero_to_three_fds),
            cmocka_unit_test(test_frames_larger_than_the_socket_buffer_arrive_whole),
            cmocka_unit_test(test_a_peer_that_hangs_up_mid_frame_is_an_error),
            cmocka_unit_test(test_sending_to_a_closed_peer_fails_without_a_signal),
            cmocka_unit_test(test_sending_more_than_cb_max_fds_is_refused),
            cmocka_unit_test(test_receiving_more_than_cb_max_fds_is_an_error_without_a_leak),
            cmocka_unit_test(test_recv_flags_and_closes_fds_beyond_max),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
