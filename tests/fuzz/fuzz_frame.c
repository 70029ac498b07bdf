/*
 * A byte stream through cb_frame_parse as the server's input loop takes it
 * (process_input in server.c), arriving in pieces: the frames found must
 * not depend on where the stream was cut.
 *
 * Input: a byte n, then n bytes of piece sizes (1 + each byte, used in
 * turn), then the stream.  With n = 0 the stream arrives in one piece.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQUEST (1 << 20) /* server.c's limit once the handshake is done */
#define AUTH_FRAMES 3         /* a client's frames during the handshake */

static void fail(const char *what, size_t at)
{
        fprintf(stderr, "%s (stream offset %zu)\n", what, at);
        abort();
}

struct frames {
        size_t n;
        size_t *offset, *len; /* of each frame within the stream */
        bool refused;         /* an oversized length ended the stream */
        size_t end;           /* where the unparsed rest begins */
};

static size_t limit(size_t frames)
{
        return frames < AUTH_FRAMES ? CB_AUTH_MAX_FRAME : MAX_REQUEST;
}

/* cb_frame_parse, checked against the format itself. */
static int parse(const uint8_t *buf, size_t len, size_t max, size_t *body_len, size_t at)
{
        size_t got = 0;
        int rc = cb_frame_parse(buf, len, max, &got);
        uint32_t n = len < CB_FRAME_HEADER ? 0
                                           : (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
                                                 (uint32_t)buf[2] << 8 | buf[3];
        int want = len < CB_FRAME_HEADER ? 0 : n > max ? -1 : len - CB_FRAME_HEADER >= n ? 1 : 0;

        if (rc != want)
                fail("cb_frame_parse returned a wrong verdict", at);
        if (rc == 1 && got != n)
                fail("cb_frame_parse returned a wrong length", at);
        *body_len = got;
        return rc;
}

static void found(struct frames *f, size_t offset, size_t len)
{
        f->offset[f->n] = offset;
        f->len[f->n++] = len;
}

/* The whole stream at once. */
static void parse_whole(const uint8_t *s, size_t size, struct frames *f)
{
        size_t off = 0, body;
        int rc;

        while ((rc = parse(s + off, size - off, limit(f->n), &body, off)) == 1) {
                found(f, off, body);
                off += CB_FRAME_HEADER + body;
        }
        f->refused = rc < 0;
        f->end = off;
}

/* Piece by piece, into a buffer that is compacted after each read, as the server does. */
static void parse_pieces(const uint8_t *s, size_t size, const uint8_t *sizes, size_t n_sizes,
                         struct frames *f)
{
        uint8_t *in = NULL;
        size_t in_len = 0, consumed = 0, next = 0;

        for (size_t fed = 0; fed < size && !f->refused;) {
                size_t piece = n_sizes ? 1 + (size_t)sizes[next++ % n_sizes] : size;
                size_t off = 0, body;
                uint8_t *grown;
                int rc;

                if (piece > size - fed)
                        piece = size - fed;
                /* exactly the bytes held, so that reading past them is caught */
                grown = malloc(in_len + piece);
                if (!grown)
                        abort();
                if (in_len)
                        memcpy(grown, in, in_len);
                memcpy(grown + in_len, s + fed, piece);
                free(in);
                in = grown;
                in_len += piece;
                fed += piece;
                while ((rc = parse(in + off, in_len - off, limit(f->n), &body, consumed + off)) ==
                       1) {
                        found(f, consumed + off, body);
                        off += CB_FRAME_HEADER + body;
                }
                f->refused = rc < 0;
                memmove(in, in + off, in_len - off);
                in_len -= off;
                consumed += off;
        }
        free(in);
        f->end = consumed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        size_t n_sizes = size ? data[0] : 0, max_frames;
        const uint8_t *stream;
        struct frames whole = {0}, pieces = {0};

        if (size < 1 + n_sizes)
                return 0;
        stream = data + 1 + n_sizes;
        size -= 1 + n_sizes;
        max_frames = size / CB_FRAME_HEADER + 1;
        whole.offset = calloc(max_frames, sizeof(size_t));
        whole.len = calloc(max_frames, sizeof(size_t));
        pieces.offset = calloc(max_frames, sizeof(size_t));
        pieces.len = calloc(max_frames, sizeof(size_t));
        if (!whole.offset || !whole.len || !pieces.offset || !pieces.len)
                abort();
        parse_whole(stream, size, &whole);
        parse_pieces(stream, size, data + 1, n_sizes, &pieces);
        if (whole.n != pieces.n || whole.refused != pieces.refused)
                fail("the frames found depend on how the stream was cut", whole.end);
        for (size_t i = 0; i < whole.n; i++) {
                if (whole.offset[i] != pieces.offset[i] || whole.len[i] != pieces.len[i])
                        fail("a frame differs when the stream is cut", whole.offset[i]);
        }
        if (whole.end != pieces.end)
                fail("the unparsed rest differs when the stream is cut", whole.end);
        free(whole.offset);
        free(whole.len);
        free(pieces.offset);
        free(pieces.len);
        return 0;
}
