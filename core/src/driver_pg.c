/*
 * The PostgreSQL driver (libpq).
 *
 * Round trips are what a per-step transaction pays for on PostgreSQL, so every exec is
 * one pipeline (libpq pipeline mode): an optional BEGIN, the PREPARE of a statement the
 * session has not seen yet, the statement itself and an optional COMMIT go out together
 * and cost one network round trip. Only a failure costs a second one (the ROLLBACK).
 * The exception is an ad-hoc statement without parameters or flags: it takes the simple
 * protocol, which accepts several statements at once (schema migrations).
 *
 * Prepared statements are named "aj_<slot>_<hash of the SQL text>". The hash makes a
 * name mean one text only, so a name already present in the session (a previous store
 * on the same borrowed connection, another copy of the core) is simply reused.
 *
 * Borrowed connections belong to the application: no BEGIN/COMMIT, no notice processor,
 * nothing deallocated on close. The application may drop our prepared statements
 * (DISCARD ALL, DEALLOCATE, a reconnect): a new backend PID is noticed before the next
 * statement, and the session's aj_ statements are listed once per session. A statement
 * that vanished anyway fails with SQLSTATE 26000; when no transaction was open around
 * the call it is re-prepared and run again, inside a transaction the server has already
 * aborted it and the error is reported.
 *
 * Owned connections reconnect in ensure_connected (PQreset) when the server went away,
 * and a child after fork() closes its copy without a word to the server.
 */
/* O_CLOEXEC and friends are POSIX.1-2008, outside strict C11. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "driver.h"
#include "error.h"
#include "rows.h"

#include <libpq-fe.h>

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AJ_PG_MAGIC 0x616a7067u /* "ajpg": tells our struct from another driver's */
#define AJ_PG_NAME_LEN 32       /* "aj_" + slot + "_" + 16 hex digits + NUL fits */
#define AJ_PG_MAX_PARAMS 65535  /* the protocol's limit */

/* OIDs of the built-in types returned as AJ_INT (pg_type.h is a server header). */
enum { OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23 };

typedef struct pg_slot {
    uint64_t hash;              /* of the SQL text `name` and `nph` were computed from */
    char name[AJ_PG_NAME_LEN];  /* server-side prepared statement name; "" when unused */
    size_t nph;                 /* number of `?` placeholders */
    int prepared;               /* the current session holds `name` */
} pg_slot;

typedef struct aj_pg {
    uint32_t magic;
    PGconn *pg;
    int owned;
    int session_pid;  /* backend PID that `slots` and `known` describe */
    int need_sync;    /* list the session's aj_ statements before the next use */
    pg_slot slots[AJ_SQL_SLOTS];
    char (*known)[AJ_PG_NAME_LEN]; /* aj_ statement names the session holds */
    size_t nknown, known_cap;
    /* Scratch reused across calls, so a steady-state exec does not allocate. */
    char *buf;
    size_t buf_cap;
    const char **values;
    size_t values_cap;
    aj_value *cells;
    size_t cells_cap;
} aj_pg;

/* One exec, as the pipeline sends it. */
typedef struct pg_call {
    const char *begin;   /* "BEGIN ..." or NULL */
    int commit;          /* COMMIT after the statement */
    pg_slot *slot;       /* prepared statement, or NULL for an ad-hoc one */
    const char *text;    /* $n text: ad-hoc statement or PREPARE of `slot`; else NULL */
    int nparams;
} pg_call;

enum pg_step { STEP_BEGIN, STEP_PREPARE, STEP_STMT, STEP_COMMIT };
static const char *const step_names[] = {"BEGIN", "PREPARE", "statement", "COMMIT"};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    *p = q;
    *cap = n;
    return 0;
}

static int first_line_len(const char *msg)
{
    size_t n = strcspn(msg, "\r\n");
    return n > 4000 ? 4000 : (int)n;
}

static int in_tx_status(PGTransactionStatusType st)
{
    return st == PQTRANS_INTRANS || st == PQTRANS_INERROR;
}

static int has_state(const PGresult *res, const char *sqlstate)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s && strcmp(s, sqlstate) == 0;
}

