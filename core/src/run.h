/* A run: one execution of a workflow under an idempotency key. */
#ifndef AJ_RUN_H
#define AJ_RUN_H

#include "store.h"
#include "workflow.h"

/* The part of a run a step changes, kept aside until the step's transaction ends. */
typedef struct aj_run_state {
    char *recovery_point;
    char lock[32]; /* our locked_at, exactly as written: the lock token */
    int locked;
    int status;
    char *attrs;
    size_t attrs_len;
    int attrs_dirty;
} aj_run_state;

struct aj_run {
    aj_store *store;
    const aj_workflow *wf;
    int64_t id;
    char *key;
    aj_run_state cur;
    aj_run_state saved; /* valid while has_saved: the state before the step */
    int has_saved;
    char *error;
    size_t error_len;

    /* The step in progress (between the row lock and the commit). */
    int in_step;
    size_t step_index;
    int finish;
    long goto_index;
    int64_t batch_id;
    int64_t awaited;
    char *cont_adapter, *cont_job_name, *cont_payload;
    size_t cont_len;
};

/* Guard for calls that belong inside a step callback. */
int aj_run_in_step(aj_run *run, const char *fn);

/* outbox.c: insert a staged row in the open transaction (batch_id 0: none) and remember
 * it for delivery after commit. */
int aj_outbox_stage(aj_store *store, int64_t batch_id, const char *adapter,
                    const char *job_name, const char *payload, size_t payload_len,
                    int64_t *id);
/* outbox.c: check a job's adapter, name and payload. */
int aj_outbox_check_job(const char *adapter, const char *job_name, const char *payload,
                        size_t payload_len);

/* batch.c: write the count and continuation of the step's batch. */
int aj_batch_arm(aj_run *run);
/* batch.c: count down the batch of an acknowledged job; stage the continuation when it
 * completes. *completed set to 1 then. */
int aj_batch_countdown(aj_store *store, int64_t batch_id, int *completed);
/* batch.c: forget the step's batch state. */
void aj_batch_reset(aj_run *run);

#endif
