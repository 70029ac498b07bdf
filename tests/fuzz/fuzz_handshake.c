/*
 * Handshake frames carved from the input, each fed to a server-side and to
 * a client-side cb_auth.  The key is random, drawn at start-up, so no input
 * holds a right MAC of a challenge: a side may finish (DONE) only after it
 * was sent the right answer to its challenge, which only the harness can
 * compute.  That is the handshake's security property.
 *
 * Input: a byte of flags (bit 0: the server requires SHA-256), then chunks,
 * each a kind byte (taken mod 7) and what that kind needs:
 *   0  a length byte and that many bytes, as they are
 *   1  a 2-byte big-endian length and that many bytes, as they are
 *   2  the right {sha256} answer to the side's challenge
 *   3  the right bare HMAC-MD5 answer to it
 *   4  a length byte and that many bytes after #CHALLENGE#
 *   5  the side's last frame, sent back to it
 *   6  the side's last frame with #CHALLENGE# taken off, or put on
 */
#include "internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHALLENGE "#CHALLENGE#"
#define TAG       "{sha256}"

static uint8_t key_bytes[CB_KEY_MIN * 2];
static const struct cb_key KEY = {key_bytes, sizeof(key_bytes)};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        if (sodium_init() < 0)
                abort();
        randombytes_buf(key_bytes, sizeof(key_bytes));
        return 0;
}

struct side {
        const char *name;
        struct cb_auth a;
        enum cb_auth_result res;
        uint8_t last[CB_AUTH_MAX_FRAME]; /* its last frame out */
        size_t last_len;
        bool got_sha256, got_md5; /* was sent the right answer to its challenge */
};

static void fail(const struct side *s, const char *what)
{
        fprintf(stderr, "%s side: %s (why: \"%.64s\")\n", s->name, what, s->a.why);
        abort();
}

/* The right answer to the side's outstanding challenge, as only a key holder can give it. */
static size_t right_answer(const struct side *s, enum cb_hmac_kind kind, uint8_t *out)
{
        size_t tag = kind == CB_HMAC_SHA256 ? strlen(TAG) : 0;

        memcpy(out, TAG, tag);
        cb_hmac(kind, KEY.bytes, KEY.len, s->a.challenge, s->a.challenge_len, out + tag);
        return tag + cb_hmac_len(kind);
}

static bool is_right_answer(const struct side *s, enum cb_hmac_kind kind, const uint8_t *in,
                            size_t len)
{
        size_t tag = kind == CB_HMAC_SHA256 ? strlen(TAG) : 0;
        uint8_t want[64];

        if (!s->a.challenge_len || len != tag + cb_hmac_len(kind))
                return false;
        right_answer(s, kind, want);
        return memcmp(in, want, len) == 0;
}

/* The frame a chunk stands for, for this side; NULL at the end of the input. */
static uint8_t *carve(const struct side *s, const uint8_t **p, const uint8_t *end, size_t *len)
{
        size_t marker = strlen(CHALLENGE), n = 0;
        uint8_t kind, *f;
        bool marked;

        if (*p >= end)
                return NULL;
        kind = *(*p)++ % 7;
        if (kind == 0 || kind == 4) {
                n = *p < end ? *(*p)++ : 0;
        } else if (kind == 1 && end - *p >= 2) {
                n = (size_t)(*p)[0] << 8 | (*p)[1];
                *p += 2;
        }
        if (n > (size_t)(end - *p))
                n = (size_t)(end - *p);
        f = malloc(n + marker + 64 + s->last_len + 1);
        if (!f)
                abort();
        switch (kind) {
        case 0:
        case 1:
                memcpy(f, *p, n);
                *len = n;
                break;
        case 2:
        case 3:
                *len = right_answer(s, kind == 2 ? CB_HMAC_SHA256 : CB_HMAC_MD5, f);
                break;
        case 4:
                memcpy(f, CHALLENGE, marker);
                memcpy(f + marker, *p, n);
                *len = marker + n;
                break;
        case 5:
                memcpy(f, s->last, s->last_len);
                *len = s->last_len;
                break;
        default:
                marked = s->last_len >= marker && memcmp(s->last, CHALLENGE, marker) == 0;
                if (marked) {
                        *len = s->last_len - marker;
                        memcpy(f, s->last + marker, *len);
                } else {
                        memcpy(f, CHALLENGE, marker);
                        memcpy(f + marker, s->last, s->last_len);
                        *len = marker + s->last_len;
                }
                break;
        }
        *p += n;
        /* cut to the frame's size, so that reading past it is caught */
        return realloc(f, *len ? *len : 1);
}

static void feed(struct side *s, const uint8_t *in, size_t len, bool require_sha256)
{
        enum cb_auth_result before = s->res;
        uint8_t *out = malloc(CB_AUTH_MAX_FRAME);
        size_t out_len = SIZE_MAX;

        if (!out)
                abort();
        s->got_sha256 |= is_right_answer(s, CB_HMAC_SHA256, in, len);
        s->got_md5 |= is_right_answer(s, CB_HMAC_MD5, in, len);
        s->res = cb_auth_feed(&s->a, in, len, out, &out_len);
        if (s->res != CB_AUTH_CONTINUE && s->res != CB_AUTH_DONE && s->res != CB_AUTH_FAILED)
                fail(s, "an unknown result");
        if (out_len > CB_AUTH_MAX_FRAME)
                fail(s, "a frame out larger than the handshake allows");
        if (before != CB_AUTH_CONTINUE && (s->res != CB_AUTH_FAILED || out_len))
                fail(s, "went on after the handshake was over");
        if (s->res == CB_AUTH_FAILED && (!s->a.why[0] || !memchr(s->a.why, 0, sizeof(s->a.why))))
                fail(s, "failed without a reason");
        if (s->res == CB_AUTH_DONE && !s->got_sha256 &&
            (s->a.client || require_sha256 || !s->got_md5))
                fail(s, "DONE without the right answer to its challenge");
        if (s->res == CB_AUTH_DONE && s->a.client && s->a.legacy)
                fail(s, "the client took HMAC-MD5");
        if (out_len) {
                memcpy(s->last, out, out_len);
                s->last_len = out_len;
        }
        free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *p = data + 1, *end = data + size;
        bool require_sha256;
        struct side sides[2] = {{.name = "server"}, {.name = "client"}};

        if (size == 0)
                return 0;
        require_sha256 = data[0] & 1;
        cb_auth_init(&sides[0].a, &KEY, false, require_sha256);
        cb_auth_init(&sides[1].a, &KEY, true, false);
        for (size_t i = 0; i < 2; i++) {
                sides[i].res = CB_AUTH_CONTINUE;
                sides[i].last_len = cb_auth_begin(&sides[i].a, sides[i].last);
        }
        /* once both sides are over, a frame more for each is enough */
        for (size_t over = 0; p < end && over < 2;) {
                const uint8_t *chunk = p;

                for (size_t i = 0; i < 2; i++) {
                        size_t len;
                        uint8_t *frame;

                        p = chunk; /* both sides get the same chunk */
                        frame = carve(&sides[i], &p, end, &len);
                        if (!frame)
                                abort();
                        feed(&sides[i], frame, len, require_sha256);
                        free(frame);
                }
                if (sides[0].res != CB_AUTH_CONTINUE && sides[1].res != CB_AUTH_CONTINUE)
                        over++;
        }
        return 0;
}
