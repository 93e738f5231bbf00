/* AcidicJob::Native::Admin: the core's operator operations (aj_admin_*, decision 013) as
 * module functions over a Native::Store. Results come back as Hashes of Integers,
 * Strings and nil (times in microseconds since 1970); lib/acidic_job/admin.rb turns them
 * into the Ruby objects an operator sees. Every core result is freed here, also when
 * converting it raises. */
#include "rb_aj.h"

#include <string.h>

static VALUE mAdmin;

static VALUE opt_str(const char *s) { return s ? rb_utf8_str_new_cstr(s) : Qnil; }
static VALUE opt_doc(const char *s, size_t len) { return s ? rb_utf8_str_new(s, (long)len) : Qnil; }
static VALUE opt_time(int64_t us) { return us ? LL2NUM(us) : Qnil; }
static VALUE opt_id(int64_t id) { return id ? LL2NUM(id) : Qnil; }

#define SET(h, name, value) rb_hash_aset((h), ID2SYM(rb_intern(name)), (value))

static const char *opt_cstr(VALUE v, const char *what)
{
    if (NIL_P(v))
        return NULL;
    StringValue(v);
    if (memchr(RSTRING_PTR(v), 0, (size_t)RSTRING_LEN(v)))
        rb_raise(rb_aj_error_class(AJ_EINVALID), "%s must not contain a NUL byte", what);
    return StringValueCStr(v);
}

/* --- conversions ---------------------------------------------------------------------- */

static VALUE run_to_ruby(const aj_admin_run *r)
{
    VALUE h = rb_hash_new();
    SET(h, "id", LL2NUM(r->id));
    SET(h, "key", opt_str(r->key));
    SET(h, "job_name", opt_str(r->job_name));
    SET(h, "state", opt_str(aj_admin_state_name(r->state)));
    SET(h, "recovery_point", opt_str(r->recovery_point));
    SET(h, "attempts", INT2NUM(r->attempts));
    SET(h, "locked_at", opt_time(r->locked_at_us));
    SET(h, "locked_by", opt_str(r->locked_by));
    SET(h, "error_class", opt_str(r->error_class));
    SET(h, "error_message", opt_str(r->error_message));
    SET(h, "updated_at", opt_time(r->updated_at_us));
    SET(h, "created_at", opt_time(r->created_at_us));
    SET(h, "last_run_at", opt_time(r->last_run_at_us));
    SET(h, "recover_at", opt_time(r->recover_at_us));
    SET(h, "dead_at", opt_time(r->dead_at_us));
    SET(h, "awaiting_batch_id", opt_id(r->awaiting_batch_id));
    return h;
}

static VALUE staged_to_ruby(const aj_admin_staged *st)
{
    VALUE h = rb_hash_new();
    SET(h, "id", LL2NUM(st->id));
    SET(h, "adapter", opt_str(st->adapter));
    SET(h, "job_name", opt_str(st->job_name));
    SET(h, "payload", opt_doc(st->payload, st->payload_len));
    SET(h, "run_id", opt_id(st->run_id));
    SET(h, "batch_id", opt_id(st->batch_id));
    SET(h, "created_at", opt_time(st->created_at_us));
    SET(h, "delivered_at", opt_time(st->delivered_at_us));
    return h;
}

static VALUE batch_to_ruby(const aj_admin_batch *b)
{
    VALUE h = rb_hash_new();
    SET(h, "id", LL2NUM(b->id));
    SET(h, "run_id", opt_id(b->run_id));
    SET(h, "step", opt_str(b->step));
    SET(h, "remaining", LL2NUM(b->remaining));
    SET(h, "continuation_adapter", opt_str(b->continuation_adapter));
    SET(h, "continuation_job_name", opt_str(b->continuation_job_name));
    SET(h, "created_at", opt_time(b->created_at_us));
    SET(h, "updated_at", opt_time(b->updated_at_us));
    return h;
}

static VALUE error_to_ruby(const aj_admin_error *e)
{
    VALUE h = rb_hash_new();
    SET(h, "format", opt_str(e->format));
    SET(h, "class_name", opt_str(e->class_name));
    SET(h, "message", opt_str(e->message));
    SET(h, "summary", opt_str(e->summary));
    VALUE bt = rb_ary_new_capa((long)e->backtrace_count);
    for (size_t i = 0; i < e->backtrace_count; i++)
        rb_ary_push(bt, rb_utf8_str_new_cstr(e->backtrace[i]));
    SET(h, "backtrace", bt);
    return h;
}