/* Report a failed result (or, with res NULL, the connection's last error). */
static int pg_fail(aj_pg *c, const PGresult *res, const char *what)
{
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg || !*msg)
        msg = res ? PQresultErrorMessage(res) : "";
    if (!*msg)
        msg = PQerrorMessage(c->pg);
    if (!*msg)
        msg = "unknown error";
    if (PQstatus(c->pg) == CONNECTION_BAD)
        return aj_error_set(AJ_EDATABASE, "connection lost: %.*s", first_line_len(msg), msg);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int conflict = state && (!strcmp(state, "40001") || !strcmp(state, "40P01"));
    return aj_error_set(conflict ? AJ_ECONFLICT : AJ_EDATABASE, "PostgreSQL %s failed: %.*s%s%s%s",
                        what, first_line_len(msg), msg, state ? " (SQLSTATE " : "",
                        state ? state : "", state ? ")" : "");
}

/* Owned connections only: the core's DDL (IF NOT EXISTS) raises NOTICEs that libpq
 * would print on stderr. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* ------------------------------------------------------------------------ */
/* `?` placeholders to `$n`                                                  */
/* ------------------------------------------------------------------------ */

static int ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || (unsigned char)ch >= 0x80;
}

/* When a literal, quoted identifier or comment starts at s[i], the index just past
 * it (the end of the text when it is unterminated: the server will say so); else i. */
static size_t skip_quoted(const char *s, size_t i)
{
    size_t n = strlen(s);
    if (s[i] == '\'') {
        /* E'...' strings take backslash escapes; '' is a quote in every string. */
        int escapes = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
                      (i < 2 || !ident_char(s[i - 2]));
        for (size_t j = i + 1; j < n; j++) {
            if (escapes && s[j] == '\\' && j + 1 < n)
                j++;
            else if (s[j] == '\'' && s[j + 1] == '\'')
                j++;
            else if (s[j] == '\'')
                return j + 1;
        }
        return n;
    }
    if (s[i] == '"') {
        const char *end = strchr(s + i + 1, '"'); /* "" inside reads as two identifiers */
        return end ? (size_t)(end - s) + 1 : n;
    }
    if (s[i] == '-' && s[i + 1] == '-') {
        const char *end = strchr(s + i, '\n');
        return end ? (size_t)(end - s) + 1 : n;
    }
    if (s[i] == '/' && s[i + 1] == '*') { /* block comments nest in PostgreSQL */
        int depth = 0;
        for (size_t j = i; j < n; j++) {
            if (s[j] == '/' && s[j + 1] == '*') {
                depth++;
                j++;
            } else if (s[j] == '*' && s[j + 1] == '/') {
                j++;
                if (--depth == 0)
                    return j + 1;
            }
        }
        return n;
    }
    if (s[i] == '$' && (i == 0 || !ident_char(s[i - 1]))) { /* $tag$ ... $tag$ */
        size_t j = i + 1;
        if (ident_char(s[j]) && !(s[j] >= '0' && s[j] <= '9'))
            while (ident_char(s[j]))
                j++;
        if (s[j] != '$')
            return i; /* $1 or a lone $ */
        size_t taglen = j + 1 - i;
        for (size_t k = j + 1; k + taglen <= n; k++)
            if (strncmp(s + k, s + i, taglen) == 0)
                return k + taglen;
        return n;
    }
    return i;
}

/* Count the `?` placeholders of `sql`; when `out` is not NULL also write the `$n`
 * form there (it needs strlen(sql) + 20 * count + 1 bytes). */
static size_t rewrite_placeholders(const char *sql, char *out)
{
    size_t count = 0, o = 0;
    for (size_t i = 0; sql[i];) {
        size_t end = skip_quoted(sql, i);
        if (end != i) {
            if (out)
                memcpy(out + o, sql + i, end - i);
            o += end - i;
            i = end;
        } else if (sql[i] == '?') {
            count++;
            if (out)
                o += (size_t)sprintf(out + o, "$%zu", count);
            i++;
        } else {
            if (out)
                out[o] = sql[i];
            o++;
            i++;
        }
    }
    if (out)
        out[o] = '\0';
    return count;
}

