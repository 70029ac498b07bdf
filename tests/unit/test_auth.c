/* The handshake's state machines, against each other and scripted peers (auth.c). */
#include "internal.h"
#include "helpers.h"

#include <sodium.h>
#include <string.h>

#define CHALLENGE "#CHALLENGE#"
#define WELCOME   "#WELCOME#"
#define FAILURE   "#FAILURE#"
#define TAG       "{sha256}"

static uint8_t key_bytes[] = "cellblock test key: 0123456789abcdef";
static uint8_t other_key_bytes[] = "cellblock test key: 0123456789abcdeF";

static const struct cb_key KEY = {key_bytes, sizeof(key_bytes) - 1};
static const struct cb_key OTHER_KEY = {other_key_bytes, sizeof(other_key_bytes) - 1};
/* KEY without its last byte */
static const struct cb_key SHORT_KEY = {key_bytes, sizeof(key_bytes) - 2};

struct frame {
        uint8_t b[2 * CB_AUTH_MAX_FRAME];
        size_t len;
};

static void frame_set(struct frame *f, const char *prefix, const void *rest, size_t rest_len)
{
        f->len = strlen(prefix) + rest_len;
        assert_true(f->len <= sizeof(f->b));
        memcpy(f->b, prefix, strlen(prefix));
        if (rest_len)
                memcpy(f->b + strlen(prefix), rest, rest_len);
}

static bool frame_is(const struct frame *f, const char *text)
{
        return f->len == strlen(text) && memcmp(f->b, text, f->len) == 0;
}

static bool has_prefix(const struct frame *f, const char *prefix)
{
        return f->len >= strlen(prefix) && memcmp(f->b, prefix, strlen(prefix)) == 0;
}

/* cb_auth_feed, checking what holds for every call. */
static enum cb_auth_result feed(struct cb_auth *a, const struct frame *in, struct frame *out)
{
        enum cb_auth_result res;

        out->len = SIZE_MAX;
        res = cb_auth_feed(a, in->b, in->len, out->b, &out->len);
        assert_true(out->len <= CB_AUTH_MAX_FRAME);
        if (res == CB_AUTH_FAILED && !a->why[0])
                fail_msg("failed without a reason");
        return res;
}

/* The answer the peer expects to a challenge body (without #CHALLENGE#). */
static void mac_frame(struct frame *f, enum cb_hmac_kind kind, const struct cb_key *key,
                      const uint8_t *challenge, size_t len)
{
        uint8_t mac[32];

        cb_hmac(kind, key->bytes, key->len, challenge, len, mac);
        frame_set(f, kind == CB_HMAC_SHA256 ? TAG : "", mac, cb_hmac_len(kind));
}

/* ------------------------------------------------------------------ */
/* A server and a client connected to each other                      */
/* ------------------------------------------------------------------ */

enum { SERVER, CLIENT };

struct pair {
        struct cb_auth a[2];
        enum cb_auth_result res[2];
        size_t received[2];
        struct frame next; /* in flight to side `to` */
        int to;
        struct frame log[8];
        size_t n_log;
};

static void pair_start(struct pair *p, const struct cb_key *server_key,
                       const struct cb_key *client_key, bool require_sha256)
{
        uint8_t none[CB_AUTH_MAX_FRAME];

        memset(p, 0, sizeof(*p));
        cb_auth_init(&p->a[SERVER], server_key, false, require_sha256);
        cb_auth_init(&p->a[CLIENT], client_key, true, false);
        p->res[SERVER] = p->res[CLIENT] = CB_AUTH_CONTINUE;
        assert_int_equal(cb_auth_begin(&p->a[CLIENT], none), 0);
        p->next.len = cb_auth_begin(&p->a[SERVER], p->next.b);
        p->to = CLIENT;
}

/* Delivers the frame in flight; false when there is none or its receiver has finished. */
static bool pair_step(struct pair *p)
{
        int to = p->to;
        struct frame in = p->next;

        if (in.len == 0 || p->res[to] != CB_AUTH_CONTINUE)
                return false;
        assert_true(p->n_log < CB_ARRAY_LEN(p->log));
        p->log[p->n_log++] = in;
        p->received[to]++;
        p->res[to] = feed(&p->a[to], &in, &p->next);
        p->to = !to;
        return true;
}