static const char *const step_states[] = {NULL, "done", "current", "pending"};

static VALUE detail_to_ruby(const aj_admin_detail *d)
{
    VALUE h = rb_hash_new();
    SET(h, "run", run_to_ruby(d->run));
    SET(h, "job_args", opt_doc(d->job_args, d->job_args_len));
    SET(h, "attributes", opt_doc(d->attributes, d->attributes_len));
    SET(h, "workflow", opt_doc(d->workflow, d->workflow_len));
    VALUE steps = rb_ary_new_capa((long)d->n_steps);
    for (size_t i = 0; i < d->n_steps; i++) {
        const aj_admin_step *st = d->steps[i];
        VALUE s = rb_hash_new();
        SET(s, "name", opt_str(st->name));
        SET(s, "state", opt_str(st->state >= 1 && st->state <= 3 ? step_states[st->state] : NULL));
        VALUE awaits = rb_ary_new_capa((long)st->n_awaits);
        for (size_t j = 0; j < st->n_awaits; j++)
            rb_ary_push(awaits, rb_utf8_str_new_cstr(st->awaits[j]));
        SET(s, "awaits", awaits);
        rb_ary_push(steps, s);
    }
    SET(h, "steps", steps);
    SET(h, "error_document", opt_doc(d->error_document, d->error_document_len));
    SET(h, "error", d->error ? error_to_ruby(d->error) : Qnil);
    VALUE staged = rb_ary_new_capa((long)d->n_staged);
    for (size_t i = 0; i < d->n_staged; i++)
        rb_ary_push(staged, staged_to_ruby(d->staged[i]));
    SET(h, "staged", staged);
    SET(h, "batch", d->batch ? batch_to_ruby(d->batch) : Qnil);
    if (d->resume_adapter) {
        VALUE r = rb_hash_new();
        SET(r, "adapter", opt_str(d->resume_adapter));
        SET(r, "job_name", opt_str(d->resume_job_name));
        SET(r, "payload", opt_doc(d->resume_payload, d->resume_payload_len));
        SET(h, "resume", r);
    } else {
        SET(h, "resume", Qnil);
    }
    return h;
}

static VALUE counts_to_ruby(const aj_admin_count *const *counts, size_t n, int with_job)
{
    VALUE out = rb_ary_new_capa((long)n);
    for (size_t i = 0; i < n; i++) {
        VALUE c = rb_hash_new();
        if (with_job)
            SET(c, "job_name", opt_str(counts[i]->job_name));
        SET(c, "state", opt_str(aj_admin_state_name(counts[i]->state)));
        SET(c, "count", SIZET2NUM(counts[i]->count));
        rb_ary_push(out, c);
    }
    return out;
}

static VALUE stats_to_ruby(const aj_admin_stats *st)
{
    VALUE h = rb_hash_new();
    SET(h, "total", SIZET2NUM(st->total));
    SET(h, "states", counts_to_ruby(st->states, st->n_states, 0));
    SET(h, "jobs", counts_to_ruby(st->jobs, st->n_jobs, 1));
    SET(h, "oldest_stranded", st->oldest_stranded ? run_to_ruby(st->oldest_stranded) : Qnil);
    SET(h, "staged_backlog", SIZET2NUM(st->staged_backlog));
    SET(h, "oldest_staged", st->oldest_staged ? staged_to_ruby(st->oldest_staged) : Qnil);
    SET(h, "open_batches", SIZET2NUM(st->open_batches));
    SET(h, "oldest_batch", st->oldest_batch ? batch_to_ruby(st->oldest_batch) : Qnil);
    return h;
}

/* --- the filter ----------------------------------------------------------------------- */

/* A Hash with the aj_admin_filter's fields as Symbol keys (all optional). The strings it
 * points into are kept alive by `keep` for the call. */
