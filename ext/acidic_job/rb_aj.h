/*
 * The Ruby binding of the acidic_job C core: AcidicJob::Native::Store (rb_aj_store.c, its
 * host hooks in rb_aj_host.c), AcidicJob::Native::Workflow (rb_aj_workflow.c) and
 * AcidicJob::Native::Run (rb_aj_run.c). The extension only holds handles, makes calls and
 * maps errors; the DSL, callbacks and models are Ruby (lib/acidic_job).
 */
#ifndef RB_AJ_H
#define RB_AJ_H

#include <ruby.h>
#include <sys/types.h>

#include "acidic_job.h"

extern VALUE rb_aj_mAcidicJob, rb_aj_mNative, rb_aj_cStore, rb_aj_cWorkflow, rb_aj_cRun;

/* A core cell as a Ruby value: Integer, String (UTF-8) or nil. */
VALUE rb_aj_value_to_ruby(const aj_value *v);
/* A Ruby cell (nil, Integer, true/false, String) as a core value pointing into `v`. */
aj_value rb_aj_value_from_ruby(VALUE v);
/* A text document as (pointer, length); nil gives (NULL, 0). */
const char *rb_aj_doc(VALUE v, size_t *len);

/* Raise the AcidicJob::Error subclass for `code`, with the core's last error message. */
void rb_aj_raise(int code) __attribute__((noreturn));
/* The exception class for a core code (for tests and the Ruby layer). */
VALUE rb_aj_error_class(int code);
/* AcidicJob::<name> (an error class of lib/acidic_job/errors.rb). */
VALUE rb_aj_const(const char *name);

/* --- the GVL --------------------------------------------------------------------------
 * Core calls that may wait on the database run without the GVL (rb_aj_gvl.h declares
 * them); every callback from the core into Ruby takes it back through rb_aj_callback.
 * Both nest: a callback may call the core again (a step's exec), which releases it again. */
void *rb_aj_without_gvl(int release, void *(*fn)(void *), void *arg);
void *rb_aj_with_gvl(void *(*fn)(void *), void *arg);

/* What a Ruby callback raised, kept to be re-raised after the core returns: exceptions
 * never unwind through the core's C frames. */
typedef struct rb_aj_capture {
    int state; /* rb_protect state, 0 when nothing was raised */
    VALUE exc; /* the exception (Qnil for a non-local jump such as `break`) */
} rb_aj_capture;

#define RB_AJ_CAPTURE_INIT {0, Qnil}

/* From a core callback: take the GVL (when released), call fn(arg) under rb_protect.
 * On a raise, the first exception is kept in `cap` (later ones of the same call are
 * dropped) and Qundef is returned. */
VALUE rb_aj_callback(rb_aj_capture *cap, VALUE (*fn)(VALUE), VALUE arg);
/* Re-raise a captured exception (if any) and reset `cap`. */
void rb_aj_reraise(rb_aj_capture *cap);
/* "Class: message" of a captured exception, for aj_error_report. */
VALUE rb_aj_capture_message(const rb_aj_capture *cap);

/* --- stores ----------------------------------------------------------------------------
 * The state shared by a Store object and the Run objects made from it. The store is freed
 * when both the Store object and every run are gone, in whichever order the garbage
 * collector finalises them. */
typedef struct rb_aj_store {
    aj_store *store;
    int nruns;       /* live runs that point here */
    int collected;   /* the Store object was finalised */
    int release_gvl; /* 0 for host stores: their I/O is Ruby code anyway */
    int borrowed_sqlite; /* keep is the sqlite3 gem's Database (see rb_aj_store_nogvl) */
    VALUE enqueue;   /* callable(id, adapter, job_name, payload) -> truthy when pushed */
    VALUE events;    /* callable(type, hash) or nil */
    unsigned event_mask; /* bit (1 << type) set: the event is handed to `events` */
    VALUE host;      /* the Ruby transaction host: atomically { body } (+ exec, in_transaction?) */
    VALUE keep;      /* the borrowed native connection object, kept alive */
    VALUE encode_error; /* callable(code_name, message) -> error document, or nil */
    rb_aj_capture hook; /* what the host hooks raised during the current call */
    VALUE last_enqueue_error;
} rb_aj_store;

rb_aj_store *rb_aj_store_get(VALUE self); /* raises when closed */
/* Whether the core's calls on `s` may run without the GVL: not for host stores, nor
 * while a borrowed SQLite connection has Ruby callbacks SQLite calls from inside any
 * statement (the sqlite3 gem's busy_handler, trace, authorizer): they need the GVL. */
int rb_aj_store_nogvl(const rb_aj_store *s);
void rb_aj_store_release(rb_aj_store *s);  /* one run fewer */
/* Before a core call on `s`: forget what the hooks captured during the previous one. */
void rb_aj_store_begin_call(rb_aj_store *s);
/* After a core call returned `rc`: re-raise what a hook raised when the call failed,
 * else raise the core's error. */
void rb_aj_store_check(rb_aj_store *s, int rc);

/* The host hook tables (rb_aj_host.c); ctx is the rb_aj_store. */
extern const aj_host_tx rb_aj_host_tx;
extern const aj_host_tx rb_aj_host_tx_libpq;
extern const aj_host_ops rb_aj_host_ops;

void rb_aj_init_store(void);
void rb_aj_init_workflow(void);
void rb_aj_init_run(void);
void rb_aj_init_admin(void); /* rb_aj_admin.c: AcidicJob::Native::Admin */

/* The core workflow of a Native::Workflow (raises TypeError for anything else). */
const aj_workflow *rb_aj_workflow_get(VALUE obj);

#endif