/* A malloc'd `$n` copy of `sql`. */
static int rewritten(const char *sql, char **out)
{
    size_t count = rewrite_placeholders(sql, NULL);
    char *text = malloc(strlen(sql) + 20 * count + 1);
    if (!text)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    rewrite_placeholders(sql, text);
    *out = text;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Prepared statement bookkeeping                                            */
/* ------------------------------------------------------------------------ */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int is_known(const aj_pg *c, const char *name)
{
    for (size_t i = 0; i < c->nknown; i++)
        if (strcmp(c->known[i], name) == 0)
            return 1;
    return 0;
}

static int add_known(aj_pg *c, const char *name)
{
    if (is_known(c, name))
        return 0;
    int rc = grow((void **)&c->known, &c->known_cap, c->nknown + 1, sizeof *c->known);
    if (rc)
        return rc;
    snprintf(c->known[c->nknown++], AJ_PG_NAME_LEN, "%s", name);
    return 0;
}

static void forget_prepared(aj_pg *c)
{
    for (int i = 0; i < AJ_SQL_SLOTS; i++)
        c->slots[i].prepared = 0;
    c->nknown = 0;
}

/* The slot of `sql`, with its name and placeholder count computed for this text.
 * Hashing on every call (nanoseconds next to a round trip) keeps the cache keyed by
 * content, whatever the caller does with its buffers. */
static pg_slot *slot_for(aj_pg *c, const aj_sql *sql)
{
    pg_slot *s = &c->slots[sql->slot];
    uint64_t hash = fnv1a(sql->text);
    if (!s->name[0] || s->hash != hash) {
        snprintf(s->name, sizeof s->name, "aj_%d_%016" PRIx64, sql->slot, hash);
        s->nph = rewrite_placeholders(sql->text, NULL);
        s->hash = hash;
        s->prepared = is_known(c, s->name);
    }
    return s;
}

/* Learn which aj_ statements the session already holds (a borrowed connection may
 * have been used by an earlier store, or the application reconnected it). */
static int sync_prepared(aj_pg *c)
{
    PGresult *res = PQexec(c->pg, "SELECT name FROM pg_catalog.pg_prepared_statements "
                                  "WHERE left(name, 3) = 'aj_'");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = pg_fail(c, res, "listing prepared statements");
        PQclear(res);
        return rc;
    }
    forget_prepared(c);
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && !rc; r++)
        if (PQgetlength(res, r, 0) < AJ_PG_NAME_LEN)
            rc = add_known(c, PQgetvalue(res, r, 0));
    PQclear(res);
    if (rc)
        return rc;
    for (int i = 0; i < AJ_SQL_SLOTS; i++)
        if (c->slots[i].name[0])
            c->slots[i].prepared = is_known(c, c->slots[i].name);
    c->need_sync = 0;
    return 0;
}

/* A new backend behind the same PGconn (the application reset it) has none of our
 * statements. */
static int check_session(aj_pg *c)
{
    int pid = PQbackendPID(c->pg);
    if (pid != c->session_pid) {
        forget_prepared(c);
        c->session_pid = pid;
        c->need_sync = 1;
    }
    return c->need_sync ? sync_prepared(c) : 0;
}

/* ------------------------------------------------------------------------ */
/* Parameters and results                                                    */
/* ------------------------------------------------------------------------ */

/* Text-format parameter values in c->values (NULL for SQL NULL), the server infers
 * their types from the statement. */
static int bind_params(aj_pg *c, const aj_value *params, size_t n)
{
    size_t need = 1;
    for (size_t i = 0; i < n; i++) {
        const aj_value *v = &params[i];
        if (v->type == AJ_INT)
            need += 21; /* "-9223372036854775808" and NUL */
        else if (v->type == AJ_TEXT) {
            if (!v->text && v->len)
                return aj_error_set(AJ_EINVALID, "parameter %zu: NULL text", i + 1);
            if (v->len && memchr(v->text, '\0', v->len))
                return aj_error_set(AJ_EINVALID, "parameter %zu: text contains a NUL byte",
                                    i + 1);
            need += v->len + 1;
        } else if (v->type != AJ_NULL)
            return aj_error_set(AJ_EINVALID, "parameter %zu: unknown type %d", i + 1, v->type);
    }
    int rc = grow((void **)&c->buf, &c->buf_cap, need, 1);
    if (!rc)
        rc = grow((void **)&c->values, &c->values_cap, n ? n : 1, sizeof *c->values);
    if (rc)
        return rc;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const aj_value *v = &params[i];
        char *dst = c->buf + off;
        if (v->type == AJ_NULL) {
            c->values[i] = NULL;
            continue;
        }
        if (v->type == AJ_INT)
            off += (size_t)snprintf(dst, 21, "%" PRId64, v->integer) + 1;
        else {
            if (v->len)
                memcpy(dst, v->text, v->len);
            dst[v->len] = '\0';
            off += v->len + 1;
        }
        c->values[i] = dst;
    }
    return 0;
}

/* Integers and booleans come back as AJ_INT (as SQLite returns them), the rest as
 * AJ_TEXT, SQL NULL as AJ_NULL. */