static void filter_from(VALUE h, aj_admin_filter *f, VALUE keep)
{
    aj_admin_filter init = AJ_ADMIN_FILTER_INIT;
    *f = init;
    if (NIL_P(h))
        return;
    Check_Type(h, T_HASH);
    VALUE v;
#define FIELD(name) (v = rb_hash_aref(h, ID2SYM(rb_intern(name))), !NIL_P(v))
    if (FIELD("states"))
        f->states = NUM2UINT(v);
    if (FIELD("job_name")) {
        rb_ary_push(keep, v);
        f->job_name = opt_cstr(v, "job_name");
    }
    if (FIELD("key_prefix")) {
        rb_ary_push(keep, v);
        f->key_prefix = opt_cstr(v, "key_prefix");
    }
    if (FIELD("updated_before_us"))
        f->updated_before_us = NUM2LL(v);
    if (FIELD("updated_since_us"))
        f->updated_since_us = NUM2LL(v);
    if (FIELD("after_id"))
        f->after_id = NUM2LL(v);
    if (FIELD("descending"))
        f->descending = RTEST(v) ? 1 : 0;
    if (FIELD("limit")) {
        long long limit = NUM2LL(v);
        if (limit < 0)
            rb_raise(rb_aj_error_class(AJ_EINVALID), "limit must be >= 0, not %lld", limit);
        f->limit = (size_t)limit;
    }
#undef FIELD
}

/* --- calls without the GVL -------------------------------------------------------------
 * One struct for every blocking admin call: `op` says which core function runs. */
enum admin_op {
    OP_LIST, OP_SHOW, OP_RETRY, OP_RESET, OP_UNLOCK, OP_DISCARD, OP_BULK, OP_PRUNE, OP_STATS,
    OP_STAGED_LIST
};

typedef struct progress_ctx {
    VALUE block;       /* called with (done, total); nil: no progress */
    rb_aj_capture cap; /* what the block raised (the call stopped there) */
    size_t done, total;
} progress_ctx;

typedef struct admin_call {
    enum admin_op op;
    aj_store *store;
    const aj_admin_filter *filter;
    const char *key;
    int64_t run_id;
    const char *step;
    unsigned flags;
    int action;
    progress_ctx *progress;
    size_t changed, skipped;
    aj_admin_page *page;
    aj_admin_detail *detail;
    aj_admin_stats *stats;
    aj_admin_staged_page *staged_page;
    int rc;
} admin_call;

static VALUE progress_invoke(VALUE arg)
{
    progress_ctx *p = (progress_ctx *)arg;
    return rb_funcall(p->block, rb_intern("call"), 2, SIZET2NUM(p->done), SIZET2NUM(p->total));
}

/* The core's progress callback. What the block raises (Interrupt included) stops the
 * call at once; it is raised again once the core has returned. */
static int progress_cb(void *ctx, size_t done, size_t total)
{
    progress_ctx *p = ctx;
    if (NIL_P(p->block))
        return 0;
    p->done = done;
    p->total = total;
    rb_aj_callback(&p->cap, progress_invoke, (VALUE)p);
    return p->cap.state ? 1 : 0;
}

static void *admin_call_nogvl(void *arg)
{
    admin_call *c = arg;
    aj_admin_progress_fn progress = c->progress ? progress_cb : NULL;
    switch (c->op) {
    case OP_LIST:
        c->rc = aj_admin_list(c->store, c->filter, &c->page);
        break;
    case OP_SHOW:
        c->rc = aj_admin_show(c->store, c->key, c->run_id, &c->detail);
        break;
    case OP_RETRY:
        c->rc = aj_admin_retry(c->store, c->key, c->run_id, c->flags);
        break;
    case OP_RESET:
        c->rc = aj_admin_reset(c->store, c->key, c->run_id, c->step, c->flags);
        break;
    case OP_UNLOCK:
        c->rc = aj_admin_unlock(c->store, c->key, c->run_id, c->flags);
        break;
    case OP_DISCARD:
        c->rc = aj_admin_discard(c->store, c->key, c->run_id, c->flags);
        break;
    case OP_BULK:
        c->rc = aj_admin_bulk(c->store, c->action, c->step, c->filter, c->flags, progress,
                              c->progress, &c->changed, &c->skipped);
        break;
    case OP_PRUNE:
        c->rc = aj_admin_prune(c->store, c->filter, progress, c->progress, &c->changed);
        break;
    case OP_STATS:
        c->rc = aj_admin_stats_read(c->store, &c->stats);
        break;
    case OP_STAGED_LIST: /* run_id: the cursor, changed: the limit */
        c->rc = aj_admin_staged_list(c->store, c->run_id, c->changed, &c->staged_page);
        break;
    }
    return NULL;
}

