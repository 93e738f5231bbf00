#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

db_kind g_db = DB_SQLITE;

static char g_tmpdir[256];
static PGconn *g_admin;        /* PostgreSQL: creates and drops the per-test schemas */
static const char *g_pg_base;  /* AJ_TEST_PG_URL */
static int g_seq;              /* per-test counter */

static char g_url[1024];
static char g_path[512];
static char g_schema[64];
static char g_conninfo[2048];
#define MAX_EXTRA 8
static char g_url2[MAX_EXTRA][1024];
static char g_path2[MAX_EXTRA][512];
static char g_schema2[MAX_EXTRA][64];

/* Seconds a single test may take before the suite is aborted (a hung test must not
 * hang CI: SIGALRM kills the process and scripts/test.sh reports the failure). */
#define TEST_DEADLINE_S 180

const char *db_name(void) { return g_db == DB_SQLITE ? "sqlite" : "postgres"; }
const char *test_url(void) { return g_url; }
const char *test_sqlite_path(void) { return g_path; }
const char *test_pg_schema(void) { return g_schema; }
const char *test_pg_conninfo(void) { return g_conninfo; }

int harness_group_setup(void **state) {
    (void)state;
    if (g_db == DB_SQLITE) {
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/aj-ctest.XXXXXX");
        if (!mkdtemp(g_tmpdir)) {
            perror("mkdtemp");
            return -1;
        }
        return 0;
    }
    g_pg_base = getenv("AJ_TEST_PG_URL");
    if (!g_pg_base || !*g_pg_base) {
        fprintf(stderr, "AJ_TEST_PG_URL is not set\n");
        return -1;
    }
    g_admin = PQconnectdb(g_pg_base);
    if (PQstatus(g_admin) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to %s: %s\n", g_pg_base, PQerrorMessage(g_admin));
        PQfinish(g_admin);
        g_admin = NULL;
        return -1;
    }
    PGresult *r = PQexec(g_admin, "SET client_min_messages = warning");
    PQclear(r);
    return 0;
}

int harness_group_teardown(void **state) {
    (void)state;
    if (g_db == DB_SQLITE) {
        if (g_tmpdir[0]) rmdir(g_tmpdir);
    } else if (g_admin) {
        PQfinish(g_admin);
        g_admin = NULL;
    }
    return 0;
}

static int admin_exec(const char *sql) {
    PGresult *r = PQexec(g_admin, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok && PQstatus(g_admin) == CONNECTION_BAD) {
        /* the server was restarted (test_pg_reconnect): reconnect once */
        PQclear(r);
        PQreset(g_admin);
        r = PQexec(g_admin, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    }
    if (!ok) fprintf(stderr, "admin: %s: %s", sql, PQerrorMessage(g_admin));
    PQclear(r);
    return ok ? 0 : -1;
}

static int make_schema(char *schema, size_t schemasz, char *url, size_t urlsz, int n) {
    snprintf(schema, schemasz, "ajt_%ld_%d", (long)getpid(), n);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    if (admin_exec(sql)) return -1;
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    if (admin_exec(sql)) return -1;
    snprintf(url, urlsz, "%s%coptions=-csearch_path%%3D%s", g_pg_base,
             strchr(g_pg_base, '?') ? '&' : '?', schema);
    return 0;
}

static void drop_schema(const char *schema) {
    char sql[1024];
    /* a test that failed may leave a connection holding locks: do not wait forever */
    admin_exec("SET lock_timeout = '10s'");
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    admin_exec(sql);
}

static void build_conninfo(void) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(g_url, &err);
    g_conninfo[0] = 0;
    if (!opts) {
        PQfreemem(err);
        return;
    }
    size_t used = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val) continue;
        used += (size_t)snprintf(g_conninfo + used, sizeof g_conninfo - used, "%s%s='",
                                 used ? " " : "", o->keyword);
        for (const char *c = o->val; *c && used + 3 < sizeof g_conninfo; c++) {
            if (*c == '\'' || *c == '\\') g_conninfo[used++] = '\\';
            g_conninfo[used++] = *c;
        }
        used += (size_t)snprintf(g_conninfo + used, sizeof g_conninfo - used, "'");
    }
    PQconninfoFree(opts);
}

static void unlink_db(const char *path) {
    char buf[600];
    unlink(path);
    snprintf(buf, sizeof buf, "%s-wal", path);
    unlink(buf);
    snprintf(buf, sizeof buf, "%s-shm", path);
    unlink(buf);
    snprintf(buf, sizeof buf, "%s-journal", path);
    unlink(buf);
}

