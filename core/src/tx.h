/*
 * The one transaction helper of the core. Every transaction the core runs (a step, an
 * acquisition, a failure record, an acknowledgement, a drain page, a recovery sweep,
 * a schema heal) goes through aj_tx, which
 *   - begins and commits on connections whose transactions the core owns, or asks the
 *     host through its aj_host_tx hook table;
 *   - detects the tables on first use, and heals them and runs the body again when a
 *     statement finds a table or column missing (AJ_ESTALE);
 *   - retries serialization failures and busy databases with backoff when the body may
 *     run again (AJ_TXF_RETRY);
 *   - keeps the body's error across the rollback;
 *   - inserts the staged jobs the body left pending with the transaction's last round
 *     trip, and hands them to the enqueue callback after commit (or forgets them after
 *     a rollback).
 * A call made while a body runs (an acknowledgement inside a step) joins the open
 * transaction.
 */
#ifndef AJ_TX_H
#define AJ_TX_H

#include "store.h"

typedef int (*aj_tx_fn)(aj_store *store, void *arg);
/* After each attempt, committed or not, before staged jobs are pushed. */
typedef void (*aj_tx_settle_fn)(aj_store *store, void *arg, int committed);

enum {
    AJ_TXF_WRITE = 1 << 0,        /* the body reads before it writes: SQLite takes the write
                                     lock first (BEGIN IMMEDIATE, or a locking statement in
                                     a host transaction) */
    AJ_TXF_SERIALIZABLE = 1 << 1, /* the core's own PostgreSQL transaction: SERIALIZABLE */
    AJ_TXF_RETRY = 1 << 2,        /* the body may run again after a conflict */
    AJ_TXF_NO_SCHEMA = 1 << 3,    /* do not detect the tables first (the heal itself) */
    AJ_TXF_READ = 1 << 4          /* the body only reads, and needs no snapshot across its
                                     statements: on a driver with AJ_DRV_READS_ALONE, outside
                                     any transaction, it runs without one */
};

/* Run `body(store, arg)` in one transaction. 0, or the body's (or the transaction's)
 * error code with its message. */
int aj_tx(aj_store *store, unsigned flags, aj_tx_fn body, aj_tx_settle_fn settle, void *arg);

/* The body's last statements: the pending staged inserts and `calls`, sent with the
 * COMMIT in one round trip when the core owns the transaction (the transaction is then
 * committed when this returns 0). At most once per transaction. */
int aj_tx_finish(aj_store *store, const aj_call *calls, size_t ncalls);

/* Send the BEGIN the core holds for a transaction it opens on a host's connection
 * (aj_host_tx v4 begin_in_body) before the host's own code runs in it; nothing when it
 * went already, with the core's first statements. */
int aj_tx_send_begin(aj_store *store);

/* 1 when a body of this store is running. */
int aj_tx_active(const aj_store *store);

#endif
