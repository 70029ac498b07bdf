/* Text forms of sizes, durations and counts (units.c). */
#include "internal.h"
#include "helpers.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

/* 2^53: the first integer a double cannot tell from its successor. */
#define TWO_53 (UINT64_C(1) << 53)

struct size_case {
        const char *text;
        uint64_t want;
};

static void test_parse_size_accepts_numbers_and_binary_suffixes(void **state)
{
        static const struct size_case cases[] = {
            {"0", 0},
            {"1024", 1024},
            {"000064", 64},
            {"1B", 1},
            {"1b", 1},
            {"1K", KiB},
            {"1k", KiB},
            {"1.5K", 1536},
            {"0.25K", 256},
            {"64M", 64 * MiB},
            {"64m", 64 * MiB},
            {"0.5M", 512 * KiB},
            {"2G", 2 * GiB},
            {"2g", 2 * GiB},
            {"1T", TiB},
            {"1t", TiB},
            {"10MB", 10 * MiB},
            {"10mb", 10 * MiB},
            {"10MiB", 10 * MiB},
            {"10mib", 10 * MiB},
            {"10KiB", 10 * KiB},
            {"8191T", 8191 * TiB},
            {"9007199254740991", TWO_53 - 1},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                uint64_t got = UINT64_MAX;
                int rc = cb_parse_size(cases[i].text, &got);

                if (rc != 0 || got != cases[i].want)
                        fail_msg("cb_parse_size(\"%s\"): rc %d, %" PRIu64 ", want %" PRIu64,
                                 cases[i].text, rc, got, cases[i].want);
        }
}

/* Each text must be refused, leaving the output alone. */
static void assert_sizes_refused(const char *const *cases, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                uint64_t got = 42;

                if (cb_parse_size(cases[i], &got) != -1 || got != 42)
                        fail_msg("cb_parse_size(\"%s\") accepted it as %" PRIu64, cases[i], got);
        }
}

static void test_parse_size_refuses_malformed_text(void **state)
{
        static const char *const cases[] = {
            "",     "M",   "B",   "-1",    "+1",   " 1",   "1 ",    "1 M",  "1e3",
            "0x10", "12Q", "inf", "nan",   "INF",  ".",    "1.2.3", "1..5", "1Ki",
            "1iB",  "1MM", "1BB", "1KiBB", "1KBs", "1,5K", "½K",
        };

        (void)state;
        assert_sizes_refused(cases, CB_ARRAY_LEN(cases));
}

static void test_parse_size_refuses_fractional_bytes(void **state)
{
        static const char *const cases[] = {"0.5", "1.5", "1.5B", "0.1K", "0.0000001M"};

        (void)state;
        assert_sizes_refused(cases, CB_ARRAY_LEN(cases));
}

static void test_parse_size_refuses_values_from_2_pow_53(void **state)
{
        static const char *const cases[] = {
            "9007199254740992",
            "9007199254740993",
            "18446744073709551616",
            "8192T",
            "99999999999T",
            /* longer than any number the parser reads */
            "1000000000000000000000000000000000000000000000000000000000000000000000",
        };

        (void)state;
        assert_sizes_refused(cases, CB_ARRAY_LEN(cases));
}

struct seconds_case {
        const char *text;
        double want;
};

static void test_parse_seconds_accepts_plain_decimals(void **state)
{
        static const struct seconds_case cases[] = {
            {"0", 0},  {"1", 1},         {"300", 300},         {"0.5", 0.5},      {".5", 0.5},
            {"5.", 5}, {"0.001", 0.001}, {"2678400", 2678400}, {"007.250", 7.25},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                double got = -1;
                int rc = cb_parse_seconds(cases[i].text, &got);

                if (rc != 0 || got != cases[i].want)
                        fail_msg("cb_parse_seconds(\"%s\"): rc %d, %g, want %g", cases[i].text, rc,
                                 got, cases[i].want);
        }
}

static void test_parse_seconds_refuses_signs_exponents_and_words(void **state)
{
        static const char *const cases[] = {
            "",
            "-1",
            "+1",
            "1e2",
            "1E2",
            "inf",
            "infinity",
            "nan",
            "NAN",
            ".",
            "1.2.3",
            "1s",
            " 1",
            "1 ",
            "0x1",
            "1,5",
            "--1",
            "5m",
            /* longer than any number the parser reads */
            "0.000000000000000000000000000000000000000000000000000000000000000001",
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                double got = 42;

                if (cb_parse_seconds(cases[i], &got) != -1)
                        fail_msg("cb_parse_seconds(\"%s\") accepted it as %g", cases[i], got);
                assert_true(got == 42);
        }
}