/* Runs the pair until `side` has taken `n` frames. */
static void pair_advance(struct pair *p, int side, size_t n)
{
        while (p->received[side] < n) {
                if (!pair_step(p))
                        fail_msg("the handshake stopped after %zu frames", p->n_log);
        }
}

static const char *result_name(enum cb_auth_result r)
{
        return r == CB_AUTH_DONE ? "DONE" : r == CB_AUTH_FAILED ? "FAILED" : "CONTINUE";
}

/*
 * Each frame of a transcript, as a letter: C a challenge, R the right
 * SHA-256 answer (under the sender's key) to the challenge before it, W
 * #WELCOME#, F #FAILURE#.
 */
static void assert_transcript(const struct pair *p, const char *shape,
                              const struct cb_key *const keys[2], size_t case_no)
{
        assert_int_equal(p->n_log, strlen(shape));
        for (size_t i = 0; i < p->n_log; i++) {
                const struct frame *f = &p->log[i];
                /* frames alternate, the server's first */
                const struct cb_key *sender = keys[i % 2 == 0 ? SERVER : CLIENT];
                struct frame want;
                bool ok = false;

                switch (shape[i]) {
                case 'C':
                        ok = f->len == strlen(CHALLENGE TAG) + 40 && has_prefix(f, CHALLENGE TAG);
                        break;
                case 'R':
                        mac_frame(&want, CB_HMAC_SHA256, sender,
                                  p->log[i - 1].b + strlen(CHALLENGE),
                                  p->log[i - 1].len - strlen(CHALLENGE));
                        ok = f->len == want.len && memcmp(f->b, want.b, want.len) == 0;
                        break;
                case 'W':
                        ok = frame_is(f, WELCOME);
                        break;
                case 'F':
                        ok = frame_is(f, FAILURE);
                        break;
                }
                if (!ok)
                        fail_msg("case %zu: frame %zu is not the expected '%c'", case_no, i,
                                 shape[i]);
        }
}