int fresh_db_setup(void **state) {
    (void)state;
    alarm(TEST_DEADLINE_S);
    aj_error_clear();
    g_seq++;
    for (int i = 0; i < MAX_EXTRA; i++) g_url2[i][0] = g_path2[i][0] = g_schema2[i][0] = 0;
    if (g_db == DB_SQLITE) {
        snprintf(g_path, sizeof g_path, "%s/t%d.db", g_tmpdir, g_seq);
        unlink_db(g_path);
        snprintf(g_url, sizeof g_url, "sqlite:%s", g_path);
        return 0;
    }
    if (make_schema(g_schema, sizeof g_schema, g_url, sizeof g_url, g_seq * 100)) return -1;
    build_conninfo();
    return 0;
}

const char *test_url_extra(int i) {
    if (i < 0 || i >= MAX_EXTRA) fail_msg("test_url_extra(%d): at most %d", i, MAX_EXTRA);
    if (g_url2[i][0]) return g_url2[i];
    if (g_db == DB_SQLITE) {
        snprintf(g_path2[i], sizeof g_path2[i], "%s/t%d-x%d.db", g_tmpdir, g_seq, i);
        unlink_db(g_path2[i]);
        snprintf(g_url2[i], sizeof g_url2[i], "sqlite:%s", g_path2[i]);
    } else if (make_schema(g_schema2[i], sizeof g_schema2[i], g_url2[i], sizeof g_url2[i],
                           g_seq * 100 + 1 + i)) {
        fail_msg("cannot create another schema");
    }
    return g_url2[i];
}

int fresh_db_teardown(void **state) {
    (void)state;
    if (g_db == DB_SQLITE) {
        unlink_db(g_path);
        for (int i = 0; i < MAX_EXTRA; i++)
            if (g_path2[i][0]) unlink_db(g_path2[i]);
    } else {
        drop_schema(g_schema);
        for (int i = 0; i < MAX_EXTRA; i++)
            if (g_schema2[i][0]) drop_schema(g_schema2[i]);
    }
    alarm(0);
    return 0;
}

void raw_exec(const char *sql) {
    if (g_db == DB_SQLITE) {
        sqlite3 *db = NULL;
        char *err = NULL;
        if (sqlite3_open(g_path, &db) != SQLITE_OK) fail_msg("sqlite3_open %s", g_path);
        int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", err ? err : "?");
            sqlite3_free(err);
            sqlite3_close(db);
            fail_msg("%s: %s", sql, msg);
        }
        sqlite3_close(db);
        return;
    }
    PGconn *pg = PQconnectdb(g_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        fail_msg("connect %s", g_url);
    }
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    if (!ok) fail_msg("%s: %s", sql, msg);
}

aj_store *open_store_lock(int64_t lock_timeout_ms) {
    aj_options o = AJ_OPTIONS_INIT;
    if (lock_timeout_ms > 0) o.lock_timeout_ms = lock_timeout_ms;
    aj_store *s = NULL;
    int rc = aj_store_open(&s, test_url(), &o);
    if (rc != AJ_OK) fail_msg("aj_store_open(%s): %s: %s", test_url(), aj_code_name(rc),
                              aj_error_last()->message);
    assert_non_null(s);
    return s;
}

aj_store *open_store(void) { return open_store_lock(0); }

aj_workflow *make_wf(const char *first, ...) {
    aj_workflow *wf = NULL;
    assert_int_equal(aj_workflow_new(&wf), AJ_OK);
    assert_non_null(wf);
    va_list ap;
    va_start(ap, first);
    for (const char *name = first; name; name = va_arg(ap, const char *)) {
        int rc = aj_workflow_add_step(wf, name, NULL, 0);
        if (rc != AJ_OK) {
            va_end(ap);
            fail_msg("aj_workflow_add_step(%s): %s", name, aj_code_name(rc));
        }
    }
    va_end(ap);
    return wf;
}

int acquire(aj_run **out, aj_store *s, const aj_workflow *wf, const char *key,
            const char *args) {
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = "TestJob";
    p.args = args;
    p.args_len = args ? strlen(args) : 0;
    return aj_run_acquire(out, s, wf, &p);
}

aj_run *acquire_ok(aj_store *s, const aj_workflow *wf, const char *key, const char *args) {
    aj_run *run = NULL;
    int rc = acquire(&run, s, wf, key, args);
    if (rc != AJ_OK) fail_msg("aj_run_acquire(%s): %s: %s", key, aj_code_name(rc),
                              aj_error_last()->message);
    assert_non_null(run);
    return run;
}

