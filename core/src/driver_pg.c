/*
 * The PostgreSQL driver (libpq).
 *
 * Round trips are what a per-step transaction pays for on PostgreSQL, so every exec is
 * one pipeline (libpq pipeline mode): a deferred BEGIN, the PREPAREs a session has not
 * seen yet, the statements themselves and an optional COMMIT go out together and cost
 * one network round trip.
 *
 * The core's statements are named prepared statements, "aj_<slot>_<hash of the text>",
 * prepared once per session (a new backend after a reconnect starts afresh): planning
 * them on every call cost more than executing them. On a borrowed connection the
 * application, its driver or a pooler may DEALLOCATE or DISCARD ALL at any time (psycopg
 * 3 does after a rollback once it has prepared statements of its own; PgBouncer hands
 * out another backend), and a statement that vanished inside the application's
 * transaction would abort it. So there the core's pipeline runs inside a savepoint of
 * its own (SAVEPOINT, the statements, RELEASE: still one round trip); a statement that
 * vanished, or a name the session already holds, rolls back to the savepoint and the
 * pipeline runs again, preparing what is missing. Outside a transaction, or in one the
 * pipeline opened itself, the pipeline simply runs again. After AJ_PG_MAX_SAVEPOINTS
 * pipelines in one transaction (a subtransaction each), the rest of it uses unnamed
 * statements: PostgreSQL tracks 64 subtransactions per transaction cheaply, no more.
 *
 * A transaction that is the core's alone (not a savepoint in the application's) asks for
 * generic plans with its first statement marked generic_plan (the sweeps' page queries),
 * SET LOCAL in the same pipeline: their custom plans cost the planner an index probe per
 * call on large tables (decision 020).
 *
 * Owned connections reconnect in ensure_connected when the server went away, also when
 * a pipeline was cut half-way (the connection is then left in pipeline mode for good),
 * and a child after fork() closes its copy without a word to the server.
 */
/* O_CLOEXEC and friends are POSIX.1-2008, outside strict C11. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "driver.h"
#include "error.h"
#include "rows.h"
#include "sql.h"
#include "util.h"

#include <libpq-fe.h>

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define AJ_PG_MAGIC 0x616a7067u /* "ajpg": tells our struct from another driver's */
#define AJ_PG_NAME_LEN 32       /* "aj_" + slot + "_" + 16 hex digits + NUL fits */
#define AJ_PG_MAX_PARAMS 65535  /* the protocol's limit */
#define AJ_PG_MAX_CALLS 8       /* statements in one exec */
#define AJ_PG_MAX_SAVEPOINTS 32 /* savepoint-wrapped pipelines in one borrowed transaction */
#define AJ_PG_SAVEPOINT "acidic_job_statements"

/* OIDs of the built-in types returned as AJ_INT (pg_type.h is a server header). */
enum { OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23 };

typedef struct pg_slot {
    uint64_t hash;             /* of the SQL text `name` was computed from */
    char name[AJ_PG_NAME_LEN]; /* server-side prepared statement name; "" when unused */
    int prepared;              /* the current session holds `name` */
} pg_slot;

typedef struct aj_pg {
    uint32_t magic;
    PGconn *pg;
    int owned;
    int broken;               /* a pipeline was cut: reconnect before the next use */
    const char *pending_begin; /* BEGIN to send with the next exec, or NULL */
    int session_pid;          /* backend PID that `slots` describe */
    int savepoints;           /* savepoint-wrapped pipelines in the current transaction */
    int toplevel;             /* the current transaction is the core's alone (tx_begun) */
    int generic_plans;        /* it asked for generic plans already */
    pg_slot slots[AJ_SQL_SLOTS];
    /* Every statement name the session holds: a slot whose text changes (the tables
     * changed shape) and changes back finds its old statement there. */
    char (*known)[AJ_PG_NAME_LEN];
    size_t nknown, known_cap;
    /* Scratch reused across calls, so a steady-state exec does not allocate. */
    char *buf;
    size_t buf_cap;
    const char **values;
    size_t values_cap;
    aj_value *cells;
    size_t cells_cap;
    char *text;
    size_t text_cap;
} aj_pg;

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

