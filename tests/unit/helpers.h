/* Shared by the unit tests. */
#ifndef CB_TEST_HELPERS_H
#define CB_TEST_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

/*
 * Marks a test that shows a defect not yet fixed.  It is skipped, so that the
 * suite stays green, unless CB_TEST_KNOWN_BUGS is set in the environment.
 */
#define KNOWN_BUG(what)                                                                            \
        do {                                                                                       \
                if (!getenv("CB_TEST_KNOWN_BUGS")) {                                               \
                        print_message("known bug, skipped: %s\n", what);                           \
                        skip();                                                                    \
                }                                                                                  \
        } while (0)

static inline int hex_nibble(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        fail_msg("not a hex digit: '%c'", c);
        return -1;
}

/* Hex text (no separators) into at most cap bytes; returns how many. */
static inline size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
        size_t n = 0;

        for (; hex[0] && hex[1] && n < cap; hex += 2)
                out[n++] = (uint8_t)(hex_nibble(hex[0]) << 4 | hex_nibble(hex[1]));
        return n;
}

/* len bytes as hex into buf, which holds 2 * len + 1 chars; returns buf. */
static inline const char *to_hex(const uint8_t *p, size_t len, char *buf)
{
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < len; i++) {
                buf[2 * i] = digits[p[i] >> 4];
                buf[2 * i + 1] = digits[p[i] & 15];
        }
        buf[2 * len] = '\0';
        return buf;
}

#endif