static aj_rows *q_rows(aj_store *s, const char *sql, const char *p1, const char *p2) {
    aj_value params[2];
    size_t n = 0;
    const char *ps[2] = {p1, p2};
    for (int i = 0; i < 2 && ps[i]; i++, n++) {
        params[i].type = AJ_TEXT;
        params[i].integer = 0;
        params[i].text = ps[i];
        params[i].len = strlen(ps[i]);
    }
    aj_rows *rows = NULL;
    int rc = aj_store_exec(s, sql, params, n, &rows);
    if (rc != AJ_OK) fail_msg("aj_store_exec(%s): %s: %s", sql, aj_code_name(rc),
                              aj_error_last()->message);
    return rows;
}

void q_exec(aj_store *s, const char *sql, const char *p1, const char *p2) {
    aj_rows *rows = q_rows(s, sql, p1, p2);
    aj_rows_free(rows);
}

int64_t q_int(aj_store *s, const char *sql, const char *p1, const char *p2) {
    aj_rows *rows = q_rows(s, sql, p1, p2);
    int64_t v = -1;
    if (rows && aj_rows_count(rows) > 0 && aj_rows_columns(rows) > 0) {
        const aj_value *c = aj_rows_cell(rows, 0, 0);
        assert_non_null(c);
        if (c->type == AJ_INT) {
            v = c->integer;
        } else if (c->type == AJ_TEXT) {
            char buf[64];
            size_t len = c->len < sizeof buf - 1 ? c->len : sizeof buf - 1;
            memcpy(buf, c->text, len);
            buf[len] = 0;
            v = strtoll(buf, NULL, 10);
        }
    }
    aj_rows_free(rows);
    return v;
}

char *q_text(aj_store *s, const char *sql, const char *p1, const char *p2) {
    aj_rows *rows = q_rows(s, sql, p1, p2);
    char *v = NULL;
    if (rows && aj_rows_count(rows) > 0 && aj_rows_columns(rows) > 0) {
        const aj_value *c = aj_rows_cell(rows, 0, 0);
        assert_non_null(c);
        if (c->type == AJ_TEXT) {
            v = malloc(c->len + 1);
            assert_non_null(v);
            memcpy(v, c->text, c->len);
            v[c->len] = 0;
        } else if (c->type == AJ_INT) {
            v = malloc(32);
            assert_non_null(v);
            snprintf(v, 32, "%lld", (long long)c->integer);
        }
    }
    aj_rows_free(rows);
    return v;
}

char *key_recovery_point(aj_store *s, const char *key) {
    return q_text(s, "SELECT recovery_point FROM acidic_job_keys WHERE idempotency_key = ?",
                  key, NULL);
}

int key_locked(aj_store *s, const char *key) {
    return (int)q_int(s,
                      "SELECT CASE WHEN locked_at IS NULL THEN 0 ELSE 1 END "
                      "FROM acidic_job_keys WHERE idempotency_key = ?",
                      key, NULL);
}

char *key_error(aj_store *s, const char *key) {
    return q_text(s, "SELECT error_object FROM acidic_job_keys WHERE idempotency_key = ?", key,
                  NULL);
}

char *key_attributes(aj_store *s, const char *key) {
    return q_text(s, "SELECT attr_accessors FROM acidic_job_keys WHERE idempotency_key = ?",
                  key, NULL);
}

int64_t count_rows(aj_store *s, const char *table) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    return q_int(s, sql, NULL, NULL);
}

int table_exists(aj_store *s, const char *table) {
    if (g_db == DB_SQLITE || strcmp(aj_store_driver(s), "sqlite") == 0)
        return q_int(s, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                     table, NULL) == 1;
    return q_int(s,
                 "SELECT COUNT(*) FROM information_schema.tables "
                 "WHERE table_schema = current_schema() AND table_name = ?",
                 table, NULL) == 1;
}

void create_app_table(aj_store *s) {
    q_exec(s, "CREATE TABLE app_log (step TEXT NOT NULL)", NULL, NULL);
}

int64_t app_rows(aj_store *s, const char *step) {
    if (!step) return q_int(s, "SELECT COUNT(*) FROM app_log", NULL, NULL);
    return q_int(s, "SELECT COUNT(*) FROM app_log WHERE step = ?", step, NULL);
}