static void test_server_and_client_agree_only_on_the_same_key(void **state)
{
        static const struct {
                const struct cb_key *server, *client;
                bool require_sha256;
                enum cb_auth_result server_res, client_res;
                const char *transcript;
        } cases[] = {
            {&KEY, &KEY, false, CB_AUTH_DONE, CB_AUTH_DONE, "CRWCRW"},
            {&KEY, &KEY, true, CB_AUTH_DONE, CB_AUTH_DONE, "CRWCRW"},
            {&KEY, &OTHER_KEY, false, CB_AUTH_FAILED, CB_AUTH_FAILED, "CRF"},
            {&OTHER_KEY, &KEY, true, CB_AUTH_FAILED, CB_AUTH_FAILED, "CRF"},
            {&KEY, &SHORT_KEY, false, CB_AUTH_FAILED, CB_AUTH_FAILED, "CRF"},
            {&SHORT_KEY, &KEY, false, CB_AUTH_FAILED, CB_AUTH_FAILED, "CRF"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                const struct cb_key *const keys[2] = {cases[i].server, cases[i].client};
                struct pair p;

                pair_start(&p, cases[i].server, cases[i].client, cases[i].require_sha256);
                while (pair_step(&p))
                        ;
                if (p.res[SERVER] != cases[i].server_res || p.res[CLIENT] != cases[i].client_res)
                        fail_msg("case %zu: server %s (%s), client %s (%s)", i,
                                 result_name(p.res[SERVER]), p.a[SERVER].why,
                                 result_name(p.res[CLIENT]), p.a[CLIENT].why);
                assert_transcript(&p, cases[i].transcript, keys, i);
                assert_false(p.a[SERVER].legacy);
                if (p.n_log == 6 && memcmp(p.log[0].b, p.log[3].b, p.log[0].len) == 0)
                        fail_msg("case %zu: both challenges are the same", i);
        }
}

/* ------------------------------------------------------------------ */
/* Exact bytes                                                        */
/* ------------------------------------------------------------------ */

/*
 * Answers to fixed challenges under KEY, as Python 3.12's
 * multiprocessing.connection._create_response gives them.
 */
static void test_answers_are_the_bytes_python_sends(void **state)
{
        static const struct {
                int side;
                const char *challenge; /* hex, after #CHALLENGE# */
                const char *answer;    /* hex */
        } cases[] = {
            {CLIENT,
             "7b7368613235367d000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
             "2021222324252627",
             "7b7368613235367dc51ab9b6c18ce778114ca0abbcef10b1f129cf98a19c3cbbeb4d637c6ec98297"},
            {SERVER,
             "7b7368613235367d000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
             "2021222324252627",
             "7b7368613235367dc51ab9b6c18ce778114ca0abbcef10b1f129cf98a19c3cbbeb4d637c6ec98297"},
            {SERVER,
             "7b7368613235367d000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
             "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f4041424344454647"
             "48494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60616263",
             "7b7368613235367dfaee092ce9cbbbf8a00674cceb574b3eb30dbfefead70c86b36931c31fa2d5c1"},
            /* Python 3.11: 20 bare bytes, a bare HMAC-MD5 back */
            {SERVER, "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3",
             "1b4898e569f805988111b257061a14a3"},
            {SERVER, "000102030405060708090a0b0c0d0e0f10111213",
             "78ece67c05c5ed0ca0ebc1e4f418deb5"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                uint8_t body[CB_AUTH_MAX_FRAME], want[64];
                size_t body_len = unhex(cases[i].challenge, body, sizeof(body));
                size_t want_len = unhex(cases[i].answer, want, sizeof(want));
                char hex[2 * CB_AUTH_MAX_FRAME + 1];
                struct frame in, out;
                struct pair p;
                int side = cases[i].side;

                pair_start(&p, &KEY, &KEY, false);
                /* the server answers once it has accepted the client */
                pair_advance(&p, side, side == SERVER ? 1 : 0);
                frame_set(&in, CHALLENGE, body, body_len);
                assert_int_equal(feed(&p.a[side], &in, &out), CB_AUTH_CONTINUE);
                if (out.len != want_len || memcmp(out.b, want, want_len) != 0)
                        fail_msg("case %zu: answered %s", i, to_hex(out.b, out.len, hex));
        }
}

/* The largest frame Python reads in the handshake is 256 bytes. */
static void test_challenges_fill_up_to_256_bytes(void **state)
{
        static const int sides[] = {SERVER, CLIENT};

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(sides); i++) {
                size_t rest = CB_AUTH_MAX_FRAME - strlen(CHALLENGE TAG);
                uint8_t body[CB_AUTH_MAX_FRAME];
                struct frame in, out, want;
                struct pair p;

                memcpy(body, TAG, strlen(TAG));
                memset(body + strlen(TAG), 0x5a, rest);
                pair_start(&p, &KEY, &KEY, true);
                pair_advance(&p, sides[i], sides[i] == SERVER ? 1 : 0);
                frame_set(&in, CHALLENGE, body, strlen(TAG) + rest);
                assert_int_equal(in.len, CB_AUTH_MAX_FRAME);
                assert_int_equal(feed(&p.a[sides[i]], &in, &out), CB_AUTH_CONTINUE);
                mac_frame(&want, CB_HMAC_SHA256, &KEY, body, strlen(TAG) + rest);
                assert_int_equal(out.len, want.len);
                assert_memory_equal(out.b, want.b, want.len);
        }
}

/* ------------------------------------------------------------------ */
/* Python 3.11 clients                                                */
/* ------------------------------------------------------------------ */

/*
 * A legacy client answers the server's challenge with a bare HMAC-MD5 of
 * what followed #CHALLENGE#, then challenges with 20 bare bytes and expects
 * a bare HMAC-MD5 back.
 */
static void test_legacy_clients_are_taken_unless_sha256_is_required(void **state)
{
        static const uint8_t nonce[20] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
                                          0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad,
                                          0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3};
        static const struct {
                bool require_sha256;
                const struct cb_key *client_key;
                enum cb_auth_result after_answer;
                const char *reply, *why;
        } cases[] = {
            {false, &KEY, CB_AUTH_CONTINUE, WELCOME, ""},
            {true, &KEY, CB_AUTH_FAILED, FAILURE, "SHA-256"},
            {false, &OTHER_KEY, CB_AUTH_FAILED, FAILURE, ""},
            {true, &OTHER_KEY, CB_AUTH_FAILED, FAILURE, ""},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                struct cb_auth server;
                struct frame challenge, in, out;
                uint8_t want[16];
                enum cb_auth_result res;

                cb_auth_init(&server, &KEY, false, cases[i].require_sha256);
                challenge.len = cb_auth_begin(&server, challenge.b);
                assert_true(has_prefix(&challenge, CHALLENGE TAG));
                mac_frame(&in, CB_HMAC_MD5, cases[i].client_key, challenge.b + strlen(CHALLENGE),
                          challenge.len - strlen(CHALLENGE));
                assert_int_equal(in.len, 16);
                res = feed(&server, &in, &out);
                if (res != cases[i].after_answer || !frame_is(&out, cases[i].reply))
                        fail_msg("case %zu: %s (%s)", i, result_name(res), server.why);
                assert_non_null(strstr(server.why, cases[i].why));
                if (res != CB_AUTH_CONTINUE)
                        continue;
                assert_true(server.legacy);
                frame_set(&in, CHALLENGE, nonce, sizeof(nonce));
                assert_int_equal(feed(&server, &in, &out), CB_AUTH_CONTINUE);
                unhex("1b4898e569f805988111b257061a14a3", want, sizeof(want));
                assert_int_equal(out.len, 16);
                assert_memory_equal(out.b, want, 16);
                frame_set(&in, WELCOME, NULL, 0);
                assert_int_equal(feed(&server, &in, &out), CB_AUTH_DONE);
                assert_int_equal(out.len, 0);
        }
}

