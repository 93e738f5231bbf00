/*
 * libFuzzer target: the core's SQL lexer (sql.c): the `?` -> `$n` placeholder rewriter
 * (aj_sql_dollar, aj_sql_dollar_size, aj_sql_dollar_params, aj_sql_count_params: one
 * implementation since 0.9, used by the PostgreSQL and host drivers) and the detection of
 * transaction control in a step's SQL (aj_sql_is_transaction_control, which refuses
 * COMMIT / ROLLBACK / BEGIN inside a step). AJ_FUZZ_MODE picks the check:
 *   sql      structured SQL built from the input (words, bare `?`, '...' and E'...' strings,
 *            "identifiers", line and nested block comments, $$ and $tag$ bodies, each
 *            non-bare token holding a `?`): the rewriter numbers exactly the bare `?`
 *            tokens and leaves every other byte alone (the expected text is built with the
 *            tokens)
 *   size     arbitrary bytes: aj_sql_dollar writes no more than aj_sql_dollar_size says
 *            (the buffer is exactly that big, so ASan sees one byte past it), returns the
 *            count aj_sql_count_params returns, and writes what aj_sql_dollar_params does
 *   control  structured statements: white space, comments and semicolons, then a
 *            keyword in any case (BEGIN, START, COMMIT, END, ABORT, ROLLBACK, ROLLBACK
 *            [WORK|TRANSACTION] TO, PREPARE TRANSACTION, and statements that are not
 *            transaction control); the detection answers as SQLite and PostgreSQL would
 *            run them
 * No crash, no undefined behaviour (ASan+UBSan).
 */
#include "sql.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* --- sql ------------------------------------------------------------------------------ */

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

static int structured(const uint8_t *data, size_t size)
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
    char *out = aj_sql_dollar_params(sql.buf);
    if (!out)
        return 0;
    if (strcmp(out, expected.buf) != 0) {
        fprintf(stderr, "aj_sql_dollar_params rewrote\n  %s\nas\n  %s\nexpected\n  %s\n",
                sql.buf, out, expected.buf);
        abort();
    }
    if (aj_sql_count_params(sql.buf) != (size_t)n) {
        fprintf(stderr, "aj_sql_count_params counted %zu placeholders in\n  %s\nexpected %d\n",
                aj_sql_count_params(sql.buf), sql.buf, n);
        abort();
    }
    free(out);
    return 0;
}

/* --- size ----------------------------------------------------------------------------- */

static int sizes(const uint8_t *data, size_t size)
{
    if (size > 4096 || memchr(data, 0, size))
        return 0;
    char *sql = malloc(size + 1);
    if (!sql)
        return 0;
    memcpy(sql, data, size);
    sql[size] = 0;
    size_t need = aj_sql_dollar_size(sql);
    char *out = malloc(need);
    char *heap = aj_sql_dollar_params(sql);
    if (out && heap) {
        size_t count = aj_sql_dollar(sql, out);
        if (count != aj_sql_count_params(sql)) {
            fprintf(stderr, "aj_sql_dollar counted %zu, aj_sql_count_params %zu\n", count,
                    aj_sql_count_params(sql));
            abort();
        }
        if (strlen(out) + 1 > need || strcmp(out, heap) != 0) {
            fprintf(stderr, "aj_sql_dollar and aj_sql_dollar_params disagree on\n  %s\n", sql);
            abort();
        }
    }
    free(out);
    free(heap);
    free(sql);
    return 0;
}

/* --- control -------------------------------------------------------------------------- */

static const char *const noise[] = {" ", "\n", "\t", ";", " -- note\n", "/* c */",
                                    "/* a /* nested */ b */", "\r\n"};
#define NNOISE (sizeof noise / sizeof noise[0])

/* Statement heads and whether they begin or end the transaction. */
static const struct {
    const char *sql;
    int control;
} heads[] = {
    {"begin", 1},
    {"begin transaction", 1},
    {"begin immediate", 1},
    {"start transaction", 1},
    {"commit", 1},
    {"commit work", 1},
    {"end", 1},
    {"end transaction", 1},
    {"abort", 1},
    {"rollback", 1},
    {"rollback work", 1},
    {"rollback transaction", 1},
    {"prepare transaction 'x'", 1},
    {"commit/**/", 1},
    {"rollback to sp", 0},
    {"rollback to savepoint sp", 0},
    {"rollback transaction to savepoint sp", 0},
    {"rollback work to sp", 0},
    {"savepoint sp", 0},
    {"release savepoint sp", 0},
    {"select 1", 0},
    {"insert into t values ('commit')", 0},
    {"update t set a = 1", 0},
    {"prepare q as select 1", 0},
    {"\"commit\"", 0},
    {"'commit'", 0},
    {"with x as (select 1) select * from x", 0},
};
#define NHEADS (sizeof heads / sizeof heads[0])

static int control(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    text sql = {.len = 0};
    sql.buf[0] = 0;
    size_t i = 0;
    size_t nnoise = data[i++] % 6;
    for (size_t k = 0; k < nnoise && i < size; k++)
        put(&sql, noise[data[i++] % NNOISE]);
    unsigned h = i < size ? data[i++] % NHEADS : 0;
    size_t at = sql.len;
    put(&sql, heads[h].sql);
    /* the keywords in any case */
    for (size_t c = at; c < sql.len && i < size; c++, i++)
        if (data[i] & 1)
            sql.buf[c] = (char)toupper((unsigned char)sql.buf[c]);
    if (i < size && data[i] % 3 == 0)
        put(&sql, ";");
    int got = aj_sql_is_transaction_control(sql.buf);
    if (got != heads[h].control) {
        fprintf(stderr, "aj_sql_is_transaction_control(\"%s\") = %d, expected %d\n", sql.buf,
                got, heads[h].control);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *mode = getenv("AJ_FUZZ_MODE");
    if (!mode || strcmp(mode, "size") == 0)
        return sizes(data, size);
    if (strcmp(mode, "control") == 0)
        return control(data, size);
    return structured(data, size);
}