static int first_line_len(const char *msg)
{
    size_t n = strcspn(msg, "\r\n");
    return n > 900 ? 900 : (int)n;
}

static int in_tx_status(PGTransactionStatusType st)
{
    return st == PQTRANS_INTRANS || st == PQTRANS_INERROR;
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
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        c->broken = 1;
        int code = aj_error_set(AJ_EDATABASE, "PostgreSQL connection lost: %.*s",
                                first_line_len(msg), msg);
        aj_error_set_state("08006");
        return code;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int conflict = state && (!strcmp(state, "40001") || !strcmp(state, "40P01"));
    int code = aj_error_set(conflict ? AJ_ECONFLICT : AJ_EDATABASE,
                            "PostgreSQL %s failed: %.*s%s%s%s", what, first_line_len(msg), msg,
                            state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
    aj_error_set_state(state);
    return code;
}

/* Owned connections only: the core's DDL (IF NOT EXISTS) raises NOTICEs that libpq
 * would print on stderr. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* ------------------------------------------------------------------------ */
/* Prepared statements                                                        */
/* ------------------------------------------------------------------------ */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void forget_prepared(aj_pg *c)
{
    for (int i = 0; i < AJ_SQL_SLOTS; i++)
        c->slots[i].prepared = 0;
    c->nknown = 0;
}

static int is_known(const aj_pg *c, const char *name)
{
    for (size_t i = 0; i < c->nknown; i++)
        if (strcmp(c->known[i], name) == 0)
            return 1;
    return 0;
}

static void add_known(aj_pg *c, const char *name)
{
    if (is_known(c, name) ||
        aj_grow((void **)&c->known, &c->known_cap, c->nknown + 1, sizeof *c->known))
        return; /* out of memory: the statement is prepared again, harmlessly, later */
    snprintf(c->known[c->nknown++], AJ_PG_NAME_LEN, "%s", name);
}

/* After a statement the session lacked or a name it already held: learn what it holds
 * (the server's view is the truth; a borrowed session is also the application's, and a
 * second store may borrow it). Runs where a statement may: outside a transaction or in
 * one that is not aborted. */
static void resync_prepared(aj_pg *c)
{
    forget_prepared(c);
    PGresult *res = PQexec(c->pg, "SELECT name FROM pg_prepared_statements"
                                  " WHERE name LIKE 'aj\\_%'");
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        for (int r = 0; r < PQntuples(res); r++)
            add_known(c, PQgetvalue(res, r, 0));
    PQclear(res);
    for (int i = 0; i < AJ_SQL_SLOTS; i++)
        c->slots[i].prepared = c->slots[i].name[0] && is_known(c, c->slots[i].name);
}

/* The slot of a cached statement, named for this text. Hashing on every call
 * (nanoseconds next to a round trip) keys the cache by content. */
static pg_slot *slot_for(aj_pg *c, const aj_sql *sql)
{
    pg_slot *s = &c->slots[sql->slot];
    uint64_t hash = fnv1a(sql->text);
    if (!s->name[0] || s->hash != hash) {
        snprintf(s->name, sizeof s->name, "aj_%d_%016" PRIx64, sql->slot, hash);
        s->hash = hash;
        s->prepared = is_known(c, s->name);
    }
    return s;
}

/* A new backend behind the same PGconn has none of our statements. */
static void check_session(aj_pg *c)
{
    int pid = PQbackendPID(c->pg);
    if (pid != c->session_pid) {
        forget_prepared(c);
        c->session_pid = pid;
    }
}

/* ------------------------------------------------------------------------ */
/* Parameters and results                                                    */
/* ------------------------------------------------------------------------ */

/* Text-format parameter values in c->values (NULL for SQL NULL); the server infers
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
    int rc = aj_grow((void **)&c->buf, &c->buf_cap, need, 1);
    if (!rc)
        rc = aj_grow((void **)&c->values, &c->values_cap, n ? n : 1, sizeof *c->values);
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

static int copy_result(aj_pg *c, const PGresult *res, aj_rows *rows)
{
    if (!rows)
        return 0;
    aj_rows_reset(rows);
    int nf = PQnfields(res), nt = PQntuples(res);
    if (nf == 0)
        return 0;
    int rc = aj_grow((void **)&c->cells, &c->cells_cap, (size_t)nf, sizeof *c->cells);
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

typedef enum pg_kind { K_BEGIN, K_PREPARE, K_STMT, K_COMMIT, K_SAVEPOINT, K_SETTING } pg_kind;
static const char *const kind_names[] = {"BEGIN", "PREPARE", "statement", "COMMIT",
                                         "savepoint", "SET LOCAL"};

/* How one exec uses prepared statements. */
typedef enum pg_naming { N_UNNAMED, N_NAMED, N_NAMED_IN_SAVEPOINT } pg_naming;

typedef struct pg_step {
    pg_kind kind;
    const aj_call *call; /* K_STMT */
    pg_slot *slot;       /* K_PREPARE (and K_STMT of a prepared statement) */
} pg_step;

/* Did `res` (the result of a step of `kind`) fail? A COMMIT of an aborted transaction
 * succeeds on the wire but reports ROLLBACK. */
static int result_failed(const PGresult *res, pg_kind kind)
{
    ExecStatusType st = PQresultStatus(res);
    if (kind == K_COMMIT)
        return st != PGRES_COMMAND_OK || strcmp(PQcmdStatus((PGresult *)res), "COMMIT") != 0;
    return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY;
}

static int first_word_is(const char *sql, const char *word)
{
    while (isspace((unsigned char)*sql))
        sql++;
    size_t n = strlen(word);
    return strncasecmp(sql, word, n) == 0 && !isalnum((unsigned char)sql[n]);
}

/* The $n text of a call (the statement's own, or application SQL rewritten). */
static int call_text(aj_pg *c, const aj_call *call, const char **text)
{
    if (call->sql->native) {
        *text = call->sql->text;
        return 0;
    }
    size_t nph = aj_sql_count_params(call->sql->text);
    if (nph != call->nparams)
        return aj_error_set(AJ_EINVALID, "the statement has %zu placeholders, %zu parameters "
                            "given", nph, call->nparams);
    if (first_word_is(call->sql->text, "COPY"))
        return aj_error_set(AJ_EINVALID, "PostgreSQL statement refused: COPY is not supported "
                                         "through acidic_job");
    int rc = aj_grow((void **)&c->text, &c->text_cap, aj_sql_dollar_size(call->sql->text), 1);
    if (rc)
        return rc;
    aj_sql_dollar(call->sql->text, c->text);
    *text = c->text;
    return 0;
}

static int send_call(aj_pg *c, const aj_call *call, int named, pg_step *steps, int *nsteps)
{
    int rc = bind_params(c, call->params, call->nparams);
    const char *text = NULL;
    if (!rc)
        rc = call_text(c, call, &text);
    if (rc)
        return rc;
    int n = (int)call->nparams;
    if (named && call->sql->slot >= 0) {
        pg_slot *slot = slot_for(c, call->sql);
        /* A slot counts as prepared once the pipeline's results are read: an earlier
         * call of this pipeline may already carry its PREPARE (several staged jobs). */
        int sending = 0;
        for (int k = 0; k < *nsteps && !sending; k++)
            sending = steps[k].kind == K_PREPARE && steps[k].slot == slot;
        if (!slot->prepared && !sending) {
            if (!PQsendPrepare(c->pg, slot->name, text, n, NULL))
                return pg_fail(c, NULL, "PREPARE");
            steps[(*nsteps)++] = (pg_step){K_PREPARE, call, slot};
            slot->prepared = 1; /* later calls of this pipeline use it; undone on failure */
        }
        if (!PQsendQueryPrepared(c->pg, slot->name, n, c->values, NULL, NULL, 0))
            return pg_fail(c, NULL, "statement");
        steps[(*nsteps)++] = (pg_step){K_STMT, call, slot};
        return 0;
    }
    if (!PQsendQueryParams(c->pg, text, n, NULL, c->values, NULL, NULL, 0))
        return pg_fail(c, NULL, "statement");
    steps[(*nsteps)++] = (pg_step){K_STMT, call, NULL};
    return 0;
}

/* Read up to the sync point. A NULL from PQgetResult only ends one statement's results:
 * a server that was shutting down answers the sync with its FATAL message (an error
 * result, then NULL) and closes the socket, and only the next read sees that. So keep
 * reading until the sync or a lost connection; the bound is for a session whose protocol
 * is out of step (results that never come cannot be waited for). */
static void read_to_sync(PGconn *pg)
{
    for (int nulls = 0; PQstatus(pg) == CONNECTION_OK && nulls <= 2 * AJ_PG_MAX_CALLS + 4;) {
        PGresult *res = PQgetResult(pg);
        if (!res) {
            nulls++;
            continue;
        }
        int sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
        PQclear(res);
        if (sync)
            return;
    }
}

/* A borrowed connection that cannot leave pipeline mode is no use to its application:
 * every synchronous call on it fails ("not allowed in pipeline mode") and, since none of
 * them reads the socket, libpq would never see the connection is gone. Close the session
 * at the socket and let libpq read the end of it, so PQstatus says CONNECTION_BAD and the
 * application's own handling of a lost connection (PQreset, its pool's reconnect) runs;
 * PQreset also leaves pipeline mode. */
static void hand_back_cut(PGconn *pg)
{
    if (PQstatus(pg) == CONNECTION_OK && PQsocket(pg) >= 0) {
        shutdown(PQsocket(pg), SHUT_RDWR);
        while (PQstatus(pg) == CONNECTION_OK && PQconsumeInput(pg))
            if (poll(&(struct pollfd){.fd = PQsocket(pg), .events = POLLIN}, 1, 1000) <= 0)
                break;
    }
}

/* Read the results of the steps sent and the sync point, and leave pipeline mode.
 * *stale is set when the failure was a prepared statement the session did not (or
 * did already) hold. */
static int read_pipeline(aj_pg *c, pg_step *steps, int nsteps, int sent_sync, int *stale)
{
    int rc = 0;
    for (int k = 0; k < nsteps; k++) {
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            if (!rc)
                rc = pg_fail(c, NULL, kind_names[steps[k].kind]);
            break;
        }
        int skipped = PQresultStatus(res) == PGRES_PIPELINE_ABORTED; /* after a failure */
        if (steps[k].kind == K_PREPARE && (skipped || result_failed(res, K_PREPARE)))
            steps[k].slot->prepared = 0;
        if (!skipped && result_failed(res, steps[k].kind)) {
            if (!rc) {
                /* a name the session already holds, or a statement it lost */
                const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                *stale = state && ((steps[k].kind == K_PREPARE && !strcmp(state, "42P05")) ||
                                   (steps[k].kind == K_STMT && steps[k].slot &&
                                    !strcmp(state, "26000")));
                rc = pg_fail(c, res, kind_names[steps[k].kind]);
            }
        } else if (!skipped && steps[k].kind == K_PREPARE) {
            add_known(c, steps[k].slot->name); /* not transactional: it exists from now on */
        } else if (!skipped && steps[k].kind == K_STMT && !rc) {
            rc = copy_result(c, res, steps[k].call->rows);
        }
        PQclear(res);
        while ((res = PQgetResult(c->pg))) /* each step's results end with NULL */
            PQclear(res);
    }
    if (sent_sync)
        read_to_sync(c->pg);
    if (!PQexitPipelineMode(c->pg)) {
        /* Results left unread (a cut connection): the session cannot be trusted again. */
        c->broken = 1;
        if (!rc)
            rc = pg_fail(c, NULL, "leaving pipeline mode");
        if (!c->owned)
            hand_back_cut(c->pg);
    }
    return rc;
}

