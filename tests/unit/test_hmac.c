/* MD5 and HMAC-MD5 / HMAC-SHA256 against published vectors (hmac.c). */
#include "internal.h"
#include "helpers.h"

#include <string.h>

/* Bytes given as a pattern repeated `times` times. */
struct blob {
        const char *pattern;
        size_t len;
        size_t times;
};

#define REP(s, n)                                                                                  \
        {                                                                                          \
                s, sizeof(s) - 1, n                                                                \
        }
#define STR(s) REP(s, 1)

#define MAX_BLOB 1000000

static uint8_t *expand(const struct blob *b, size_t *len)
{
        uint8_t *p;

        *len = b->len * b->times;
        assert_true(*len <= MAX_BLOB);
        p = malloc(*len + 1);
        assert_non_null(p);
        for (size_t i = 0; i < b->times; i++)
                memcpy(p + i * b->len, b->pattern, b->len);
        return p;
}

static void assert_digest(const char *what, size_t i, const uint8_t *got, size_t len,
                          const char *want_hex)
{
        uint8_t want[32];
        char got_hex[65];

        assert_int_equal(unhex(want_hex, want, sizeof(want)), len);
        if (memcmp(got, want, len) != 0)
                fail_msg("%s, case %zu: %s, want %s", what, i, to_hex(got, len, got_hex), want_hex);
}

/*
 * RFC 1321's suite, then lengths around the padding boundaries (a block is
 * 64 bytes; the length field takes the last 8) and a long input, with
 * digests from Python's hashlib.md5.
 */