/* The server logs why; a wrong legacy key is not a digest problem when MD5 is allowed. */
static void test_legacy_answer_with_a_wrong_key_is_reported_as_a_wrong_key(void **state)
{
        struct cb_auth server;
        struct frame challenge, in, out;

        (void)state;
        cb_auth_init(&server, &KEY, false, false);
        challenge.len = cb_auth_begin(&server, challenge.b);
        mac_frame(&in, CB_HMAC_MD5, &OTHER_KEY, challenge.b + strlen(CHALLENGE),
                  challenge.len - strlen(CHALLENGE));
        assert_int_equal(feed(&server, &in, &out), CB_AUTH_FAILED);
        assert_true(frame_is(&out, FAILURE));
        if (strstr(server.why, "SHA-256") || !strstr(server.why, "wrong key"))
                fail_msg("reason: %s", server.why);
}

/* ------------------------------------------------------------------ */
/* The C client checks the server                                     */
/* ------------------------------------------------------------------ */

enum answer {
        RIGHT,
        LAST_BYTE_FLIPPED,
        OTHER_KEYS_MAC,
        MD5_OF_THE_RIGHT_KEY,
        CHALLENGE_REFLECTED,
        CLIENTS_OWN_ANSWER,
        EMPTY,
        TRUNCATED,
        ONE_BYTE_MORE,
        TAG_IN_CAPITALS,
};

static void make_answer(enum answer kind, const struct pair *p, struct frame *f)
{
        /* p->log: the server's challenge, the client's answer, #WELCOME#, the client's challenge */
        const uint8_t *challenge = p->log[3].b + strlen(CHALLENGE);
        size_t len = p->log[3].len - strlen(CHALLENGE);

        mac_frame(f, CB_HMAC_SHA256, &KEY, challenge, len);
        switch (kind) {
        case RIGHT:
                break;
        case LAST_BYTE_FLIPPED:
                f->b[f->len - 1] ^= 1;
                break;
        case OTHER_KEYS_MAC:
                mac_frame(f, CB_HMAC_SHA256, &OTHER_KEY, challenge, len);
                break;
        case MD5_OF_THE_RIGHT_KEY:
                mac_frame(f, CB_HMAC_MD5, &KEY, challenge, len);
                break;
        case CHALLENGE_REFLECTED:
                frame_set(f, "", challenge, len);
                break;
        case CLIENTS_OWN_ANSWER:
                *f = p->log[1];
                break;
        case EMPTY:
                f->len = 0;
                break;
        case TRUNCATED:
                f->len--;
                break;
        case ONE_BYTE_MORE:
                f->b[f->len++] = 0;
                break;
        case TAG_IN_CAPITALS:
                memcpy(f->b, "{SHA256}", strlen(TAG));
                break;
        }
}