static aj_value cell_of(const PGresult *res, int r, int f)
{
    aj_value v = {AJ_NULL, 0, NULL, 0};
    if (PQgetisnull(res, r, f))
        return v;
    const char *text = PQgetvalue(res, r, f);
    Oid type = PQftype(res, f);
    if (type == OID_INT8 || type == OID_INT4 || type == OID_INT2) {
        v.type = AJ_INT;
        v.integer = strtoll(text, NULL, 10);
    } else if (type == OID_BOOL) {
        v.type = AJ_INT;
        v.integer = text[0] == 't';
    } else {
        v.type = AJ_TEXT;
        v.text = text;
        v.len = (size_t)PQgetlength(res, r, f);
    }
    return v;
}

static int copy_result(aj_pg *c, const PGresult *res, aj_rows *rows, int64_t *changes)
{
    if (changes) {
        const char *n = PQcmdTuples((PGresult *)res);
        *changes = *n ? strtoll(n, NULL, 10) : 0;
    }
    if (!rows)
        return 0;
    aj_rows_reset(rows);
    int nf = PQnfields(res), nt = PQntuples(res);
    if (nf == 0)
        return 0;
    int rc = grow((void **)&c->cells, &c->cells_cap, (size_t)nf, sizeof *c->cells);
    for (int r = 0; r < nt && !rc; r++) {
        for (int f = 0; f < nf; f++)
            c->cells[f] = cell_of(res, r, f);
        rc = aj_rows_append(rows, c->cells, (size_t)nf);
    }
    if (rc)
        return rc;
    rows->ncols = (size_t)nf; /* also when no row came back */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Executing                                                                 */
/* ------------------------------------------------------------------------ */

/* Best effort: after a failure with transaction flags, leave no transaction open. */
static void rollback_quietly(aj_pg *c)
{
    if (PQstatus(c->pg) == CONNECTION_OK && in_tx_status(PQtransactionStatus(c->pg)))
        PQclear(PQexec(c->pg, "ROLLBACK"));
}

static int send_step(aj_pg *c, const pg_call *call, enum pg_step step)
{
    const char *const *values = c->values;
    switch (step) {
    case STEP_BEGIN:
        return PQsendQueryParams(c->pg, call->begin, 0, NULL, NULL, NULL, NULL, 0);
    case STEP_PREPARE:
        return PQsendPrepare(c->pg, call->slot->name, call->text, call->nparams, NULL);
    case STEP_STMT:
        if (call->slot)
            return PQsendQueryPrepared(c->pg, call->slot->name, call->nparams, values, NULL,
                                       NULL, 0);
        return PQsendQueryParams(c->pg, call->text, call->nparams, NULL, values, NULL, NULL, 0);
    case STEP_COMMIT:
        return PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    }
    return 0;
}

/* Did `res` (the result of `step`) fail? A COMMIT of an aborted transaction succeeds
 * on the wire but reports ROLLBACK. */
static int step_failed(const PGresult *res, enum pg_step step)
{
    ExecStatusType st = PQresultStatus(res);
    if (step == STEP_COMMIT)
        return st != PGRES_COMMAND_OK || strcmp(PQcmdStatus((PGresult *)res), "COMMIT") != 0;
    return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY;
}

/* Read the results of `nsent` pipelined steps and the sync point, and leave pipeline
 * mode. The statement's result goes to *stmt_res, the first failure to *err_res (with
 * its step in *err_step); the caller clears both. *prepared tells whether a PREPARE
 * step succeeded: the statement then exists even when a later step failed, because
 * prepared statements are not transactional. */
static void read_pipeline(aj_pg *c, const enum pg_step *steps, int nsent, PGresult **stmt_res,
                          PGresult **err_res, enum pg_step *err_step, int *prepared)
{
    for (int k = 0; k < nsent && PQstatus(c->pg) == CONNECTION_OK; k++) {
        PGresult *res = PQgetResult(c->pg);
        if (!res)
            break;
        int skipped = PQresultStatus(res) == PGRES_PIPELINE_ABORTED; /* after a failure */
        int failed = !skipped && step_failed(res, steps[k]);
        if (failed && !*err_res) {
            *err_res = res;
            *err_step = steps[k];
        } else if (!skipped && !failed && steps[k] == STEP_STMT) {
            *stmt_res = res;
        } else {
            *prepared |= !skipped && !failed && steps[k] == STEP_PREPARE;
            PQclear(res);
        }
        while ((res = PQgetResult(c->pg))) /* each step's results end with NULL */
            PQclear(res);
    }
    /* Up to the sync point; a lost connection ends the loop with NULL. */
    PGresult *res;
    while (PQstatus(c->pg) == CONNECTION_OK && (res = PQgetResult(c->pg))) {
        int sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
        PQclear(res);
        if (sync)
            break;
    }
    PQexitPipelineMode(c->pg);
}

/* Send the call as one pipeline and read it back. *stale is set when the failure was
 * ours: the session no longer (or already) held a prepared statement. */
static int run_pipeline(aj_pg *c, const pg_call *call, aj_rows *rows, int64_t *changes,
                        int *stale)
{
    enum pg_step steps[4];
    int nsteps = 0, nsent = 0;
    if (call->begin)
        steps[nsteps++] = STEP_BEGIN;
    if (call->slot && !call->slot->prepared)
        steps[nsteps++] = STEP_PREPARE;
    steps[nsteps++] = STEP_STMT;
    if (call->commit)
        steps[nsteps++] = STEP_COMMIT;

    if (!PQenterPipelineMode(c->pg))
        return pg_fail(c, NULL, "entering pipeline mode");
    int sent_all = 1;
    while (nsent < nsteps && (sent_all = send_step(c, call, steps[nsent])))
        nsent++;
    if (sent_all)
        sent_all = PQpipelineSync(c->pg);
    else if (PQstatus(c->pg) == CONNECTION_OK)
        PQpipelineSync(c->pg); /* close what was queued so that it can be read back */

    PGresult *stmt_res = NULL, *err_res = NULL;
    enum pg_step err_step = STEP_STMT;
    int prepared = 0;
    read_pipeline(c, steps, nsent, &stmt_res, &err_res, &err_step, &prepared);

    int rc = 0;
    if (prepared) {
        call->slot->prepared = 1;
        rc = add_known(c, call->slot->name);
    }
    if (err_res) {
        *stale = (err_step == STEP_PREPARE && has_state(err_res, "42P05")) ||
                 (err_step == STEP_STMT && call->slot && has_state(err_res, "26000"));
        rc = pg_fail(c, err_res, step_names[err_step]);
    } else if (!sent_all || !stmt_res) {
        rc = pg_fail(c, NULL, "statement");
    } else if (!rc) {
        rc = copy_result(c, stmt_res, rows, changes);
    }
    PQclear(stmt_res);
    PQclear(err_res);
    if (rc && (call->begin || call->commit))
        rollback_quietly(c);
    return rc;
}

/* COPY ... FROM STDIN / TO STDOUT in application SQL: end it, so that the session is
 * usable again, and refuse. */
static int refuse_copy(aj_pg *c, ExecStatusType st)
{
    if (st == PGRES_COPY_IN) {
        PQputCopyEnd(c->pg, "COPY is not supported by acidic_job");
    } else {
        char *data;
        while (PQgetCopyData(c->pg, &data, 0) > 0)
            PQfreemem(data);
    }
    PGresult *res;
    while ((res = PQgetResult(c->pg)))
        PQclear(res);
    return aj_error_set(AJ_EINVALID, "PostgreSQL statement failed: COPY FROM STDIN / TO "
                                     "STDOUT is not supported");
}

/* An ad-hoc statement without parameters goes through the simple protocol, which
 * also takes several `;`-separated statements (migrations). */
static int exec_simple(aj_pg *c, const char *text, aj_rows *rows, int64_t *changes)
{
    PGresult *res = PQexec(c->pg, text);
    ExecStatusType st = PQresultStatus(res);
    int rc;
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
        rc = refuse_copy(c, st);
    else if (res && !step_failed(res, STEP_STMT))
        rc = copy_result(c, res, rows, changes);
    else
        rc = pg_fail(c, res, "statement");
    PQclear(res);
    return rc;
}

static const char *begin_sql(unsigned flags)
{
    if (flags & AJ_X_BEGIN_SERIALIZABLE)
        return "BEGIN ISOLATION LEVEL SERIALIZABLE";
    if (flags & (AJ_X_BEGIN | AJ_X_BEGIN_IMMEDIATE))
        return "BEGIN";
    return NULL;
}

static int exec_once(aj_pg *c, const aj_sql *sql, size_t nparams, aj_rows *rows,
                     int64_t *changes, unsigned flags, int *stale)
{
    int rc = check_session(c);
    if (rc)
        return rc;
    pg_call call = {begin_sql(flags), (flags & AJ_X_COMMIT) != 0, NULL, NULL, (int)nparams};
    char *text = NULL;
    if (sql->slot >= 0) {
        call.slot = slot_for(c, sql);
        if (call.slot->nph != nparams)
            return aj_error_set(AJ_EINVALID, "statement has %zu placeholders, %zu parameters "
                                "given", call.slot->nph, nparams);
        if (!call.slot->prepared && (rc = rewritten(sql->text, &text)))
            return rc;
    } else {
        size_t nph = rewrite_placeholders(sql->text, NULL);
        if (nph != nparams)
            return aj_error_set(AJ_EINVALID, "statement has %zu placeholders, %zu parameters "
                                "given", nph, nparams);
        if (nparams == 0 && !flags)
            return exec_simple(c, sql->text, rows, changes);
        if ((rc = rewritten(sql->text, &text)))
            return rc;
    }
    call.text = text;
    rc = run_pipeline(c, &call, rows, changes, stale);
    free(text);
    return rc;
}

static int check_exec(aj_pg *c, const aj_sql *sql, const aj_value *params, size_t nparams,
                      unsigned flags)
{
    const unsigned begins = AJ_X_BEGIN | AJ_X_BEGIN_IMMEDIATE | AJ_X_BEGIN_SERIALIZABLE;
    if (!c || !sql || !sql->text || (nparams && !params))
        return aj_error_set(AJ_EINVALID, "PostgreSQL exec: NULL argument");
    if (sql->slot < -1 || sql->slot >= AJ_SQL_SLOTS)
        return aj_error_set(AJ_EINVALID, "PostgreSQL exec: statement slot %d out of range",
                            sql->slot);
    if (nparams > AJ_PG_MAX_PARAMS)
        return aj_error_set(AJ_EINVALID, "PostgreSQL exec: %zu parameters (at most %d)",
                            nparams, AJ_PG_MAX_PARAMS);
    if (flags & ~(begins | AJ_X_COMMIT))
        return aj_error_set(AJ_EINVALID, "PostgreSQL exec: unknown flags 0x%x", flags);
    if (flags && !c->owned)
        return aj_error_set(AJ_EMISUSE, "PostgreSQL exec: transaction control on a borrowed "
                                        "connection");
    if (PQstatus(c->pg) != CONNECTION_OK)
        return pg_fail(c, NULL, "exec");
    if (PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF)
        return aj_error_set(AJ_EMISUSE, "PostgreSQL exec: the connection is in pipeline mode");
    if ((flags & begins) && in_tx_status(PQtransactionStatus(c->pg)))
        return aj_error_set(AJ_EMISUSE, "PostgreSQL exec: BEGIN inside an open transaction");
    return 0;
}

static int pg_exec(void *conn, const aj_sql *sql, const aj_value *params, size_t nparams,
                   aj_rows *rows, int64_t *changes, unsigned flags)
{
    aj_pg *c = conn;
    int rc = check_exec(c, sql, params, nparams, flags);
    if (!rc)
        rc = bind_params(c, params, nparams);
    if (rc)
        return rc;
    /* Retrying is safe only when the failed attempt ran in a transaction of its own,
     * which the server (or rollback_quietly) has ended. */
    int was_idle = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    int stale = 0;
    rc = exec_once(c, sql, nparams, rows, changes, flags, &stale);
    if (stale) {
        c->need_sync = 1;
        if (was_idle && PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
            stale = 0;
            rc = exec_once(c, sql, nparams, rows, changes, flags, &stale);
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Transactions and the connection                                           */
/* ------------------------------------------------------------------------ */

static int simple_command(aj_pg *c, const char *sql)
{
    PGresult *res = PQexec(c->pg, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(c, res, sql);
    else if (strcmp(sql, "COMMIT") == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0)
        rc = aj_error_set(AJ_EDATABASE, "PostgreSQL COMMIT failed: the transaction had been "
                                        "aborted by an earlier error and was rolled back");
    PQclear(res);
    return rc;
}

static int pg_tx(void *conn, aj_tx_op op)
{
    aj_pg *c = conn;
    if (!c)
        return aj_error_set(AJ_EINVALID, "PostgreSQL tx: NULL connection");
    if (!c->owned)
        return aj_error_set(AJ_EMISUSE, "PostgreSQL tx: transaction control on a borrowed "
                                        "connection");
    PGTransactionStatusType st = PQtransactionStatus(c->pg);
    switch (op) {
    case AJ_TX_BEGIN:
    case AJ_TX_BEGIN_IMMEDIATE:
    case AJ_TX_BEGIN_SERIALIZABLE:
        if (in_tx_status(st))
            return aj_error_set(AJ_EMISUSE, "PostgreSQL BEGIN: a transaction is already open");
        return simple_command(c, op == AJ_TX_BEGIN_SERIALIZABLE
                                     ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "BEGIN");
    case AJ_TX_COMMIT:
        if (PQstatus(c->pg) != CONNECTION_OK)
            return pg_fail(c, NULL, "COMMIT");
        if (!in_tx_status(st)) /* e.g. the connection was reset: the work is gone */
            return aj_error_set(AJ_EDATABASE, "PostgreSQL COMMIT failed: no transaction is "
                                              "open");
        return simple_command(c, "COMMIT");
    case AJ_TX_ROLLBACK:
        rollback_quietly(c); /* a lost connection has rolled back by itself */
        return 0;
    }
    return aj_error_set(AJ_EINVALID, "PostgreSQL tx: unknown operation %d", (int)op);
}

static int pg_in_transaction(void *conn)
{
    aj_pg *c = conn;
    return c && in_tx_status(PQtransactionStatus(c->pg));
}

/* A server that shut down or restarted has sent a FATAL message and closed the
 * socket, but libpq notices only when it next reads. Peek without blocking, so that a
 * restart costs a reconnect rather than a failed transaction. */
static int peer_closed(PGconn *pg)
{
    for (int i = 0; i < 4 && PQstatus(pg) == CONNECTION_OK; i++) {
        struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN, .revents = 0};
        if (p.fd < 0)
            return 1;
        if (poll(&p, 1, 0) <= 0)
            return 0;
        if (!PQconsumeInput(pg))
            return 1;
    }
    return PQstatus(pg) != CONNECTION_OK;
}

static int pg_ensure_connected(void *conn)
{
    aj_pg *c = conn;
    if (!c || !c->owned || in_tx_status(PQtransactionStatus(c->pg)))
        return 0; /* never reset under an open transaction: its work would vanish */
    if (PQstatus(c->pg) == CONNECTION_OK && !peer_closed(c->pg))
        return 0;
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(c->pg);
        return aj_error_set(AJ_EDATABASE, "connection lost: cannot reconnect to PostgreSQL: "
                                          "%.*s", first_line_len(msg), msg);
    }
    forget_prepared(c); /* prepared statements belong to the old session */
    c->session_pid = PQbackendPID(c->pg);
    c->need_sync = 0;
    return 0;
}

/* In a child after fork() the socket is shared with the parent: anything written on
 * it (PQfinish's Terminate message) would end the parent's session. Point the
 * descriptor at /dev/null first; dup2 keeps the number taken so nothing else can be
 * opened under it before PQfinish closes it. */
static void detach_socket(PGconn *pg)
{
    int fd = PQsocket(pg);
    if (fd < 0)
        return;
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
        dup2(null_fd, fd);
        close(null_fd);
    } else {
        close(fd);
    }
}

static void pg_close(void *conn, int owned, int forked)
{
    aj_pg *c = conn;
    if (!c)
        return;
    if (c->owned && owned) {
        if (forked)
            detach_socket(c->pg);
        PQfinish(c->pg);
    }
    c->magic = 0;
    free(c->known);
    free(c->buf);
    free(c->values);
    free(c->cells);
    free(c);
}

static const aj_driver pg_driver = {
    "postgres", AJ_DIALECT_POSTGRES, pg_exec, pg_tx, pg_in_transaction, pg_ensure_connected,
    pg_close,
};

/* ------------------------------------------------------------------------ */
/* Constructors                                                              */
/* ------------------------------------------------------------------------ */

/* The driver's state for `pg`, or NULL (out of memory, error set). */
static aj_pg *new_link(PGconn *pg, int owned)
{
    aj_pg *c = calloc(1, sizeof *c);
    if (!c) {
        aj_error_set(AJ_ENOMEM, "out of memory");
        return NULL;
    }
    c->magic = AJ_PG_MAGIC;
    c->pg = pg;
    c->owned = owned;
    c->session_pid = PQbackendPID(pg);
    c->need_sync = !owned; /* the application's session may hold aj_ statements already */
    return c;
}

/* Replace every occurrence of `secret` (when not empty) in `msg` by "***". */
static void scrub(char *msg, size_t cap, const char *secret, size_t len)
{
    if (!len)
        return;
    char *p = msg;
    while ((p = strstr(p, secret)) != NULL && strlen(msg) - len + 3 < cap) {
        memmove(p + 3, p + len, strlen(p + len) + 1);
        memcpy(p, "***", 3);
        p += 3;
    }
}

/* The password libpq parses out of `conninfo` (however it is spelled) becomes "***". */
static void scrub_parsed_password(char *buf, size_t cap, const char *conninfo)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val)
            scrub(buf, cap, o->val, strlen(o->val));
    PQconninfoFree(opts);
}

