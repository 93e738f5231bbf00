/*
 * libFuzzer target: `?` to `$n` placeholder rewriting. The core has two copies:
 * aj_sql_dollar_params (sql.c, used by the host driver) and rewrite_placeholders
 * (driver_pg.c, static: this file includes driver_pg.c to reach it). AJ_FUZZ_REWRITER picks
 * the check:
 *   sql, pg  structured SQL built from the input (words, bare `?`, '...' and E'...' strings,
 *            "identifiers", line and nested block comments, $$ and $tag$ bodies, each non-bare
 *            token holding a `?`): the rewriter must number exactly the bare `?` tokens and
 *            leave every other byte alone (the expected text is built with the tokens)
 *   agree    arbitrary bytes: both copies must produce the same text
 */
#include "../../../core/src/driver_pg.c"
#include "sql.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *pg_rewrite(const char *sql)
{
    size_t count = rewrite_placeholders(sql, NULL);
    char *out = malloc(strlen(sql) + 20 * count + 1);
    if (out)
        rewrite_placeholders(sql, out);
    return out;
}

typedef struct text {
    char buf[8192];
    size_t len;
} text;

static void put(text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n < sizeof t->buf) {
        memcpy(t->buf + t->len, s, n);
        t->len += n;
        t->buf[t->len] = 0;
    }
}

static const char *const tokens[] = {
    " col ",                /* 0 a word */
    "?",                    /* 1 a placeholder */
    " 'it''s ? here' ",     /* 2 a string with a doubled quote */
    " E'a\\'? b' ",         /* 3 an escape string with an escaped quote */
    " \"odd?name\" ",       /* 4 a quoted identifier */
    " -- is ? a comment\n", /* 5 a line comment */
    " /* a /* ? */ b */ ",  /* 6 nested block comments */
    " $$ body ? $$ ",       /* 7 a dollar-quoted body */
    " $fn$ x ? $fn$ ",      /* 8 a tagged dollar-quoted body */
    " x<>? ",               /* 9 an operator next to a placeholder */
};
#define NTOKENS (sizeof tokens / sizeof tokens[0])

static int structured(const uint8_t *data, size_t size, int pg)
{
    text sql = {.len = 0}, expected = {.len = 0};
    sql.buf[0] = expected.buf[0] = 0;
    int n = 0;
    for (size_t i = 0; i < size && i < 200; i++) {
        unsigned t = data[i] % NTOKENS;
        put(&sql, tokens[t]);
        if (t == 1 || t == 9) {
            char dollar[32];
            snprintf(dollar, sizeof dollar, t == 1 ? "$%d" : " x<>$%d ", ++n);
            put(&expected, dollar);
        } else {
            put(&expected, tokens[t]);
        }
    }
    char *out = pg ? pg_rewrite(sql.buf) : aj_sql_dollar_params(sql.buf);
    if (!out)
        return 0;
    if (strcmp(out, expected.buf) != 0) {
        fprintf(stderr, "%s rewrote\n  %s\nas\n  %s\nexpected\n  %s\n",
                pg ? "rewrite_placeholders (driver_pg.c)" : "aj_sql_dollar_params (sql.c)",
                sql.buf, out, expected.buf);
        abort();
    }
    free(out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *mode = getenv("AJ_FUZZ_REWRITER");
    if (!mode || strcmp(mode, "agree") == 0) {
        if (size > 4096 || memchr(data, 0, size))
            return 0;
        char *sql = malloc(size + 1);
        if (!sql)
            return 0;
        memcpy(sql, data, size);
        sql[size] = 0;
        char *a = aj_sql_dollar_params(sql), *b = pg_rewrite(sql);
        if (a && b && strcmp(a, b) != 0) {
            fprintf(stderr, "the two rewriters disagree on\n  %s\nsql.c:       %s\ndriver_pg.c: %s\n",
                    sql, a, b);
            abort();
        }
        free(a);
        free(b);
        free(sql);
        return 0;
    }
    return structured(data, size, strcmp(mode, "pg") == 0);
}
