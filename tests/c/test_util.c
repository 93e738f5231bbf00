/* Internal helpers whose output the databases read back. */
#include "harness.h"
#include "tests.h"
#include "error.h"
#include "rows.h"
#include "sql.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void libc_format(int64_t us, char out[64])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 64, "%04d-%02d-%02d %02d:%02d:%02d.%06ld", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* aj_format_time computes the calendar itself: it must agree with gmtime_r everywhere in
 * 0001..9999, at the edges of days, months, leap years and centuries, and round-trip
 * through aj_parse_time. */
void test_format_time_matches_libc(void **state)
{
    (void)state;
    const int64_t min = (int64_t)-62135596800 * 1000000;
    const int64_t max = (int64_t)253402300799 * 1000000 + 999999;
    int64_t fixed[] = {0, -1, 1, 999999, 1000000, -1000000, 86399999999, 86400000000,
                       951782400000000 /* 2000-02-29 */, 951868800000000 - 1,
                       4107542400000000 /* 2100-03-01 */, -2208988800000000 /* 1900-01-01 */,
                       -12219292800000000 /* 1582-10-15 */, min, min + 1, max, max - 1};
    char got[32], want[64];
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        aj_format_time(fixed[i], got);
        libc_format(fixed[i], want);
        assert_string_equal(got, want);
        int64_t back = 0;
        assert_int_equal(aj_parse_time(got, &back), 0);
        assert_true(back == fixed[i]);
    }
    /* every day of 0001..9999 at a varying time of day */
    uint64_t x = 88172645463325252ull;
    for (int64_t day = min / 86400000000; day <= max / 86400000000; day++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t us = day * 86400000000 + (int64_t)(x % 86400000000ull);
        if (us < min || us > max)
            continue;
        aj_format_time(us, got);
        libc_format(us, want);
        if (strcmp(got, want) != 0)
            fail_msg("%lld: %s, libc says %s", (long long)us, got, want);
    }
    /* out of range clamps to the edges */
    aj_format_time(INT64_MIN, got);
    assert_string_equal(got, "0001-01-01 00:00:00.000000");
    aj_format_time(INT64_MAX, got);
    assert_string_equal(got, "9999-12-31 23:59:59.999999");
}

/* A statement whose result the in-process SQLite driver makes up must lose its RETURNING
 * clause in the lean expansion, and keep it everywhere else (the host's SQLite,
 * PostgreSQL); @now reads acidic_job_now() only in the lean expansion. */
void test_lean_statements(void **state)
{
    (void)state;
    for (int i = 0; i < AJ_Q_COUNT; i++) {
        char *lean = NULL, *host = NULL, *pg = NULL;
        unsigned shape = AJ_SHAPE_KC | AJ_SHAPE_KU | AJ_SHAPE_SC | AJ_SHAPE_SU;
        assert_int_equal(aj_sql_expand(aj_sql_template((aj_stmt)i), AJ_DIALECT_SQLITE,
                                       shape | AJ_SQL_LEAN, &lean), 0);
        assert_int_equal(aj_sql_expand(aj_sql_template((aj_stmt)i), AJ_DIALECT_SQLITE, shape,
                                       &host), 0);
        assert_int_equal(aj_sql_expand(aj_sql_template((aj_stmt)i), AJ_DIALECT_POSTGRES, shape,
                                       &pg), 0);
        if (aj_sql_result((aj_stmt)i) != AJ_RESULT_RETURNED) {
            if (strstr(lean, "RETURNING"))
                fail_msg("statement %d keeps RETURNING for the lean driver: %s", i, lean);
            if (!strstr(host, "RETURNING") || !strstr(pg, "RETURNING"))
                fail_msg("statement %d lost RETURNING outside the lean driver", i);
        } else {
            assert_int_equal(strstr(lean, "RETURNING") != NULL, strstr(host, "RETURNING") != NULL);
        }
        assert_null(strstr(lean, "strftime"));
        assert_null(strstr(host, "acidic_job_now"));
        assert_null(strstr(pg, "acidic_job_now"));
        free(lean);
        free(host);
        free(pg);
    }
}

/* Zero-cell rows: a host's aj_host_row refuses them (no SQL row has no column); the
 * core's own row store takes one without pointing into a cells array it has not
 * allocated (UBSan: a zero offset applied to NULL, found by tests/reliability's fuzzer). */
void test_rows_without_cells(void **state)
{
    (void)state;
    aj_rows r = {0};
    assert_int_equal(aj_host_row((aj_host_result *)&r, NULL, 0), AJ_EINVALID);
    assert_int_equal(r.nrows, 0);
    assert_int_equal(aj_rows_append(&r, NULL, 0), AJ_OK);
    assert_int_equal(r.nrows, 1);
    aj_value one = {AJ_INT, 1, NULL, 0};
    assert_int_not_equal(aj_rows_append(&r, &one, 1), AJ_OK); /* rows of one width */
    aj_rows_clear(&r);
}

/* A short secret is replaced by the longer "***": a message that fills its buffer grows
 * past it, and the last replacements have no room for the whole mark. 0.9.0 computed a
 * negative length there (found by tests/reliability's redaction fuzzer: memmove of
 * SIZE_MAX bytes). Every occurrence is gone, the text stays within the buffer. */
void test_scrub_in_a_full_buffer(void **state)
{
    (void)state;
    const char *text = "h h h h \"h\" h h h h h h h h";
    for (size_t cap = 1; cap <= strlen(text) + 4; cap++) {
        char *msg = malloc(cap); /* exactly cap bytes: ASan sees a byte past them */
        assert_non_null(msg);
        size_t n = cap - 1 < strlen(text) ? cap - 1 : strlen(text);
        memcpy(msg, text, n);
        msg[n] = '\0';
        aj_scrub_conninfo(msg, cap, "host=/tmp password=h");
        assert_true(strlen(msg) < cap);
        assert_null(strchr(msg, 'h'));
        free(msg);
    }
}

/* aj_redact_url, on forms where a password-like key stands where libpq reads something
 * else (found by tests/reliability's redaction fuzzer): the password libpq reads is
 * hidden. */
void test_redact_keys_inside_values(void **state)
{
    (void)state;
    struct { const char *conninfo, *secret; } cases[] = {
        /* "0pwd='-\th" is the host (an unquoted value), then comes the password */
        {"host=0pwd='-\\th password='Secret9 x=e' dbname=x", "Secret9"},
        {"host=xpass='a password=Secret9 dbname=x", "Secret9"},
        /* the spans of a URI and of a key, found out of order */
        {"passwd='abcdefgh' postgresql://x:Secret9x@h:1/db", "Secret9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        aj_redact_url(cases[i].conninfo, out, sizeof out);
        if (strstr(out, cases[i].secret))
            fail_msg("\"%s\" shows in the redaction of %s: %s", cases[i].secret,
                     cases[i].conninfo, out);
    }
}