struct uint_case {
        const char *text;
        uint64_t max;
        uint64_t want;
};

static void test_parse_uint_accepts_digits_up_to_max(void **state)
{
        static const struct uint_case cases[] = {
            {"0", 0, 0},
            {"0", 10, 0},
            {"10", 10, 10},
            {"007", 10, 7},
            {"9", 9, 9},
            {"4194304", 4194304, 4194304},
            {"4294967294", 4294967294, 4294967294},
            {"18446744073709551615", UINT64_MAX, UINT64_MAX},
        };

        (void)state;
        for (size_t i = 0; i < CB_ARRAY_LEN(cases); i++) {
                uint64_t got = 42;
                int rc = cb_parse_uint(cases[i].text, cases[i].max, &got);

                if (rc != 0 || got != cases[i].want)
                        fail_msg("cb_parse_uint(\"%s\", %" PRIu64 "): rc %d, %" PRIu64,
                                 cases[i].text, cases[i].max, rc, got);
        }
}

/* Each text must be refused under its max, leaving the output alone. */
static void assert_uints_refused(const struct uint_case *cases, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                uint64_t got = 42;

                if (cb_parse_uint(cases[i].text, cases[i].max, &got) != -1 || got != 42)
                        fail_msg("cb_parse_uint(\"%s\", %" PRIu64 ") accepted it as %" PRIu64,
                                 cases[i].text, cases[i].max, got);
        }
}

static void test_parse_uint_refuses_values_above_max(void **state)
{
        static const struct uint_case cases[] = {
            {"11", 10, 0},
            {"100", 10, 0},
            {"4194305", 4194304, 0},
            {"4294967295", 4294967294, 0},
            {"18446744073709551616", UINT64_MAX, 0},
            {"99999999999999999999", UINT64_MAX, 0},
            {"184467440737095516150", UINT64_MAX, 0},
        };

        (void)state;
        assert_uints_refused(cases, CB_ARRAY_LEN(cases));
}

static void test_parse_uint_refuses_a_single_digit_above_a_small_max(void **state)
{
        static const struct uint_case cases[] = {{"5", 3, 0}, {"1", 0, 0}, {"9", 8, 0}};

        (void)state;
        assert_uints_refused(cases, CB_ARRAY_LEN(cases));
}

static void test_parse_uint_refuses_anything_but_digits(void **state)
{
        static const struct uint_case cases[] = {
            {"", UINT64_MAX, 0},    {"-1", UINT64_MAX, 0},  {"+1", UINT64_MAX, 0},
            {" 1", UINT64_MAX, 0},  {"1 ", UINT64_MAX, 0},  {"1.0", UINT64_MAX, 0},
            {"0x1", UINT64_MAX, 0}, {"1e3", UINT64_MAX, 0}, {"\xc2\xbd", UINT64_MAX, 0},
        };

        (void)state;
        assert_uints_refused(cases, CB_ARRAY_LEN(cases));
}

static void test_timespec_diff_borrows_nanoseconds(void **state)
{
        struct timespec earlier = {.tv_sec = 10, .tv_nsec = 900000000};
        struct timespec later = {.tv_sec = 12, .tv_nsec = 100000000};

        (void)state;
        assert_true(fabs(cb_timespec_diff(&later, &earlier) - 1.2) < 1e-9);
        assert_true(fabs(cb_timespec_diff(&earlier, &later) + 1.2) < 1e-9);
        assert_true(cb_timespec_diff(&later, &later) == 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_size_accepts_numbers_and_binary_suffixes),
            cmocka_unit_test(test_parse_size_refuses_malformed_text),
            cmocka_unit_test(test_parse_size_refuses_fractional_bytes),
            cmocka_unit_test(test_parse_size_refuses_values_from_2_pow_53),
            cmocka_unit_test(test_parse_seconds_accepts_plain_decimals),
            cmocka_unit_test(test_parse_seconds_refuses_signs_exponents_and_words),
            cmocka_unit_test(test_parse_uint_accepts_digits_up_to_max),
            cmocka_unit_test(test_parse_uint_refuses_values_above_max),
            cmocka_unit_test(test_parse_uint_refuses_a_single_digit_above_a_small_max),
            cmocka_unit_test(test_parse_uint_refuses_anything_but_digits),
            cmocka_unit_test(test_timespec_diff_borrows_nanoseconds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
