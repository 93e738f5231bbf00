/*
 * The core calls that may wait on the database, declared once (after ruby-pg's
 * gvl_wrappers.h). For each entry X(name, arity, type1, arg1, ...) this defines
 *
 *     static inline int rb_aj_nogvl_<name>(int release, type1 arg1, ...)
 *
 * which calls the core function with the GVL released when `release` is set (and the
 * GVL is held): other Ruby threads run while this one waits for a lock or a commit.
 * Calls that do no I/O (staging, setting attributes, inspection) are made directly.
 */
#ifndef RB_AJ_GVL_H
#define RB_AJ_GVL_H

#include "rb_aj.h"

#define RB_AJ_FOR_EACH_BLOCKING_CALL(X)                                                  \
    X(aj_store_open, 3, aj_store **, out, const char *, url, const aj_options *, opts)   \
    X(aj_store_migrate, 1, aj_store *, store)                                            \
    X(aj_store_drain, 3, aj_store *, store, int64_t, older_than_ms, size_t *, delivered) \
    X(aj_staged_ack, 3, aj_store *, store, int64_t, staged_id, int *, completed_batch)   \
    X(aj_store_recover, 4, aj_store *, store, size_t, limit, size_t *, requeued,         \
      size_t *, dead)                                                                    \
    X(aj_store_exec, 5, aj_store *, store, const char *, sql, const aj_value *, params,  \
      size_t, nparams, aj_rows **, rows)                                                 \
    X(aj_run_execute, 3, aj_run *, run, aj_step_fn, fn, void *, ctx)

#define RB_AJ_FIELDS_1(t1, a1) t1 a1;
#define RB_AJ_FIELDS_3(t1, a1, t2, a2, t3, a3) t1 a1; t2 a2; t3 a3;
#define RB_AJ_FIELDS_4(t1, a1, t2, a2, t3, a3, t4, a4) t1 a1; t2 a2; t3 a3; t4 a4;
#define RB_AJ_FIELDS_5(t1, a1, t2, a2, t3, a3, t4, a4, t5, a5) \
    t1 a1; t2 a2; t3 a3; t4 a4; t5 a5;
#define RB_AJ_PARAMS_1(t1, a1) t1 a1
#define RB_AJ_PARAMS_3(t1, a1, t2, a2, t3, a3) t1 a1, t2 a2, t3 a3
#define RB_AJ_PARAMS_4(t1, a1, t2, a2, t3, a3, t4, a4) t1 a1, t2 a2, t3 a3, t4 a4
#define RB_AJ_PARAMS_5(t1, a1, t2, a2, t3, a3, t4, a4, t5, a5) \
    t1 a1, t2 a2, t3 a3, t4 a4, t5 a5
#define RB_AJ_NAMES_1(t1, a1) a1
#define RB_AJ_NAMES_3(t1, a1, t2, a2, t3, a3) a1, a2, a3
#define RB_AJ_NAMES_4(t1, a1, t2, a2, t3, a3, t4, a4) a1, a2, a3, a4
#define RB_AJ_NAMES_5(t1, a1, t2, a2, t3, a3, t4, a4, t5, a5) a1, a2, a3, a4, a5
#define RB_AJ_ARGS_1(t1, a1) c->a1
#define RB_AJ_ARGS_3(t1, a1, t2, a2, t3, a3) c->a1, c->a2, c->a3
#define RB_AJ_ARGS_4(t1, a1, t2, a2, t3, a3, t4, a4) c->a1, c->a2, c->a3, c->a4
#define RB_AJ_ARGS_5(t1, a1, t2, a2, t3, a3, t4, a4, t5, a5) c->a1, c->a2, c->a3, c->a4, c->a5

#define RB_AJ_DEFINE_NOGVL(name, n, ...)                                               \
    typedef struct rb_aj_##name##_call {                                               \
        RB_AJ_FIELDS_##n(__VA_ARGS__) int rc;                                          \
    } rb_aj_##name##_call;                                                             \
    static void *rb_aj_##name##_nogvl(void *p)                                         \
    {                                                                                  \
        rb_aj_##name##_call *c = p;                                                    \
        c->rc = name(RB_AJ_ARGS_##n(__VA_ARGS__));                                     \
        return NULL;                                                                   \
    }                                                                                  \
    static inline int rb_aj_nogvl_##name(int release, RB_AJ_PARAMS_##n(__VA_ARGS__))  \
    {                                                                                  \
        rb_aj_##name##_call c = {RB_AJ_NAMES_##n(__VA_ARGS__), 0};                     \
        rb_aj_without_gvl(release, rb_aj_##name##_nogvl, &c);                          \
        return c.rc;                                                                   \
    }

RB_AJ_FOR_EACH_BLOCKING_CALL(RB_AJ_DEFINE_NOGVL)

#endif