static void test_client_accepts_only_the_right_answer_from_the_server(void **state)
{
        static const enum answer cases[] = {
            RIGHT,
            LAST_BYTE_FLIPPED,
            OTHER_KEYS_MAC,
            MD5_OF_THE_RIGHT_KEY,
            CHALLENGE_REFLECTED,
            CLIENTS_OWN_ANSWER,
            EMPTY,
            TRUNCATED,
            ONE_BYTE_MORE,
            TAG_IN_CAPITALS,
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                struct pair p;
                struct frame in, out;
                enum cb_auth_result res;

                pair_start(&p, &KEY, &KEY, false);
                pair_advance(&p, CLIENT, 2);
                assert_int_equal(p.n_log, 3);
                p.log[p.n_log++] = p.next; /* the client's challenge */
                make_answer(cases[i], &p, &in);
                res = feed(&p.a[CLIENT], &in, &out);
                if (cases[i] == RIGHT) {
                        assert_int_equal(res, CB_AUTH_DONE);
                        assert_true(frame_is(&out, WELCOME));
                        continue;
                }
                if (res != CB_AUTH_FAILED || !frame_is(&out, FAILURE))
                        fail_msg("answer %zu: %s", i, result_name(res));
                assert_non_null(strstr(p.a[CLIENT].why, "does not know the key"));
        }
}

/* ------------------------------------------------------------------ */
/* Frames out of place                                                */
/* ------------------------------------------------------------------ */

/* Frame bytes: a prefix, then `n` copies of `fill`. */
struct garbage {
        const char *prefix;
        uint8_t fill;
        size_t n;
};

