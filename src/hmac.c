/*
 * HMAC (RFC 2104) over SHA-256 and MD5, as multiprocessing.connection uses
 * them.  SHA-256 comes from libsodium; MD5 (RFC 1321), which libsodium does
 * not offer, is here only for the HMAC-MD5 of older Python clients.
 * HMAC-MD5 is still a sound MAC: its security does not rest on MD5's
 * collision resistance.
 */
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

#define BLOCK 64

/* ------------------------------------------------------------------ */
/* MD5                                                                */
/* ------------------------------------------------------------------ */

struct md5 {
        uint32_t state[4];
        uint64_t bytes;
        uint8_t block[BLOCK];
};

static const uint8_t MD5_SHIFT[64] = {
    7,  12, 17, 22, 7,  12, 17, 22, 7,  12, 17, 22, 7,  12, 17, 22, 5,  9,  14, 20, 5,  9,
    14, 20, 5,  9,  14, 20, 5,  9,  14, 20, 4,  11, 16, 23, 4,  11, 16, 23, 4,  11, 16, 23,
    4,  11, 16, 23, 6,  10, 15, 21, 6,  10, 15, 21, 6,  10, 15, 21, 6,  10, 15, 21,
};

static uint32_t MD5_K[64];
static pthread_once_t md5_k_once = PTHREAD_ONCE_INIT;

/* K[i] = floor(2^32 * |sin(i + 1)|), as RFC 1321 defines its table. */
static void md5_k_fill(void)
{
        for (int i = 0; i < 64; i++)
                MD5_K[i] = (uint32_t)floor(fabs(sin((double)i + 1)) * 4294967296.0);
}

static uint32_t rotl(uint32_t x, unsigned n)
{
        return (x << n) | (x >> (32 - n));
}

static void md5_compress(struct md5 *m, const uint8_t *p)
{
        uint32_t w[16], a = m->state[0], b = m->state[1], c = m->state[2], d = m->state[3];

        for (int i = 0; i < 16; i++)
                w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                       (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        for (int i = 0; i < 64; i++) {
                uint32_t f, tmp;
                int g;

                if (i < 16) {
                        f = (b & c) | (~b & d);
                        g = i;
                } else if (i < 32) {
                        f = (d & b) | (~d & c);
                        g = (5 * i + 1) % 16;
                } else if (i < 48) {
                        f = b ^ c ^ d;
                        g = (3 * i + 5) % 16;
                } else {
                        f = c ^ (b | ~d);
                        g = (7 * i) % 16;
                }
                tmp = d;
                d = c;
                c = b;
                b = b + rotl(a + f + MD5_K[i] + w[g], MD5_SHIFT[i]);
                a = tmp;
        }
        m->state[0] += a;
        m->state[1] += b;
        m->state[2] += c;
        m->state[3] += d;
        sodium_memzero(w, sizeof(w));
}

static void md5_init(struct md5 *m)
{
        static const uint32_t iv[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};

        pthread_once(&md5_k_once, md5_k_fill);
        memcpy(m->state, iv, sizeof(iv));
        m->bytes = 0;
}

static void md5_update(struct md5 *m, const uint8_t *p, size_t len)
{
        while (len > 0) {
                size_t used = m->bytes % BLOCK, take = BLOCK - used < len ? BLOCK - used : len;

                memcpy(m->block + used, p, take);
                m->bytes += take;
                p += take;
                len -= take;
                if (m->bytes % BLOCK == 0)
                        md5_compress(m, m->block);
        }
}

static void md5_final(struct md5 *m, uint8_t out[16])
{
        uint64_t bits = m->bytes * 8;
        uint8_t pad[BLOCK + 8] = {0x80};
        size_t pad_len = (m->bytes % BLOCK < 56 ? 56 : 120) - m->bytes % BLOCK;

        for (int i = 0; i < 8; i++)
                pad[pad_len + (size_t)i] = (uint8_t)(bits >> (8 * i));
        md5_update(m, pad, pad_len + 8);
        for (int i = 0; i < 16; i++)
                out[i] = (uint8_t)(m->state[i / 4] >> (8 * (i % 4)));
        sodium_memzero(m, sizeof(*m));
}

void cb_md5(const void *data, size_t len, uint8_t out[16])
{
        struct md5 m;

        md5_init(&m);
        md5_update(&m, data, len);
        md5_final(&m, out);
}

/* ------------------------------------------------------------------ */
/* HMAC                                                               */
/* ------------------------------------------------------------------ */

/* The two hashes behind one small interface. */
struct hash {
        size_t digest_len;
        void (*once)(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, uint8_t *out);
};

static void md5_two(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, uint8_t *out)
{
        struct md5 m;

        md5_init(&m);
        md5_update(&m, a, a_len);
        if (b_len)
                md5_update(&m, b, b_len);
        md5_final(&m, out);
}

static void sha256_two(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, uint8_t *out)
{
        crypto_hash_sha256_state s;

        crypto_hash_sha256_init(&s);
        crypto_hash_sha256_update(&s, a, a_len);
        if (b_len)
                crypto_hash_sha256_update(&s, b, b_len);
        crypto_hash_sha256_final(&s, out);
        sodium_memzero(&s, sizeof(s));
}

static const struct hash HASHES[] = {
    [CB_HMAC_MD5] = {16, md5_two},
    [CB_HMAC_SHA256] = {32, sha256_two},
};

size_t cb_hmac_len(enum cb_hmac_kind kind)
{
        return HASHES[kind].digest_len;
}

void cb_hmac(enum cb_hmac_kind kind, const uint8_t *key, size_t key_len, const uint8_t *msg,
             size_t msg_len, uint8_t *out)
{
        const struct hash *h = &HASHES[kind];
        uint8_t k[BLOCK] = {0}, pad[BLOCK], inner[32];

        if (key_len > BLOCK)
                h->once(key, key_len, NULL, 0, k);
        else
                memcpy(k, key, key_len);
        for (int i = 0; i < BLOCK; i++)
                pad[i] = k[i] ^ 0x36;
        h->once(pad, BLOCK, msg, msg_len, inner);
        for (int i = 0; i < BLOCK; i++)
                pad[i] = k[i] ^ 0x5c;
        h->once(pad, BLOCK, inner, h->digest_len, out);
        sodium_memzero(k, sizeof(k));
        sodium_memzero(pad, sizeof(pad));
        sodium_memzero(inner, sizeof(inner));
}

/*
 * Zero the stack below the caller's frame.  The compiler may leave copies
 * of key bytes in stack slots no source-level variable names (spills,
 * callees' temporaries), and every cell is cloned from this process's
 * memory, stack included; only the key's own page is wiped in the child.
 */
__attribute__((noinline)) void cb_wipe_stack(void)
{
        uint8_t area[16384];

        sodium_memzero(area, sizeof(area));
        __asm__ volatile("" : : "r"(area) : "memory");
}