/* What aj_redact_url cut out of `conninfo` becomes "***" too: it covers strings libpq
 * cannot parse, whose error messages quote pieces of them (a malformed
 * percent-encoding, a missing "="). */
static void scrub_redacted_part(char *buf, size_t cap, const char *conninfo,
                                const char *redacted)
{
    size_t n = strlen(conninfo), m = strlen(redacted), pre = 0, suf = 0;
    while (pre < n && pre < m && conninfo[pre] == redacted[pre])
        pre++;
    while (suf < n - pre && suf < m - pre && conninfo[n - 1 - suf] == redacted[m - 1 - suf])
        suf++;
    if (pre < n - suf) {
        char secret[1024];
        size_t len = n - suf - pre < sizeof secret - 1 ? n - suf - pre : sizeof secret - 1;
        memcpy(secret, conninfo + pre, len);
        secret[len] = '\0';
        scrub(buf, cap, secret, len);
    }
}

static int connect_error(PGconn *pg, const char *conninfo, int code)
{
    /* Room for the whole redacted string: a truncated one would spoil the diff. */
    size_t cap = 2 * strlen(conninfo) + 16;
    char *redacted = malloc(cap), msg[1024];
    if (!redacted)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    aj_redact_url(conninfo, redacted, cap);
    const char *err = pg ? PQerrorMessage(pg) : "out of memory";
    snprintf(msg, sizeof msg, "%.*s", first_line_len(err), err);
    scrub_redacted_part(msg, sizeof msg, conninfo, redacted);
    scrub_parsed_password(msg, sizeof msg, conninfo);
    scrub_parsed_password(redacted, cap, conninfo); /* "password = x" and other spellings */
    code = aj_error_set(code, "cannot connect to PostgreSQL \"%.200s\": %s", redacted, msg);
    free(redacted);
    return code;
}

