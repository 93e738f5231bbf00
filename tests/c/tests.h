/* Every test of the suite, in the order it runs. Each runs once per database on a fresh
 * database (see harness.c). */
#ifndef AJ_TESTS_H
#define AJ_TESTS_H

#define AJ_TEST_LIST(X)                  \
    /* test_store.c */                   \
    X(test_open_url_forms)               \
    X(test_open_malformed)               \
    X(test_open_redacts_password)        \
    X(test_reopen_idempotent)            \
    X(test_concurrent_migrate)           \
    /* test_borrow.c */                  \
    X(test_borrow_basics)                \
    X(test_borrow_hooks_execute)         \
    X(test_borrow_step_failure)          \
    X(test_borrow_native_transactions)   \
    X(test_borrow_pg_sweeps_plan_once)   \
    X(test_borrow_hook_contract)         \
    X(test_borrow_inside_app_transaction) \
    X(test_borrow_host)                  \
    X(test_borrow_awaits)                \
    X(test_borrow_ack_joins_step)        \
    X(test_step_conflict_retried)        \
    X(test_borrow_admin)                 \
    /* test_workflow.c */                \
    X(test_workflow_definition)          \
    X(test_workflow_empty)               \
    X(test_workflow_column)              \
    /* test_run.c */                     \
    X(test_acquire_new)                  \
    X(test_acquire_mismatch)             \
    X(test_acquire_locked)               \
    X(test_acquire_lock_timeout)         \
    X(test_acquire_finished)             \
    X(test_steps_advance)                \
    X(test_step_failure_and_retry)       \
    X(test_step_finish_early)            \
    X(test_step_goto)                    \
    X(test_unknown_recovery_point)       \
    X(test_attributes)                   \
    /* test_outbox.c */                  \
    X(test_stage_enqueued_after_commit)  \
    X(test_stage_rolled_back_with_step)  \
    X(test_drain)                        \
    X(test_enqueue_rejected_left_for_drain) \
    X(test_drain_pages)                  \
    X(test_drain_unstamped_not_due)      \
    X(test_store_exec)                   \
    X(test_stage_deferred_many)          \
    /* test_await.c */                   \
    X(test_await_countdown)              \
    X(test_await_misuse)                 \
    X(test_await_release)                \
    X(test_await_recovered)              \
    /* test_concurrency.c */             \
    X(test_race_acquire_new_key)         \
    X(test_race_batch_countdown)         \
    X(test_race_many_keys)               \
    /* test_schema.c */                  \
    X(test_upgrade_from_070)             \
    X(test_timestamps_utc)               \
    X(test_unique_index)                 \
    X(test_run_row_deleted)              \
    X(test_run_sqlite_transactions_of_a_new_run) \
    /* test_edge.c */                    \
    X(test_step_reentrant)               \
    X(test_step_sql_error)               \
    X(test_inline_queue)                 \
    X(test_fail_after_takeover)          \
    /* test_recover.c */                 \
    X(test_recover_stranded)             \
    X(test_recover_failed_retry)         \
    X(test_recover_dead)                 \
    X(test_recover_skips)                \
    X(test_recover_concurrent)           \
    X(test_recover_plain_step_writes_no_index) \
    /* test_tables.c */                  \
    X(test_tables_070_shapes)            \
    X(test_tables_column_case)           \
    X(test_tables_recreated)             \
    X(test_tables_cleaned)               \
    X(test_tables_newer_refused)         \
    X(test_tables_large_arguments)       \
    X(test_tables_oldest_row_of_key)     \
    /* test_misuse.c */                  \
    X(test_misuse_step_transaction_control) \
    X(test_misuse_step_commits_natively) \
    X(test_misuse_key_of_another_job)    \
    X(test_misuse_failed_step_without_error) \
    X(test_misuse_huge_durations)        \
    X(test_events)                       \
    /* test_admin.c */                   \
    X(test_admin_state_names)            \
    X(test_admin_list_filters)           \
    X(test_admin_list_paging)            \
    X(test_admin_show_json)              \
    X(test_admin_show_070_yaml)          \
    X(test_admin_show_awaiting)          \
    X(test_admin_retry)                  \
    X(test_admin_reset_reruns_steps)     \
    X(test_admin_refuses_live_lock)      \
    X(test_admin_unlock)                 \
    X(test_admin_discard)                \
    X(test_admin_bulk_retry_1000)        \
    X(test_admin_bulk_forms)             \
    X(test_admin_prune)                  \
    X(test_admin_stats)                  \
    X(test_admin_staged_list)            \
    X(test_admin_error_documents)        \
    X(test_admin_tables_without_timestamps) \
    /* test_input.c */                   \
    X(test_null_arguments)               \
    X(test_nul_bytes_in_documents)       \
    X(test_use_after_fork)               \
    X(test_host_row_cells)               \
    X(test_code_names)                   \
    X(test_error_last)

/* SQLite only. */
#define AJ_SQLITE_TEST_LIST(X)           \
    /* test_util.c (no database: once) */ \
    X(test_format_time_matches_libc)     \
    X(test_lean_statements)              \
    X(test_rows_without_cells)           \
    X(test_scrub_in_a_full_buffer)       \
    X(test_redact_keys_inside_values)    \
    X(test_sqlite_options)               \
    X(test_sqlite_busy)                  \
    /* test_faults.c */                  \
    X(test_sqlite_write_lock_held_late)  \
    X(test_borrow_write_lock_first)      \
    X(test_sqlite_key_created_during_first_step)

/* PostgreSQL only. */
#define AJ_PG_TEST_LIST(X)               \
    /* test_round_trips.c */             \
    X(test_pg_step_round_trips)          \
    X(test_pg_step_writes_one_row_version) \
    X(test_pg_step_wal_leaves_out_the_workflow) \
    X(test_pg_borrowed_step_round_trips) \
    X(test_pg_commit_in_body_inside_app_transaction) \
    X(test_pg_begin_in_body_inside_lazy_app_transaction) \
    X(test_pg_begin_in_body)             \
    X(test_pg_acquisition_uses_the_key_index) \
    /* test_concurrency.c */             \
    X(test_pg_serialization_conflict)    \
    /* test_faults.c */                  \
    X(test_pg_discard_all_owned)         \
    X(test_pg_borrowed_statements_discarded) \
    X(test_pg_borrowed_connection_cut_anywhere) \
    X(test_pg_borrowed_statements_named) \
    /* last: restart the PostgreSQL server */ \
    X(test_pg_reconnect)                 \
    X(test_pg_crash_between_steps)       \
    X(test_pg_crash_mid_step)           \
    X(test_pg_borrowed_connection_cut)

#define AJ_DECLARE_TEST(name) void name(void **state);
AJ_TEST_LIST(AJ_DECLARE_TEST)
AJ_SQLITE_TEST_LIST(AJ_DECLARE_TEST)
AJ_PG_TEST_LIST(AJ_DECLARE_TEST)

#endif