/* A result is dropped when the call raises after all (an interrupt in a hook). */
static void results_free(admin_call *c)
{
    aj_admin_page_free(c->page);
    aj_admin_detail_free(c->detail);
    aj_admin_stats_free(c->stats);
    aj_admin_staged_page_free(c->staged_page);
    c->staged_page = NULL;
    c->page = NULL;
    c->detail = NULL;
    c->stats = NULL;
}

/* Run `c` on `store_obj`'s store; raise what its hooks or the progress block raised, or
 * the core's error (rb_aj_store_check raises for an interrupt in a hook even when the
 * call succeeded). */
static void admin_run(VALUE store_obj, admin_call *c)
{
    rb_aj_store *s = rb_aj_store_get(store_obj);
    c->store = s->store;
    rb_aj_store_begin_call(s);
    rb_aj_without_gvl(rb_aj_store_nogvl(s), admin_call_nogvl, c);
    int interrupted = s->hook.state && (NIL_P(s->hook.exc) ||
                                        !rb_obj_is_kind_of(s->hook.exc, rb_eStandardError));
    if (c->rc || interrupted || (c->progress && c->progress->cap.state))
        results_free(c);
    if (c->progress && c->progress->cap.state) {
        aj_error_clear();
        rb_aj_reraise(&c->progress->cap);
    }
    rb_aj_store_check(s, c->rc);
    RB_GC_GUARD(store_obj);
}

/* A run is named by a key (String or nil) and an id (Integer, 0 or nil: none). */
static void target_from(admin_call *c, VALUE key, VALUE id)
{
    c->key = opt_cstr(key, "the key");
    c->run_id = NIL_P(id) ? 0 : NUM2LL(id);
}

/* --- module functions ----------------------------------------------------------------- */

/* Admin.state_parse(name) -> the aj_admin_state bits the name stands for. */
static VALUE admin_state_parse(VALUE mod, VALUE name)
{
    unsigned states = 0;
    int rc = aj_admin_state_parse(opt_cstr(name, "a state name"), &states);
    RB_GC_GUARD(name);
    if (rc)
        rb_aj_raise(rc);
    return UINT2NUM(states);
}

/* Admin.state_name(bit) -> "running", ... or nil. */
static VALUE admin_state_name(VALUE mod, VALUE state) { return opt_str(aj_admin_state_name(NUM2INT(state))); }

static VALUE page_convert(VALUE arg)
{
    const aj_admin_page *page = (const aj_admin_page *)arg;
    VALUE runs = rb_ary_new_capa((long)page->count);
    for (size_t i = 0; i < page->count; i++)
        rb_ary_push(runs, run_to_ruby(page->runs[i]));
    return rb_assoc_new(runs, opt_id(page->next_cursor));
}

static VALUE page_release(VALUE arg)
{
    aj_admin_page_free((aj_admin_page *)arg);
    return Qnil;
}

/* Admin.list(store, filter) -> [[run, ...], next_cursor or nil] */
static VALUE admin_list(VALUE mod, VALUE store, VALUE filter)
{
    VALUE keep = rb_ary_new();
    aj_admin_filter f;
    filter_from(filter, &f, keep);
    admin_call c = {.op = OP_LIST, .filter = &f};
    admin_run(store, &c);
    RB_GC_GUARD(keep);
    return rb_ensure(page_convert, (VALUE)c.page, page_release, (VALUE)c.page);
}

static VALUE detail_convert(VALUE arg) { return detail_to_ruby((const aj_admin_detail *)arg); }

static VALUE detail_release(VALUE arg)
{
    aj_admin_detail_free((aj_admin_detail *)arg);
    return Qnil;
}

/* Admin.show(store, key, id) -> Hash (see detail_to_ruby) */
static VALUE admin_show(VALUE mod, VALUE store, VALUE key, VALUE id)
{
    admin_call c = {.op = OP_SHOW};
    target_from(&c, key, id);
    admin_run(store, &c);
    RB_GC_GUARD(key);
    return rb_ensure(detail_convert, (VALUE)c.detail, detail_release, (VALUE)c.detail);
}