int aj_pg_open(const aj_driver **driver, void **conn, const char *conninfo,
               const aj_options *opts)
{
    (void)opts; /* the options are SQLite's and the core's */
    if (!driver || !conn || !conninfo || !*conninfo)
        return aj_error_set(AJ_EINVALID, "aj_pg_open: NULL or empty connection string");
    /* The core's documents are UTF-8 whatever the application's environment says. */
    const char *keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
    const char *vals[] = {conninfo, "acidic_job", "UTF8", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        PQconninfoOption *parsed = PQconninfoParse(conninfo, NULL);
        int malformed = pg && !parsed;
        PQconninfoFree(parsed);
        int rc = connect_error(pg, conninfo, !pg ? AJ_ENOMEM
                                             : malformed ? AJ_EINVALID : AJ_EDATABASE);
        PQfinish(pg);
        return rc;
    }
    PQsetNoticeProcessor(pg, ignore_notice, NULL);
    aj_pg *c = new_link(pg, 1);
    if (!c) {
        PQfinish(pg);
        return AJ_ENOMEM;
    }
    *driver = &pg_driver;
    *conn = c;
    return 0;
}

int aj_pg_borrow(const aj_driver **driver, void **conn, struct pg_conn *pg)
{
    if (!driver || !conn || !pg)
        return aj_error_set(AJ_EINVALID, "aj_pg_borrow: NULL argument");
    if (PQstatus(pg) != CONNECTION_OK)
        return aj_error_set(AJ_EDATABASE, "aj_pg_borrow: the connection is not open");
    aj_pg *c = new_link(pg, 0);
    if (!c)
        return AJ_ENOMEM;
    *driver = &pg_driver;
    *conn = c;
    return 0;
}

struct pg_conn *aj_pg_handle(void *conn)
{
    aj_pg *c = conn;
    uint32_t magic = 0;
    if (c)
        memcpy(&magic, &c->magic, sizeof magic);
    return magic == AJ_PG_MAGIC ? c->pg : NULL;
}
