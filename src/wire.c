/*
 * Frames, as multiprocessing.connection sends them: a 4-byte big-endian
 * length, then the body.  File descriptors travel beside a frame as
 * SCM_RIGHTS on the same sendmsg.  (Python switches to an 8-byte length
 * after a -1 for bodies over 2 GiB; no cellblock frame is anywhere near
 * that, so such a header is refused as oversized.)
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int cb_frame_parse(const uint8_t *buf, size_t len, size_t max_body, size_t *body_len)
{
        uint32_t n;

        if (len < CB_FRAME_HEADER)
                return 0;
        n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
        if (n > max_body)
                return -1;
        *body_len = n;
        return len - CB_FRAME_HEADER >= n ? 1 : 0;
}

void cb_frame_header(size_t body_len, uint8_t out[CB_FRAME_HEADER])
{
        out[0] = (uint8_t)(body_len >> 24);
        out[1] = (uint8_t)(body_len >> 16);
        out[2] = (uint8_t)(body_len >> 8);
        out[3] = (uint8_t)body_len;
}

/* Any fds that came with a message: kept if there is room, closed otherwise. */
static int take_fds(struct msghdr *msg, int *fds, size_t max, size_t *n_fds)
{
        int overflow = (msg->msg_flags & MSG_CTRUNC) ? -1 : 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
                size_t count;
                int *got;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                got = (int *)CMSG_DATA(c);
                count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < count; i++) {
                        if (*n_fds < max)
                                fds[(*n_fds)++] = got[i];
                        else {
                                close(got[i]);
                                overflow = -1;
                        }
                }
        }
        return overflow;
}

ssize_t cb_wire_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *n_fds,
                     bool *fd_overflow)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * CB_MAX_FDS)];
                struct cmsghdr align;
        } control;
        struct iovec iov = {.iov_base = buf, .iov_len = len};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf)};
        ssize_t n;

        do
                n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n >= 0 && take_fds(&msg, fds, max_fds, n_fds) < 0)
                *fd_overflow = true;
        return n;
}

ssize_t cb_wire_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * CB_MAX_FDS)];
                struct cmsghdr align;
        } control;
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        if (n_fds > CB_MAX_FDS) {
                errno = EINVAL;
                return -1;
        }
        if (n_fds) {
                struct cmsghdr *c;

                memset(&control, 0, sizeof(control));
                msg.msg_control = control.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        do
                n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n;
}

/* ------------------------------------------------------------------ */
/* Blocking whole frames, for clients                                 */
/* ------------------------------------------------------------------ */

static int wait_for(int sock, short events)
{
        struct pollfd p = {.fd = sock, .events = events};
        int rc;

        do
                rc = poll(&p, 1, -1);
        while (rc < 0 && errno == EINTR);
        return rc < 0 ? -1 : 0;
}

int cb_wire_send_frame(int sock, const void *body, size_t len, const int *fds, size_t n_fds)
{
        size_t total = CB_FRAME_HEADER + len, done = 0;
        uint8_t *frame = malloc(total);

        if (!frame)
                return -1;
        cb_frame_header(len, frame);
        memcpy(frame + CB_FRAME_HEADER, body, len);
        while (done < total) {
                /* the fds ride with the first bytes of the frame */
                ssize_t n = cb_wire_send(sock, frame + done, total - done, done ? NULL : fds,
                                         done ? 0 : n_fds);

                if (n < 0 && errno == EAGAIN && wait_for(sock, POLLOUT) == 0)
                        continue;
                if (n <= 0)
                        break;
                done += (size_t)n;
        }
        free(frame);
        return done == total ? 0 : -1;
}

/* Exactly len bytes, collecting any fds that come along. */
static int recv_exactly(int sock, uint8_t *buf, size_t len, int *fds, size_t *n_fds)
{
        bool overflow = false;

        for (size_t done = 0; done < len;) {
                ssize_t n =
                    cb_wire_recv(sock, buf + done, len - done, fds, CB_MAX_FDS, n_fds, &overflow);

                if (n < 0 && errno == EAGAIN && wait_for(sock, POLLIN) == 0)
                        continue;
                if (n <= 0) {
                        errno = n == 0 ? ECONNRESET : errno;
                        return -1;
                }
                done += (size_t)n;
        }
        if (overflow) {
                errno = EMSGSIZE;
                return -1;
        }
        return 0;
}

int cb_wire_recv_frame(int sock, size_t max_body, uint8_t **body, size_t *len, int *fds,
                       size_t *n_fds)
{
        uint8_t header[CB_FRAME_HEADER];

        *body = NULL;
        *n_fds = 0;
        if (recv_exactly(sock, header, sizeof(header), fds, n_fds) < 0)
                return -1;
        if (cb_frame_parse(header, sizeof(header), max_body, len) < 0) {
                errno = EMSGSIZE;
                return -1;
        }
        *body = malloc(*len + 1);
        if (!*body || recv_exactly(sock, *body, *len, fds, n_fds) < 0) {
                free(*body);
                *body = NULL;
                return -1;
        }
        (*body)[*len] = '\0';
        return 0;
}