static VALUE admin_action(enum admin_op op, VALUE store, VALUE key, VALUE id, VALUE step,
                          VALUE flags)
{
    admin_call c = {.op = op, .flags = NUM2UINT(flags)};
    target_from(&c, key, id);
    c.step = opt_cstr(step, "the step");
    admin_run(store, &c);
    RB_GC_GUARD(key);
    RB_GC_GUARD(step);
    return Qtrue;
}

/* Admin.retry(store, key, id, flags) -> true */
static VALUE admin_retry(VALUE mod, VALUE store, VALUE key, VALUE id, VALUE flags)
{
    return admin_action(OP_RETRY, store, key, id, Qnil, flags);
}

/* Admin.reset(store, key, id, step, flags) -> true */
static VALUE admin_reset(VALUE mod, VALUE store, VALUE key, VALUE id, VALUE step, VALUE flags)
{
    if (NIL_P(step))
        rb_raise(rb_aj_error_class(AJ_EINVALID), "reset needs the step to restart at");
    return admin_action(OP_RESET, store, key, id, step, flags);
}

/* Admin.unlock(store, key, id, flags) -> true */
static VALUE admin_unlock(VALUE mod, VALUE store, VALUE key, VALUE id, VALUE flags)
{
    return admin_action(OP_UNLOCK, store, key, id, Qnil, flags);
}

/* Admin.discard(store, key, id, flags) -> true */
static VALUE admin_discard(VALUE mod, VALUE store, VALUE key, VALUE id, VALUE flags)
{
    return admin_action(OP_DISCARD, store, key, id, Qnil, flags);
}

/* Admin.bulk(store, action, step, filter, flags) { |done, total| } -> [changed, skipped] */
static VALUE admin_bulk(VALUE mod, VALUE store, VALUE action, VALUE step, VALUE filter,
                        VALUE flags)
{
    VALUE keep = rb_ary_new();
    aj_admin_filter f;
    filter_from(filter, &f, keep);
    progress_ctx p = {rb_block_given_p() ? rb_block_proc() : Qnil, RB_AJ_CAPTURE_INIT, 0, 0};
    admin_call c = {.op = OP_BULK, .filter = &f, .action = NUM2INT(action),
                    .flags = NUM2UINT(flags), .progress = &p};
    c.step = opt_cstr(step, "the step");
    admin_run(store, &c);
    RB_GC_GUARD(keep);
    RB_GC_GUARD(step);
    RB_GC_GUARD(p.block);
    return rb_assoc_new(SIZET2NUM(c.changed), SIZET2NUM(c.skipped));
}

/* Admin.prune(store, filter) { |done, total| } -> rows deleted */
static VALUE admin_prune(VALUE mod, VALUE store, VALUE filter)
{
    VALUE keep = rb_ary_new();
    aj_admin_filter f;
    filter_from(filter, &f, keep);
    progress_ctx p = {rb_block_given_p() ? rb_block_proc() : Qnil, RB_AJ_CAPTURE_INIT, 0, 0};
    admin_call c = {.op = OP_PRUNE, .filter = &f, .progress = &p};
    admin_run(store, &c);
    RB_GC_GUARD(keep);
    RB_GC_GUARD(p.block);
    return SIZET2NUM(c.changed);
}

static VALUE stats_convert(VALUE arg) { return stats_to_ruby((const aj_admin_stats *)arg); }

static VALUE stats_release(VALUE arg)
{
    aj_admin_stats_free((aj_admin_stats *)arg);
    return Qnil;
}

/* Admin.stats(store) -> Hash (see stats_to_ruby) */
static VALUE admin_stats(VALUE mod, VALUE store)
{
    admin_call c = {.op = OP_STATS};
    admin_run(store, &c);
    return rb_ensure(stats_convert, (VALUE)c.stats, stats_release, (VALUE)c.stats);
}

static VALUE staged_page_convert(VALUE arg)
{
    const aj_admin_staged_page *page = (const aj_admin_staged_page *)arg;
    VALUE staged = rb_ary_new_capa((long)page->count);
    for (size_t i = 0; i < page->count; i++)
        rb_ary_push(staged, staged_to_ruby(page->staged[i]));
    return rb_assoc_new(staged, opt_id(page->next_cursor));
}