static int send_simple(aj_pg *c, const char *sql, pg_kind kind, pg_step *steps, int *nsteps)
{
    if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0))
        return pg_fail(c, NULL, kind_names[kind]);
    steps[(*nsteps)++] = (pg_step){kind, NULL, NULL};
    return 0;
}

/* Does this pipeline ask for generic plans for the rest of its transaction? Only in a
 * transaction that is the core's alone (its SET LOCAL ends with it; in the application's
 * transaction it would outlive the core's statements), once, and from PostgreSQL 12
 * (plan_cache_mode). */
static int wants_generic_plans(const aj_pg *c, const aj_call *calls, size_t ncalls)
{
    if (!c->toplevel || c->generic_plans || PQserverVersion(c->pg) < 120000 ||
        (!c->pending_begin && PQtransactionStatus(c->pg) != PQTRANS_INTRANS))
        return 0;
    for (size_t i = 0; i < ncalls; i++)
        if (calls[i].sql->generic_plan)
            return 1;
    return 0;
}

static int run_pipeline(aj_pg *c, const aj_call *calls, size_t ncalls, int commit,
                        pg_naming naming, int *stale)
{
    pg_step steps[5 + 2 * AJ_PG_MAX_CALLS];
    int nsteps = 0;
    if (!PQenterPipelineMode(c->pg))
        return pg_fail(c, NULL, "entering pipeline mode");
    int rc = 0;
    int generic = wants_generic_plans(c, calls, ncalls);
    if (c->pending_begin) {
        if (!PQsendQueryParams(c->pg, c->pending_begin, 0, NULL, NULL, NULL, NULL, 0))
            rc = pg_fail(c, NULL, "BEGIN");
        else
            steps[nsteps++] = (pg_step){K_BEGIN, NULL, NULL};
        c->pending_begin = NULL;
    }
    if (!rc && generic) {
        rc = send_simple(c, "SET LOCAL plan_cache_mode = force_generic_plan", K_SETTING, steps,
                         &nsteps);
        c->generic_plans = 1;
    }
    if (!rc && naming == N_NAMED_IN_SAVEPOINT)
        rc = send_simple(c, "SAVEPOINT " AJ_PG_SAVEPOINT, K_SAVEPOINT, steps, &nsteps);
    for (size_t i = 0; i < ncalls && !rc; i++)
        rc = send_call(c, &calls[i], naming != N_UNNAMED, steps, &nsteps);
    if (!rc && naming == N_NAMED_IN_SAVEPOINT)
        rc = send_simple(c, "RELEASE SAVEPOINT " AJ_PG_SAVEPOINT, K_SAVEPOINT, steps, &nsteps);
    if (!rc && commit)
        rc = send_simple(c, "COMMIT", K_COMMIT, steps, &nsteps);
    aj_saved_error send_err;
    if (rc)
        aj_error_save(&send_err);
    int synced = PQstatus(c->pg) == CONNECTION_OK && PQpipelineSync(c->pg);
    int read_rc = read_pipeline(c, steps, nsteps, synced, stale);
    if (rc)
        return aj_error_restore(&send_err);
    return read_rc;
}

