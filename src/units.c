/* Text forms of sizes ("64M"), durations ("0.5") and counts. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Digits with at most one '.', nothing else: no sign, exponent, hex, inf or nan. */
static bool is_plain_decimal(const char *s, size_t len)
{
        bool dot = false, digit = false;

        for (size_t i = 0; i < len; i++) {
                if (isdigit((unsigned char)s[i]))
                        digit = true;
                else if (s[i] == '.' && !dot)
                        dot = true;
                else
                        return false;
        }
        return digit;
}

static int parse_decimal(const char *s, size_t len, double *out)
{
        char buf[64];

        if (len == 0 || len >= sizeof(buf) || !is_plain_decimal(s, len))
                return -1;
        memcpy(buf, s, len);
        buf[len] = '\0';
        errno = 0;
        *out = strtod(buf, NULL);
        return errno || !isfinite(*out) ? -1 : 0;
}

/* Suffix multipliers are binary: K = 1024.  "B", "iB" are optional. */
static int size_multiplier(const char *suffix, uint64_t *mult)
{
        static const char units[] = "KMGT";
        const char *u;

        if (*suffix == '\0' || strcasecmp(suffix, "B") == 0) {
                *mult = 1;
                return 0;
        }
        u = strchr(units, toupper((unsigned char)suffix[0]));
        if (!u)
                return -1;
        if (suffix[1] != '\0' && strcasecmp(suffix + 1, "B") != 0 &&
            strcasecmp(suffix + 1, "iB") != 0)
                return -1;
        *mult = 1ULL << (10 * (u - units + 1));
        return 0;
}

int cb_parse_size(const char *text, uint64_t *out)
{
        size_t num_len = strspn(text, "0123456789.");
        uint64_t mult;
        double value;

        if (parse_decimal(text, num_len, &value) < 0 || size_multiplier(text + num_len, &mult) < 0)
                return -1;
        value *= (double)mult;
        /* 2^53: beyond this a double no longer holds every integer. */
        if (value >= 9007199254740992.0 || value != floor(value))
                return -1;
        *out = (uint64_t)value;
        return 0;
}

int cb_parse_seconds(const char *text, double *out)
{
        return parse_decimal(text, strlen(text), out);
}

int cb_parse_uint(const char *text, uint64_t max, uint64_t *out)
{
        uint64_t v = 0;

        if (*text == '\0')
                return -1;
        for (const char *p = text; *p; p++) {
                if (!isdigit((unsigned char)*p))
                        return -1;
                uint64_t digit = (uint64_t)(*p - '0');

                if (digit > max || v > (max - digit) / 10)
                        return -1;
                v = v * 10 + digit;
        }
        *out = v;
        return 0;
}

double cb_timespec_diff(const struct timespec *later, const struct timespec *earlier)
{
        return (double)(later->tv_sec - earlier->tv_sec) +
               (double)(later->tv_nsec - earlier->tv_nsec) / 1e9;
}