static void test_md5_matches_rfc_1321_and_hashlib(void **state)
{
        static const struct {
                struct blob msg;
                const char *md5;
        } cases[] = {
            {STR(""), "d41d8cd98f00b204e9800998ecf8427e"},
            {STR("a"), "0cc175b9c0f1b6a831c399e269772661"},
            {STR("abc"), "900150983cd24fb0d6963f7d28e17f72"},
            {STR("message digest"), "f96b697d7cb7938d525a2f31aaf161d0"},
            {STR("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b"},
            {STR("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
             "d174ab98d277d9f5a5611c2c9f419d9f"},
            {REP("1234567890", 8), "57edf4a22be3c955ac49da2e2107b67a"},
            {REP("a", 55), "ef1772b6dff9a122358552954ad0df65"},
            {REP("a", 56), "3b0c8ac703f828b04c6c197006d17218"},
            {REP("a", 63), "b06521f39153d618550606be297466d5"},
            {REP("a", 64), "014842d480b571495a4a0363793f7367"},
            {REP("a", 65), "c743a45e0d2e6a95cb859adae0248435"},
            {REP("a", 119), "8a7bd0732ed6a28ce75f6dabc90e1613"},
            {REP("a", 120), "5f61c0ccad4cac44c75ff505e1f1e537"},
            {REP("a", 128), "e510683b3f5ffe4093d021808bc6ff70"},
            {REP("a", 1000000), "7707d6ae4e027c70eea2a935c2296f21"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                size_t len;
                uint8_t *msg = expand(&cases[i].msg, &len), out[17];

                out[16] = 0xee;
                cb_md5(msg, len, out);
                assert_digest("md5", i, out, 16, cases[i].md5);
                assert_int_equal(out[16], 0xee);
                free(msg);
        }
}

/*
 * HMAC-MD5: RFC 2202 cases 1-7; HMAC-SHA256: RFC 4231 cases 1-4, 6, 7 (5
 * truncates).  Both with keys shorter than, equal to and longer than the
 * 64-byte block, and empty inputs; those from Python's hmac module.
 */
static void test_hmac_matches_rfc_2202_and_4231(void **state)
{
        static const struct {
                enum cb_hmac_kind kind;
                struct blob key, msg;
                const char *mac;
        } cases[] = {
            {CB_HMAC_MD5, REP("\x0b", 16), STR("Hi There"), "9294727a3638bb1c13f48ef8158bfc9d"},
            {CB_HMAC_MD5, STR("Jefe"), STR("what do ya want for nothing?"),
             "750c783e6ab0b503eaa86e310a5db738"},
            {CB_HMAC_MD5, REP("\xaa", 16), REP("\xdd", 50), "56be34521d144c88dbb8c733f0e8b3f6"},
            {CB_HMAC_MD5,
             STR("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13"
                 "\x14\x15\x16\x17\x18\x19"),
             REP("\xcd", 50), "697eaf0aca3a3aea3a75164746ffaa79"},
            {CB_HMAC_MD5, REP("\x0c", 16), STR("Test With Truncation"),
             "56461ef2342edc00f9bab995690efd4c"},
            {CB_HMAC_MD5, REP("\xaa", 80),
             STR("Test Using Larger Than Block-Size Key - Hash Key First"),
             "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"},
            {CB_HMAC_MD5, REP("\xaa", 80),
             STR("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
             "6f630fad67cda0ee1fb1f562db3aa53e"},
            {CB_HMAC_SHA256, REP("\x0b", 20), STR("Hi There"),
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
            {CB_HMAC_SHA256, STR("Jefe"), STR("what do ya want for nothing?"),
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
            {CB_HMAC_SHA256, REP("\xaa", 20), REP("\xdd", 50),
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
            {CB_HMAC_SHA256,
             STR("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13"
                 "\x14\x15\x16\x17\x18\x19"),
             REP("\xcd", 50), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
            {CB_HMAC_SHA256, REP("\xaa", 131),
             STR("Test Using Larger Than Block-Size Key - Hash Key First"),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
            {CB_HMAC_SHA256, REP("\xaa", 131),
             STR("This is a test using a larger than block-size key and a larger than "
                 "block-size data. The key needs to be hashed before being used by the "
                 "HMAC algorithm."),
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
            {CB_HMAC_MD5, REP("k", 63), STR("msg"), "7ecd2748c0a7fec248ab94fe01810ba4"},
            {CB_HMAC_MD5, REP("k", 64), STR("msg"), "7350d7e9ec9d1235174e9ded54edfa8c"},
            {CB_HMAC_MD5, REP("k", 65), STR("msg"), "646873b97bb31948a476260501827daa"},
            {CB_HMAC_SHA256, REP("k", 63), STR("msg"),
             "ac14c28089a16fbb10c53caf1ec03ddf477041407b5eacc3f0478749c34e3dff"},
            {CB_HMAC_SHA256, REP("k", 64), STR("msg"),
             "d62ad25bb128e96ab6ef43464aaf2bb91b5b85f013381e9ba6be747e8d0911b2"},
            {CB_HMAC_SHA256, REP("k", 65), STR("msg"),
             "c65585780e821bd312cfaa440c33cb28d6af6b323d4977ae83934834ce589e38"},
            {CB_HMAC_MD5, STR(""), STR(""), "74e6f7298a9c2d168935f58c001bad88"},
            {CB_HMAC_SHA256, STR(""), STR(""),
             "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                size_t key_len, msg_len, len = cb_hmac_len(cases[i].kind);
                uint8_t *key = expand(&cases[i].key, &key_len);
                uint8_t *msg = expand(&cases[i].msg, &msg_len);
                uint8_t out[33];

                assert_int_equal(len, cases[i].kind == CB_HMAC_MD5 ? 16 : 32);
                memset(out, 0xee, sizeof(out));
                cb_hmac(cases[i].kind, key, key_len, msg, msg_len, out);
                assert_digest(cases[i].kind == CB_HMAC_MD5 ? "hmac-md5" : "hmac-sha256", i, out,
                              len, cases[i].mac);
                assert_int_equal(out[len], 0xee);
                free(key);
                free(msg);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_md5_matches_rfc_1321_and_hashlib),
            cmocka_unit_test(test_hmac_matches_rfc_2202_and_4231),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
