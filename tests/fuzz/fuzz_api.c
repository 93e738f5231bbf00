/*
 * libFuzzer target: arbitrary bytes through the public API on an in-memory SQLite store.
 *
 * The input is cut at 0xFF bytes into fields: step names (up to 4), then the idempotency
 * key, job arguments, attributes, a staged payload, a goto target and an error document.
 * Every call must either succeed or fail with an error code and a message: no crash, no
 * leak, no undefined behaviour (built with -fsanitize=fuzzer,address,undefined), and the
 * store stays usable (checked at the end of every input).
 *
 *   scripts/test.sh runs it for a bounded number of inputs; by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -Icore/include core/src/[a-z]*.c \
 *         tests/fuzz/fuzz_api.c -lsqlite3 -lpq -o fuzz_api && ./fuzz_api -max_total_time=60
 */
#include "acidic_job.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 10

typedef struct field {
    const char *p;
    size_t len;
} field;

static aj_store *store;

static int enqueue(void *ctx, const aj_staged_job *job)
{
    (void)ctx;
    /* Touch every byte: a wrong length would show up under ASan. */
    volatile size_t sum = 0;
    for (size_t i = 0; i < job->payload_len; i++)
        sum += (unsigned char)job->payload[i];
    (void)sum;
    return job->id % 2 ? 0 : 1; /* refuse some: they stay for the drain */
}

typedef struct ctx {
    field *f;
    int fail;
} ctx;

static int step(aj_run *run, const char *name, void *vctx)
{
    ctx *c = vctx;
    (void)name;
    aj_run_stage(run, "fuzz", "FuzzJob", c->f[7].p, c->f[7].len, NULL);
    aj_run_set_attributes(run, c->f[6].p, c->f[6].len);
    if (c->f[8].len) {
        char *target = strndup(c->f[8].p, c->f[8].len);
        if (target) {
            aj_run_goto(run, target);
            free(target);
        }
    }
    if (c->fail) {
        aj_run_set_error(run, c->f[9].p, c->f[9].len);
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* called by libFuzzer */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store) {
        if (aj_store_open(&store, "sqlite::memory:", NULL) != AJ_OK)
            abort();
        aj_store_set_enqueue(store, enqueue, NULL);
    }
    field f[MAX_FIELDS] = {{0}};
    size_t nf = 0, start = 0;
    for (size_t i = 0; i <= size && nf < MAX_FIELDS; i++) {
        if (i == size || data[i] == 0xFF) {
            f[nf].p = (const char *)data + start;
            f[nf].len = i - start;
            nf++;
            start = i + 1;
        }
    }

    aj_workflow *wf;
    if (aj_workflow_new(&wf) != AJ_OK)
        abort();
    for (int i = 0; i < 4; i++) {
        char *name = strndup(f[i].p ? f[i].p : "", f[i].len);
        if (!name)
            abort();
        const char *awaits[1] = {name};
        aj_workflow_add_step(wf, name, awaits, i == 3 ? 1 : 0);
        free(name);
    }
    char *key = strndup(f[4].p ? f[4].p : "", f[4].len);
    if (!key)
        abort();
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = "FuzzJob";
    p.args = f[5].p;
    p.args_len = f[5].len;
    p.attributes = f[6].p;
    p.attributes_len = f[6].len;
    for (int attempt = 0; attempt < 2; attempt++) {
        aj_run *run = NULL;
        if (aj_run_acquire(&run, store, wf, &p) == AJ_OK) {
            ctx c = {f, attempt == 0 && size % 3 == 0};
            /* Bounded: a step that always jumps back is a loop the workflow asked for. */
            for (int i = 0; i < 8 && aj_run_status(run) == AJ_RUN_READY; i++)
                if (aj_run_step(run, step, &c) != AJ_OK && aj_error_last()->code == AJ_OK)
                    abort(); /* a failure must say why */
            aj_run_free(run);
        } else if (aj_error_last()->message == NULL || aj_error_last()->code == AJ_OK) {
            abort(); /* a failure must say why */
        }
    }
    size_t delivered;
    aj_store_drain(store, 0, &delivered);
    aj_staged_ack(store, (int64_t)size + 1, NULL);
    free(key);
    aj_workflow_free(wf);

    /* Keep the in-memory database small over millions of inputs. */
    static unsigned inputs;
    if (++inputs % 512 == 0 &&
        (aj_store_exec(store, "DELETE FROM acidic_job_keys", NULL, 0, NULL) != AJ_OK ||
         aj_store_exec(store, "DELETE FROM staged_acidic_jobs", NULL, 0, NULL) != AJ_OK ||
         aj_store_exec(store, "DELETE FROM acidic_job_batches", NULL, 0, NULL) != AJ_OK))
        abort();

    /* The store is still usable. */
    aj_rows *rows = NULL;
    if (aj_store_exec(store, "SELECT count(*) FROM acidic_job_keys", NULL, 0, &rows) != AJ_OK)
        abort();
    aj_rows_free(rows);
    return 0;
}
