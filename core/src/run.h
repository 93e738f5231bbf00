/* A run: one execution of a workflow under an idempotency key. */
#ifndef AJ_RUN_H
#define AJ_RUN_H

#include "store.h"
#include "workflow.h"

/* The part of a run a transaction changes, kept aside until the transaction ends (the
 * saved copy shares its pointers: whoever replaces a field must not free the old one
 * while it is also the saved one). */
typedef struct aj_run_state {
    int status;
    int attempts;
    char *recovery_point;
    char lock[32]; /* our locked_at, exactly as written: the lock token */
    int locked;
    char *attrs;
    size_t attrs_len;
    int attrs_dirty;
} aj_run_state;

struct aj_run {
    aj_store *store;
    const aj_workflow *wf;
    int64_t id;         /* the row in acidic_job_keys, 0 until there is one */
    /* The parameters (copied). */
    char *key, *job_name, *args, *init_attrs;
    size_t args_len, init_attrs_len;
    int has_args;
    int64_t want_id;
    aj_args_equal_fn args_equal;
    void *args_equal_ctx;
    char *resume_adapter, *resume_job_name, *resume_payload;
    size_t resume_len;

    aj_run_state cur;
    aj_run_state saved; /* valid while has_saved: the state before the transaction */
    int has_saved;
    char *error;        /* the recorded error document, or the one to record */
    size_t error_len;
    int error_from_step; /* aj_run_set_error was called in this step */
    int attempt_counted; /* this attempt is counted in the database (committed) */
    int seen_attempts;   /* the attempts the row held when acquisition read it */
    int peeked;          /* SQLite: acquired by a read of its own; the step claims it */
    int peek_missing;    /* ... and the key had no row: the step creates it */

    /* The transaction in progress. */
    int acquiring;        /* this transaction acquires the run */
    int new_row;          /* ... and created its row */
    int pending_create;   /* ... and will create it last (SQLite: no write before the step's) */
    int claimed;          /* the row already holds our token and the planned next step */
    int row_locked;       /* ... or is row-locked, unchanged, till the step's one claim at
                             its end (owned PostgreSQL) */
    char tx_lock[32];     /* the row's locked_at in this transaction (when tx_locked) */
    int tx_locked;
    char step_token[32];  /* the lock token this step writes */
    const char *step_planned; /* the step that normally follows (owned by the workflow) */
    char seen_lock[32];   /* the locked_at acquisition read (compare-and-set token) */
    int seen_locked;
    int64_t step_started_us;
    int in_step;
    size_t step_index;
    int finish;
    int release;          /* aj_run_release: unlock at the next step */
    long goto_index;
    int64_t batch_id;
    int64_t awaited;
    char *cont_adapter, *cont_job_name, *cont_payload;
    size_t cont_len;
    /* Decided by the step body, applied when its transaction commits. */
    char *plan_rp;
    int plan_locked;
    char plan_lock[32];
    int plan_status;
};

/* Guard for calls that belong inside a step callback. */
int aj_run_check_in_step(aj_run *run, const char *fn);

/* outbox.c: stage a job in the open transaction (batch_id 0: none), inserted at once
 * when *id is wanted, else with the transaction's last round trip; delivered after
 * commit. */
int aj_outbox_stage(aj_store *store, int64_t run_id, int64_t batch_id, const char *adapter,
                    const char *job_name, const char *payload, size_t payload_len,
                    int64_t *id);
/* outbox.c: check a job's adapter, name and payload. */
int aj_outbox_check_job(const char *adapter, const char *job_name, const char *payload,
                        size_t payload_len);
/* outbox.c: write the count and continuation of the step's batch. */
int aj_batch_arm(aj_run *run);
/* outbox.c: end a batch none of whose jobs is left, staging its continuation (one caller
 * only: *completed = 1 for it). In the open transaction. */
int aj_batch_complete(aj_store *store, int64_t batch_id, int *completed);
/* outbox.c: forget the step's batch state. */
void aj_batch_reset(aj_run *run);

#endif