static VALUE staged_page_release(VALUE arg)
{
    aj_admin_staged_page_free((aj_admin_staged_page *)arg);
    return Qnil;
}

/* Admin.staged_list(store, cursor, limit) -> [[staged, ...], next_cursor or nil]: the
 * staged backlog, oldest first */
static VALUE admin_staged_list(VALUE mod, VALUE store, VALUE cursor, VALUE limit)
{
    long long after = NIL_P(cursor) ? 0 : NUM2LL(cursor), n = NIL_P(limit) ? 0 : NUM2LL(limit);
    if (n < 0)
        rb_raise(rb_aj_error_class(AJ_EINVALID), "limit must be >= 0, not %lld", n);
    admin_call c = {.op = OP_STAGED_LIST, .run_id = after, .changed = (size_t)n};
    admin_run(store, &c);
    return rb_ensure(staged_page_convert, (VALUE)c.staged_page, staged_page_release,
                     (VALUE)c.staged_page);
}

static VALUE error_convert(VALUE arg) { return error_to_ruby((const aj_admin_error *)arg); }

static VALUE error_release(VALUE arg)
{
    aj_admin_error_free((aj_admin_error *)arg);
    return Qnil;
}

/* Admin.error_parse(document) -> {format:, class_name:, message:, summary:, backtrace:}:
 * the document read as text (no database, never instantiating anything). */
static VALUE admin_error_parse(VALUE mod, VALUE doc)
{
    StringValue(doc);
    aj_admin_error *e = NULL;
    int rc = aj_admin_error_parse(&e, RSTRING_PTR(doc), (size_t)RSTRING_LEN(doc));
    RB_GC_GUARD(doc);
    if (rc)
        rb_aj_raise(rc);
    return rb_ensure(error_convert, (VALUE)e, error_release, (VALUE)e);
}

void rb_aj_init_admin(void)
{
    mAdmin = rb_define_module_under(rb_aj_mNative, "Admin");
    rb_define_const(mAdmin, "FORCE", UINT2NUM(AJ_ADMIN_FORCE));
    rb_define_const(mAdmin, "NO_ENQUEUE", UINT2NUM(AJ_ADMIN_NO_ENQUEUE));
    VALUE actions = rb_hash_new();
    rb_hash_aset(actions, ID2SYM(rb_intern("retry")), INT2NUM(AJ_ADMIN_RETRY));
    rb_hash_aset(actions, ID2SYM(rb_intern("reset")), INT2NUM(AJ_ADMIN_RESET));
    rb_hash_aset(actions, ID2SYM(rb_intern("unlock")), INT2NUM(AJ_ADMIN_UNLOCK));
    rb_hash_aset(actions, ID2SYM(rb_intern("discard")), INT2NUM(AJ_ADMIN_DISCARD));
    rb_obj_freeze(actions);
    rb_define_const(mAdmin, "ACTIONS", actions);
    /* name => bit, in the core's order */
    VALUE states = rb_hash_new();
    for (unsigned bit = 1; bit <= AJ_ADMIN_ALL_STATES; bit <<= 1)
        rb_hash_aset(states, rb_obj_freeze(rb_utf8_str_new_cstr(aj_admin_state_name((int)bit))),
                     UINT2NUM(bit));
    rb_obj_freeze(states);
    rb_define_const(mAdmin, "STATES", states);
    rb_define_module_function(mAdmin, "state_parse", admin_state_parse, 1);
    rb_define_module_function(mAdmin, "state_name", admin_state_name, 1);
    rb_define_module_function(mAdmin, "list", admin_list, 2);
    rb_define_module_function(mAdmin, "show", admin_show, 3);
    rb_define_module_function(mAdmin, "retry", admin_retry, 4);
    rb_define_module_function(mAdmin, "reset", admin_reset, 5);
    rb_define_module_function(mAdmin, "unlock", admin_unlock, 4);
    rb_define_module_function(mAdmin, "discard", admin_discard, 4);
    rb_define_module_function(mAdmin, "bulk", admin_bulk, 5);
    rb_define_module_function(mAdmin, "prune", admin_prune, 2);
    rb_define_module_function(mAdmin, "stats", admin_stats, 1);
    rb_define_module_function(mAdmin, "staged_list", admin_staged_list, 3);
    rb_define_module_function(mAdmin, "error_parse", admin_error_parse, 1);
}