static int is(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static void note_rc(script *sc, int rc) {
    if (rc != AJ_OK && sc->api_rc == AJ_OK) sc->api_rc = rc;
}

int script_step(aj_run *run, const char *step, void *ctx) {
    script *sc = ctx;
    if (sc->ncalls < 32) {
        snprintf(sc->called[sc->ncalls], sizeof sc->called[0], "%s", step);
    }
    sc->ncalls++;
    aj_store *s = sc->store ? sc->store : aj_run_store(run);
    if (sc->write_app) {
        aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
        note_rc(sc, aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL));
    }
    if (is(sc->attrs_at, step)) {
        note_rc(sc, aj_run_set_attributes(run, sc->attrs_doc, strlen(sc->attrs_doc)));
    }
    if (is(sc->stage_at, step)) {
        for (int i = 0; i < sc->n_stage; i++) {
            char payload[32];
            int len = snprintf(payload, sizeof payload, "p%d", i);
            int64_t id = 0;
            note_rc(sc, aj_run_stage(run, "activejob", "StagedJob", payload, (size_t)len, &id));
            if (sc->nids < 64) sc->ids[sc->nids++] = id;
        }
    }
    if (is(sc->await_at, step)) {
        for (int i = 0; i < sc->n_await; i++) {
            char payload[32];
            int len = snprintf(payload, sizeof payload, "c%d", i);
            int64_t id = 0;
            note_rc(sc, aj_run_await(run, "sidekiq", "ChildJob", payload, (size_t)len, &id));
            if (sc->nids < 64) sc->ids[sc->nids++] = id;
        }
        if (!sc->no_continuation)
            note_rc(sc, aj_run_set_continuation(run, "sidekiq", "ContinueJob", "cont", 4));
    }
    if (is(sc->goto_at, step)) note_rc(sc, aj_run_goto(run, sc->goto_to));
    if (is(sc->finish_at, step)) note_rc(sc, aj_run_finish(run));
    if (is(sc->fail_at, step)) {
        if (sc->error_doc) note_rc(sc, aj_run_set_error(run, sc->error_doc, strlen(sc->error_doc)));
        return 1;
    }
    return 0;
}

const char *script_calls(const script *sc) {
    static char buf[1024];
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < sc->ncalls && i < 32; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i ? "," : "",
                                 sc->called[i]);
    return buf;
}

int recorder_enqueue(void *ctx, const aj_staged_job *job) {
    recorder *r = ctx;
    if (r->n < 64) {
        int i = r->n;
        r->ids[i] = job->id;
        snprintf(r->adapter[i], sizeof r->adapter[i], "%s", job->adapter ? job->adapter : "(null)");
        snprintf(r->job_name[i], sizeof r->job_name[i], "%s",
                 job->job_name ? job->job_name : "(null)");
        size_t len = job->payload_len < sizeof r->payload[i] - 1 ? job->payload_len
                                                                  : sizeof r->payload[i] - 1;
        if (job->payload) memcpy(r->payload[i], job->payload, len);
        r->payload[i][len] = 0;
        r->payload_len[i] = job->payload_len;
        if (r->check) {
            char id[32];
            snprintf(id, sizeof id, "%lld", (long long)job->id);
            /* integer comparison written so both dialects accept a text parameter */
            r->visible[i] = (int)q_int(r->check,
                                       "SELECT COUNT(*) FROM staged_acidic_jobs "
                                       "WHERE CAST(id AS TEXT) = ?",
                                       id, NULL);
        }
    }
    r->n++;
    return r->reject ? 1 : 0;
}

void barrier_init(barrier *b) {
    if (pipe(b->fds) != 0) fail_msg("pipe: %s", strerror(errno));
    fflush(NULL); /* nothing buffered may be written twice by the children */
}

void barrier_wait(barrier *b) {
    close(b->fds[1]);
    char c;
    while (read(b->fds[0], &c, 1) < 0 && errno == EINTR) {
    }
    close(b->fds[0]);
}

void barrier_release(barrier *b) {
    close(b->fds[0]);
    close(b->fds[1]); /* EOF wakes every child at once */
}

int wait_child(int pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int owned_claims_first(void) { return g_db == DB_POSTGRES; }

void assert_last_error(int code) {
    const aj_error *e = aj_error_last();
    assert_non_null(e);
    if (e->code != code)
        fail_msg("last error %s (%s), expected %s", aj_code_name(e->code),
                 e->message ? e->message : "(null)", aj_code_name(code));
    assert_non_null(e->message);
    assert_true(strlen(e->message) > 0);
}