static void test_frames_out_of_place_fail_with_a_reason(void **state)
{
        static const struct {
                int side;
                size_t after; /* good frames the side takes first */
                struct garbage frame;
                const char *reply; /* NULL: nothing */
                const char *why;
        } cases[] = {
            /* the server's first frame is the client's answer */
            {SERVER, 0, {"", 0, 0}, FAILURE, "wrong key"},
            {SERVER, 0, {"", 'x', CB_AUTH_MAX_FRAME}, FAILURE, "wrong key"},
            {SERVER, 0, {"", 'x', CB_AUTH_MAX_FRAME + 1}, NULL, "too large"},
            {SERVER, 0, {"", 'x', 100000}, NULL, "too large"},
            {SERVER, 0, {CHALLENGE TAG, 'x', 40}, FAILURE, "wrong key"},
            {SERVER, 0, {WELCOME, 0, 0}, FAILURE, "wrong key"},
            {SERVER, 0, {TAG, 'x', 32}, FAILURE, "wrong key"},
            /* then the client's challenge */
            {SERVER, 1, {"", 0, 0}, NULL, "expected a challenge"},
            {SERVER, 1, {TAG, 'x', 40}, NULL, "expected a challenge"},
            {SERVER, 1, {"#CHALLENGX#" TAG, 'x', 40}, NULL, "expected a challenge"},
            {SERVER, 1, {"#challenge#" TAG, 'x', 40}, NULL, "expected a challenge"},
            {SERVER, 1, {"CHALLENGE#" TAG, 'x', 40}, NULL, "expected a challenge"},
            {SERVER, 1, {WELCOME, 0, 0}, NULL, "expected a challenge"},
            {SERVER, 1, {CHALLENGE "{sha512}", 'x', 40}, NULL, "unsupported digest"},
            {SERVER, 1, {CHALLENGE "{md5}", 'x', 40}, NULL, "unsupported digest"},
            {SERVER, 1, {CHALLENGE "{sha256", 'x', 40}, NULL, "unsupported digest"},
            {SERVER, 1, {CHALLENGE "{SHA256}", 'x', 40}, NULL, "unsupported digest"},
            {SERVER, 1, {CHALLENGE, 'x', 19}, NULL, "wrong size"},
            {SERVER, 1, {CHALLENGE, 'x', 16}, NULL, "wrong size"},
            {SERVER, 1, {CHALLENGE, 0, 0}, NULL, "wrong size"},
            {SERVER, 1, {CHALLENGE TAG, 'x', CB_AUTH_MAX_FRAME - 18}, NULL, "too large"},
            /* then the client's verdict on the server's answer */
            {SERVER, 2, {FAILURE, 0, 0}, NULL, "refused"},
            {SERVER, 2, {"", 0, 0}, NULL, "refused"},
            {SERVER, 2, {WELCOME, 0, 1}, NULL, "refused"},
            {SERVER, 2, {"#WELCOME", 0, 0}, NULL, "refused"},
            {SERVER, 3, {WELCOME, 0, 0}, NULL, "already over"},
            /* the client's first frame is the server's challenge */
            {CLIENT, 0, {"", 0, 0}, NULL, "expected a challenge"},
            {CLIENT, 0, {WELCOME, 0, 0}, NULL, "expected a challenge"},
            {CLIENT, 0, {TAG, 'x', 40}, NULL, "expected a challenge"},
            {CLIENT, 0, {CHALLENGE TAG, 'x', CB_AUTH_MAX_FRAME - 18}, NULL, "too large"},
            {CLIENT, 0, {CHALLENGE "{sha512}", 'x', 40}, NULL, "unsupported digest"},
            {CLIENT, 0, {CHALLENGE, 'x', 19}, NULL, "wrong size"},
            /* a Python 3.11 server: cellblock's client speaks only SHA-256 */
            {CLIENT, 0, {CHALLENGE, 'x', 20}, NULL, "HMAC-MD5"},
            {CLIENT, 0, {CHALLENGE TAG, 'x', 12}, NULL, "HMAC-MD5"},
            /* then the server's verdict on the client's answer */
            {CLIENT, 1, {FAILURE, 0, 0}, NULL, "refused our key"},
            {CLIENT, 1, {"", 0, 0}, NULL, "refused our key"},
            {CLIENT, 1, {CHALLENGE TAG, 'x', 40}, NULL, "refused our key"},
            {CLIENT, 1, {"", 'x', CB_AUTH_MAX_FRAME + 1}, NULL, "too large"},
            {CLIENT, 3, {WELCOME, 0, 0}, NULL, "already over"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                const struct garbage *g = &cases[i].frame;
                size_t prefix = strlen(g->prefix);
                uint8_t *bytes = malloc(prefix + g->n + 1);
                struct cb_auth *a;
                struct frame out, welcome;
                struct pair p;
                enum cb_auth_result res;

                assert_non_null(bytes);
                memcpy(bytes, g->prefix, prefix);
                memset(bytes + prefix, g->fill, g->n);
                pair_start(&p, &KEY, &KEY, false);
                pair_advance(&p, cases[i].side, cases[i].after);
                a = &p.a[cases[i].side];
                /* not feed(): some frames are larger than struct frame */
                out.len = SIZE_MAX;
                res = cb_auth_feed(a, bytes, prefix + g->n, out.b, &out.len);
                free(bytes);
                if (res != CB_AUTH_FAILED || !strstr(a->why, cases[i].why))
                        fail_msg("case %zu: %s, \"%s\", want FAILED, \"%s\"", i, result_name(res),
                                 a->why, cases[i].why);
                if (cases[i].reply ? !frame_is(&out, cases[i].reply) : out.len != 0)
                        fail_msg("case %zu: %zu bytes sent", i, out.len);
                /* once failed, always failed */
                frame_set(&welcome, WELCOME, NULL, 0);
                assert_int_equal(feed(a, &welcome, &out), CB_AUTH_FAILED);
                assert_int_equal(out.len, 0);
        }
}

static int setup(void **state)
{
        (void)state;
        return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_server_and_client_agree_only_on_the_same_key),
            cmocka_unit_test(test_answers_are_the_bytes_python_sends),
            cmocka_unit_test(test_challenges_fill_up_to_256_bytes),
            cmocka_unit_test(test_legacy_clients_are_taken_unless_sha256_is_required),
            cmocka_unit_test(test_legacy_answer_with_a_wrong_key_is_reported_as_a_wrong_key),
            cmocka_unit_test(test_client_accepts_only_the_right_answer_from_the_server),
            cmocka_unit_test(test_frames_out_of_place_fail_with_a_reason),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
