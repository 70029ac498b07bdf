/*
 * Mutual challenge-response authentication, wire-compatible with Python's
 * multiprocessing.connection (deliver_challenge / answer_challenge).
 *
 * The server challenges first, then answers the client's challenge:
 *
 *   server -> client   #CHALLENGE#{sha256}<40 random bytes>
 *   client -> server   {sha256}<HMAC-SHA256(key, "{sha256}<40 bytes>")>
 *   server -> client   #WELCOME#  (or #FAILURE#, and the connection closes)
 *   client -> server   #CHALLENGE#{sha256}<40 random bytes>
 *   server -> client   {sha256}<HMAC-SHA256(key, ...)>
 *   client -> server   #WELCOME#
 *
 * Python before 3.12 answers with a bare 16-byte HMAC-MD5 and challenges
 * with 20 bare random bytes; the server accepts that unless it requires
 * SHA-256.  cellblock's own client only ever speaks SHA-256, and refuses a
 * server that offers anything else.
 *
 * These are pure state machines: bytes in, at most one frame body out.
 */
#include "internal.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define CHALLENGE        "#CHALLENGE#"
#define WELCOME          "#WELCOME#"
#define FAILURE          "#FAILURE#"
#define SHA256_TAG       "{sha256}"
#define NONCE_LEN        40
#define LEGACY_NONCE_LEN 20
#define MD5_LEN          16

enum stage {
        AWAIT_RESPONSE,        /* we challenged: their MAC next */
        AWAIT_THEIR_CHALLENGE, /* server: the client's challenge next */
        AWAIT_WELCOME,         /* we answered: their verdict next */
        AWAIT_CHALLENGE,       /* client: the server's challenge next */
        FINISHED,
};

static size_t emit(uint8_t *out, const void *a, size_t a_len, const void *b, size_t b_len)
{
        memcpy(out, a, a_len);
        if (b_len)
                memcpy(out + a_len, b, b_len);
        return a_len + b_len;
}

static bool has_prefix(const uint8_t *p, size_t len, const char *prefix)
{
        size_t n = strlen(prefix);

        return len >= n && memcmp(p, prefix, n) == 0;
}

static enum cb_auth_result failed(struct cb_auth *a, const char *why)
{
        snprintf(a->why, sizeof(a->why), "%s", why);
        a->stage = FINISHED;
        return CB_AUTH_FAILED;
}

/* #CHALLENGE#{sha256}<nonce>; remembered without the marker, as it is MAC'd. */
static size_t make_challenge(struct cb_auth *a, uint8_t *out)
{
        uint8_t nonce[NONCE_LEN];

        randombytes_buf(nonce, sizeof(nonce));
        a->challenge_len = emit(a->challenge, SHA256_TAG, strlen(SHA256_TAG), nonce, NONCE_LEN);
        return emit(out, CHALLENGE, strlen(CHALLENGE), a->challenge, a->challenge_len);
}

/* Is this their correct MAC of our challenge? */
static bool response_ok(struct cb_auth *a, const uint8_t *r, size_t len)
{
        uint8_t expected[32];
        size_t tag = strlen(SHA256_TAG);
        bool ok = false;

        if (len == MD5_LEN && !a->require_sha256) {
                cb_hmac(CB_HMAC_MD5, a->key->bytes, a->key->len, a->challenge, a->challenge_len,
                        expected);
                ok = sodium_memcmp(expected, r, MD5_LEN) == 0;
                a->legacy = ok;
        } else if (len == tag + 32 && has_prefix(r, len, SHA256_TAG)) {
                cb_hmac(CB_HMAC_SHA256, a->key->bytes, a->key->len, a->challenge, a->challenge_len,
                        expected);
                ok = sodium_memcmp(expected, r + tag, 32) == 0;
        }
        sodium_memzero(expected, sizeof(expected));
        return ok;
}