static int has_named(const aj_call *calls, size_t ncalls)
{
    for (size_t i = 0; i < ncalls; i++)
        if (calls[i].sql->slot >= 0)
            return 1;
    return 0;
}

static int check_usable(aj_pg *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = 1;
        return pg_fail(c, NULL, "exec");
    }
    if (PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF) {
        if (c->owned) { /* a cut pipeline: ensure_connected resets it */
            c->broken = 1;
            return aj_error_set(AJ_EDATABASE, "PostgreSQL connection lost: a pipeline was cut "
                                              "half-way; the next transaction reconnects");
        }
        return aj_error_set(AJ_EMISUSE, "the borrowed PostgreSQL connection is in pipeline mode "
                                        "(for example psycopg's conn.pipeline()): leave it before "
                                        "running acidic_job on it");
    }
    if (PQisBusy(c->pg))
        return aj_error_set(AJ_EMISUSE, "the borrowed PostgreSQL connection is busy with "
                                        "another query: let it finish first");
    return 0;
}

static int pg_exec(void *conn, const aj_call *calls, size_t ncalls, unsigned flags)
{
    aj_pg *c = conn;
    if (!c || (ncalls && !calls) || ncalls > AJ_PG_MAX_CALLS)
        return aj_error_set(AJ_EINVALID, "PostgreSQL exec: bad arguments");
    for (size_t i = 0; i < ncalls; i++) {
        const aj_call *call = &calls[i];
        if (!call->sql || !call->sql->text || (call->nparams && !call->params))
            return aj_error_set(AJ_EINVALID, "PostgreSQL exec: NULL statement or parameters");
        if (call->sql->slot < -1 || call->sql->slot >= AJ_SQL_SLOTS)
            return aj_error_set(AJ_EINVALID, "PostgreSQL exec: statement slot %d out of range",
                                call->sql->slot);
        if (call->nparams > AJ_PG_MAX_PARAMS)
            return aj_error_set(AJ_EINVALID, "PostgreSQL exec: %zu parameters (at most %d)",
                                call->nparams, AJ_PG_MAX_PARAMS);
    }
    if (ncalls == 0 && !(flags & AJ_X_COMMIT) && !c->pending_begin)
        return 0; /* nothing to send */
    int rc = check_usable(c);
    if (rc)
        return rc;
    check_session(c);
    /* A pipeline that opened its own transaction, or ran outside one, can run again
     * after a stale prepared statement: nothing else happened in that transaction. Inside
     * a transaction the core did not open here, only a borrowed connection's savepoint
     * makes that safe; an owned connection's statements vanish only by SQL the core
     * sees (below), so there the next pipeline prepares them again. */
    const char *begin = c->pending_begin;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    int fresh = begin != NULL || ts == PQTRANS_IDLE;
    pg_naming naming = N_NAMED;
    if (!c->owned && !fresh)
        naming = ts == PQTRANS_INTRANS && c->savepoints < AJ_PG_MAX_SAVEPOINTS &&
                         has_named(calls, ncalls)
                     ? N_NAMED_IN_SAVEPOINT
                     : N_UNNAMED;
    if (naming == N_NAMED_IN_SAVEPOINT)
        c->savepoints++;
    int commit = (flags & AJ_X_COMMIT) != 0;
    int stale = 0;
    rc = run_pipeline(c, calls, ncalls, commit, naming, &stale);
    if (stale) {
        forget_prepared(c);
        if (fresh && PQstatus(c->pg) == CONNECTION_OK) {
            if (in_tx_status(PQtransactionStatus(c->pg)))
                PQclear(PQexec(c->pg, "ROLLBACK"));
            c->generic_plans = 0; /* went with the transaction */
            resync_prepared(c);
            c->pending_begin = begin;
            stale = 0;
            rc = run_pipeline(c, calls, ncalls, commit, naming, &stale);
        } else if (naming == N_NAMED_IN_SAVEPOINT && PQstatus(c->pg) == CONNECTION_OK) {
            PGresult *res = PQexec(c->pg, "ROLLBACK TO SAVEPOINT " AJ_PG_SAVEPOINT
                                          "; RELEASE SAVEPOINT " AJ_PG_SAVEPOINT);
            int back = PQresultStatus(res) == PGRES_COMMAND_OK;
            PQclear(res);
            if (back) {
                resync_prepared(c);
                stale = 0;
                rc = run_pipeline(c, calls, ncalls, commit, naming, &stale);
            }
        }
    }
    /* Application SQL that drops the session's prepared statements. */
    for (size_t i = 0; i < ncalls && rc == 0; i++)
        if (!calls[i].sql->native && (first_word_is(calls[i].sql->text, "DISCARD") ||
                                      first_word_is(calls[i].sql->text, "DEALLOCATE")))
            forget_prepared(c);
    if (rc && (flags & AJ_X_COMMIT) && PQstatus(c->pg) == CONNECTION_OK &&
        in_tx_status(PQtransactionStatus(c->pg))) {
        aj_saved_error err;
        aj_error_save(&err);
        PQclear(PQexec(c->pg, "ROLLBACK"));
        aj_error_restore(&err);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Transactions and the connection                                           */
/* ------------------------------------------------------------------------ */

static int pg_in_transaction(void *conn)
{
    aj_pg *c = conn;
    return c && (c->pending_begin || in_tx_status(PQtransactionStatus(c->pg)));
}

static int pg_begin(void *conn, int mode)
{
    aj_pg *c = conn;
    if (pg_in_transaction(c))
        return aj_error_set(AJ_EMISUSE, "PostgreSQL BEGIN: a transaction is already open on "
                                        "the connection");
    /* Sent with the next statement, in its round trip. */
    c->pending_begin = mode == AJ_BEGIN_SERIALIZABLE ? "BEGIN ISOLATION LEVEL SERIALIZABLE"
                                                     : "BEGIN";
    return 0;
}

static int pg_commit(void *conn)
{
    aj_pg *c = conn;
    if (c->pending_begin) { /* nothing was sent: an empty transaction */
        c->pending_begin = NULL;
        return 0;
    }
    if (PQstatus(c->pg) != CONNECTION_OK)
        return pg_fail(c, NULL, "COMMIT");
    if (!in_tx_status(PQtransactionStatus(c->pg)))
        return aj_error_set(AJ_EMISUSE, "PostgreSQL COMMIT: no transaction is open: something "
                                        "ended it before the core could commit");
    int stale = 0;
    return run_pipeline(c, NULL, 0, 1, N_NAMED, &stale);
}

static void pg_tx_begun(void *conn, int toplevel)
{
    aj_pg *c = conn;
    c->savepoints = 0;
    c->toplevel = toplevel;
    c->generic_plans = 0;
}

static void pg_rollback(void *conn)
{
    aj_pg *c = conn;
    c->pending_begin = NULL;
    if (PQstatus(c->pg) == CONNECTION_OK && PQpipelineStatus(c->pg) == PQ_PIPELINE_OFF &&
        in_tx_status(PQtransactionStatus(c->pg))) {
        aj_saved_error err;
        aj_error_save(&err);
        PQclear(PQexec(c->pg, "ROLLBACK"));
        aj_error_restore(&err);
    }
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
    if (!c || !c->owned || pg_in_transaction(c))
        return 0; /* never reset under an open transaction: its work would vanish */
    if (!c->broken && PQstatus(c->pg) == CONNECTION_OK &&
        PQpipelineStatus(c->pg) == PQ_PIPELINE_OFF && !peer_closed(c->pg))
        return 0;
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK || PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF) {
        const char *msg = PQerrorMessage(c->pg);
        int code = aj_error_set(AJ_EDATABASE, "PostgreSQL connection lost, and reconnecting "
                                "failed: %.*s", first_line_len(msg), msg);
        aj_error_set_state("08006");
        return code;
    }
    forget_prepared(c); /* prepared statements belong to the old session */
    c->session_pid = PQbackendPID(c->pg);
    c->broken = 0;
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
    free(c->text);
    free(c);
}

static const aj_driver pg_driver = {
    "postgres", AJ_DIALECT_POSTGRES, AJ_DRV_HOST_TOPLEVEL, pg_exec, pg_begin, pg_commit,
    pg_rollback, pg_in_transaction, pg_tx_begun, pg_ensure_connected, pg_close,
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
    return c;
}

/* libpq's complaints about a value it could not use are the caller's input errors. */
static int invalid_setting(const char *msg)
{
    return strncmp(msg, "invalid ", 8) == 0 || strstr(msg, "invalid port number") ||
           strstr(msg, "invalid integer value") || strstr(msg, "invalid connection option") ||
           strstr(msg, "missing \"=\"") || strstr(msg, "unterminated quoted string") ||
           strstr(msg, "invalid URI") || strstr(msg, "invalid percent-encoded") ||
           strstr(msg, "unexpected spaces found") || strstr(msg, "end of string reached");
}

static int connect_error(PGconn *pg, const char *conninfo, int code)
{
    size_t cap = strlen(conninfo) + 16;
    char *redacted = malloc(cap), msg[1024];
    if (!redacted)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    aj_redact_url(conninfo, redacted, cap);
    const char *err = pg ? PQerrorMessage(pg) : "out of memory";
    snprintf(msg, sizeof msg, "%.*s", first_line_len(err), err);
    if (code == AJ_EDATABASE && invalid_setting(msg))
        code = AJ_EINVALID;
    aj_scrub_conninfo(msg, sizeof msg, conninfo);
    aj_scrub_conninfo(redacted, cap, conninfo);
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
