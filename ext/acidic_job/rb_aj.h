/*
 * The Ruby binding of the acidic_job C core: AcidicJob::Native::Store and
 * AcidicJob::Native::Run. The extension only holds handles, makes calls and maps
 * errors; the DSL, callbacks and models are Ruby (lib/acidic_job).
 */
#ifndef RB_AJ_H
#define RB_AJ_H

#include <ruby.h>
#include <sys/types.h>

#include "acidic_job.h"

extern VALUE rb_aj_mAcidicJob, rb_aj_mNative, rb_aj_cStore, rb_aj_cRun;

/* A core cell as a Ruby value: Integer, String (UTF-8) or nil. */
VALUE rb_aj_value_to_ruby(const aj_value *v);

/* Raise the AcidicJob::Error subclass for `code`, with the core's last error message. */
void rb_aj_raise(int code) __attribute__((noreturn));
/* The exception class for a core code (for tests and the Ruby layer). */
VALUE rb_aj_error_class(int code);

/* Run `fn(arg)` without the GVL when `release` is set (database I/O in the core), and
 * back with the GVL from inside a core callback. Both nest. */
void *rb_aj_without_gvl(int release, void *(*fn)(void *), void *arg);
void *rb_aj_with_gvl(void *(*fn)(void *), void *arg);

/* A Ruby callback captured for re-raising after the core returns: exceptions never
 * unwind through the core's C frames. */
typedef struct rb_aj_capture {
    int state;  /* rb_protect state, 0 when nothing was raised */
    VALUE exc;  /* the exception (Qnil for a non-local jump such as `break`) */
} rb_aj_capture;

/* Call `fn(arg)` under rb_protect; on a raise, record it in `cap` and return Qundef. */
VALUE rb_aj_protect(rb_aj_capture *cap, VALUE (*fn)(VALUE), VALUE arg);
/* Re-raise a captured exception (if any) and reset `cap`. */
void rb_aj_reraise(rb_aj_capture *cap);

/* The state shared by a Store object and the Run objects made from it. The store is
 * freed when both the Store object and every run are gone, in whichever order the
 * garbage collector finalises them. */
typedef struct rb_aj_store {
    aj_store *store;
    int nruns;        /* live runs that point here */
    int collected;    /* the Store object was finalised */
    int release_gvl;  /* 0 for host stores: their I/O is Ruby code anyway */
    VALUE enqueue;    /* callable(id, adapter, job_name, payload) -> truthy */
    VALUE host;       /* host connection object (host stores) */
    VALUE keep;       /* the borrowed native connection object, kept alive */
    VALUE last_enqueue_error;
} rb_aj_store;

rb_aj_store *rb_aj_store_get(VALUE self); /* raises when closed */
void rb_aj_store_release(rb_aj_store *s);  /* one run fewer */

void rb_aj_init_store(void);
void rb_aj_init_run(void);
void rb_aj_init_admin(void); /* rb_aj_admin.c: AcidicJob::Native::Admin */

#endif