/* Our MAC of their challenge (msg is without the #CHALLENGE# marker). */
static enum cb_auth_result answer(struct cb_auth *a, const uint8_t *msg, size_t len, uint8_t *out,
                                  size_t *out_len)
{
        size_t tag = strlen(SHA256_TAG);
        uint8_t mac[32];

        if (len < LEGACY_NONCE_LEN || len > CB_AUTH_MAX_FRAME - strlen(CHALLENGE))
                return failed(a, "challenge of a wrong size");
        if (len == LEGACY_NONCE_LEN || len == MD5_LEN) {
                if (a->require_sha256 || a->client)
                        return failed(a, "peer offered HMAC-MD5, SHA-256 required");
                cb_hmac(CB_HMAC_MD5, a->key->bytes, a->key->len, msg, len, mac);
                *out_len = emit(out, mac, MD5_LEN, NULL, 0);
        } else if (has_prefix(msg, len, SHA256_TAG)) {
                cb_hmac(CB_HMAC_SHA256, a->key->bytes, a->key->len, msg, len, mac);
                *out_len = emit(out, SHA256_TAG, tag, mac, 32);
        } else {
                return failed(a, "challenge with an unsupported digest");
        }
        sodium_memzero(mac, sizeof(mac));
        return CB_AUTH_CONTINUE;
}

void cb_auth_init(struct cb_auth *a, const struct cb_key *key, bool client, bool require_sha256)
{
        memset(a, 0, sizeof(*a));
        a->key = key;
        a->client = client;
        a->require_sha256 = require_sha256 || client;
        a->stage = client ? AWAIT_CHALLENGE : AWAIT_RESPONSE;
}

size_t cb_auth_begin(struct cb_auth *a, uint8_t *out)
{
        return a->client ? 0 : make_challenge(a, out);
}

static enum cb_auth_result on_challenge(struct cb_auth *a, const uint8_t *in, size_t len,
                                        uint8_t *out, size_t *out_len)
{
        size_t marker = strlen(CHALLENGE);

        if (!has_prefix(in, len, CHALLENGE))
                return failed(a, "expected a challenge");
        a->stage = AWAIT_WELCOME;
        return answer(a, in + marker, len - marker, out, out_len);
}

static enum cb_auth_result on_response(struct cb_auth *a, const uint8_t *in, size_t len,
                                       uint8_t *out, size_t *out_len)
{
        if (!response_ok(a, in, len)) {
                const char *why = a->client ? "the server does not know the key"
                                  : len == MD5_LEN && a->require_sha256
                                      ? "HMAC-MD5 answer, SHA-256 required"
                                      : "wrong key";

                *out_len = emit(out, FAILURE, strlen(FAILURE), NULL, 0);
                snprintf(a->why, sizeof(a->why), "%s", why);
                a->stage = FINISHED;
                return CB_AUTH_FAILED;
        }
        *out_len = emit(out, WELCOME, strlen(WELCOME), NULL, 0);
        /* the server then waits for the client's challenge; the client is done */
        a->stage = a->client ? FINISHED : AWAIT_THEIR_CHALLENGE;
        return a->client ? CB_AUTH_DONE : CB_AUTH_CONTINUE;
}

static enum cb_auth_result on_welcome(struct cb_auth *a, const uint8_t *in, size_t len,
                                      uint8_t *out, size_t *out_len)
{
        if (len != strlen(WELCOME) || memcmp(in, WELCOME, len) != 0)
                return failed(a,
                              a->client ? "the server refused our key" : "peer refused our answer");
        if (!a->client) {
                a->stage = FINISHED;
                return CB_AUTH_DONE;
        }
        /* the client now challenges the server */
        *out_len = make_challenge(a, out);
        a->stage = AWAIT_RESPONSE;
        return CB_AUTH_CONTINUE;
}

static enum cb_auth_result dispatch(struct cb_auth *a, const uint8_t *in, size_t len, uint8_t *out,
                                    size_t *out_len)
{
        switch ((enum stage)a->stage) {
        case AWAIT_CHALLENGE:
        case AWAIT_THEIR_CHALLENGE:
                return on_challenge(a, in, len, out, out_len);
        case AWAIT_RESPONSE:
                return on_response(a, in, len, out, out_len);
        case AWAIT_WELCOME:
                return on_welcome(a, in, len, out, out_len);
        case FINISHED:
                break;
        }
        return failed(a, "handshake already over");
}

enum cb_auth_result cb_auth_feed(struct cb_auth *a, const uint8_t *in, size_t len, uint8_t *out,
                                 size_t *out_len)
{
        enum cb_auth_result res;

        *out_len = 0;
        if (len > CB_AUTH_MAX_FRAME)
                return failed(a, "handshake frame too large");
        res = dispatch(a, in, len, out, out_len);
        /* no key-derived byte may stay behind for a cell to inherit */
        cb_wipe_stack();
        return res;
}
