# frozen_string_literal: true

require_relative "test_helper"
require_relative "support/admin_helpers"

# The operator's Ruby API (AcidicJob::Admin, AcidicJob::Key scopes and actions) over the
# core's aj_admin_* calls, on real workflows and on rows shaped by acidic_job 0.7.0.
class AdminTest < AcidicTest
  include AdminHelpers

  RUN_JSON_KEYS = %w[id key job_name state recovery_point attempts locked_at locked_by error_class
                     error_message updated_at created_at last_run_at recover_at dead_at awaiting_batch_id].freeze
  ISO_TIME = /\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\z/.freeze

  def setup
    skip "the operator suite runs on ActiveRecord's connection (owned stores: test_owned_store_admin)" if owned? && name != "test_owned_store_admin"
    super
    @events = []
    @subscriber = ActiveSupport::Notifications.subscribe(/\A(retry|reset|unlock|discard|bulk|prune)\.acidic_job\z/) do |name, _s, _f, _id, payload|
      @events << [name, payload.dup]
    end
  end

  def teardown
    ActiveSupport::Notifications.unsubscribe(@subscriber) if @subscriber
    super
  end

  # Heavy tests (a thousand runs, worker processes) run once per database, not in every
  # connection-sharing variant.
  def primary_part?
    %w[sqlite postgres].include?(TestDatabase.part)
  end

  def admin
    AcidicJob::Admin
  end

  def test_state_error_is_an_acidic_job_error_with_its_code
    assert_operator AcidicJob::StateError, :<, AcidicJob::Error
    assert_equal AcidicJob::StateError, AcidicJob::Native.error_class(AcidicJob::Native::CODES.fetch(:AJ_ESTATE))
    key = succeeded_run
    error = assert_raises(AcidicJob::StateError) { admin.retry(key) }
    assert_equal :AJ_ESTATE, error.code
    assert_match(/succeeded/, error.message)
  end

  def test_list_filters_pages_with_a_cursor_and_serializes_as_the_web_api
    ok = [succeeded_run("ok-1"), succeeded_run("ok-2")]
    bad = [failed_run("bad-1"), failed_run("bad-2")]
    other = other_failed_run
    waiting = awaiting_run

    all = admin.list
    assert_equal [waiting, other, *bad.reverse, *ok.reverse], all.map(&:key), "newest first"
    assert_nil all.next_cursor
    assert_equal [*ok, *bad, other, waiting], admin.list(order: :asc).map(&:key)

    failed = admin.list(state: :failed)
    assert_equal [other, *bad.reverse], failed.map(&:key)
    assert(failed.all? { |r| r.state == "failed" })
    assert_equal bad.reverse, admin.list(state: "failed", job: AdminChargeJob).map(&:key)
    assert_equal [other, *bad.reverse, *ok.reverse], admin.list(state: "failed,succeeded").map(&:key)
    assert_equal ok.reverse, admin.list(state: %w[finished]).map(&:key)
    assert_equal [waiting], admin.list(state: :awaiting).map(&:key)
    assert_equal [bad[0]], admin.list(key_prefix: bad[0][0, 12]).map(&:key)
    assert_empty admin.list(older_than: "1h").runs
    assert_equal 6, admin.list(older_than: 0).count
    assert_equal 6, admin.list(since: (Time.now.utc - 3600).strftime("%Y-%m-%d")).count
    assert_empty admin.list(since: Time.now.utc + 60).runs

    run = failed.runs.last
    assert_equal "charge", run.recovery_point
    assert_equal "StripeError", run.error_class
    assert_equal "card declined for bad-1", run.error_message
    assert_equal 1, run.attempts
    assert_kind_of Time, run.updated_at
    assert_nil run.locked_at

    # a cursor walks every run once, a page at a time
    seen = []
    cursor = nil
    pages = 0
    loop do
      page = admin.list(limit: 4, cursor: cursor)
      seen.concat(page.map(&:key))
      pages += 1
      break unless (cursor = page.next_cursor)
    end
    assert_equal 2, pages
    assert_equal all.map(&:key), seen
    assert_equal all.map(&:key), admin.current.each_run(limit: 2).map(&:key)

    json = JSON.parse(failed.to_json)
    assert_equal %w[next_cursor runs], json.keys.sort
    assert_equal RUN_JSON_KEYS.sort, json["runs"][0].keys.sort
    assert_match ISO_TIME, json["runs"][0]["updated_at"]
    assert_equal "failed", json["runs"][0]["state"]

    assert_raises(AcidicJob::InvalidArgument) { admin.list(state: "broken") }
    assert_raises(AcidicJob::InvalidArgument) { admin.list(older_than: "soon") }
    assert_raises(AcidicJob::InvalidArgument) { admin.list(since: "yesterday") }
    assert_raises(AcidicJob::InvalidArgument) { admin.list(order: :sideways) }
  end

  def test_show_reads_steps_error_attributes_staged_jobs_and_resume_without_loading_them
    key = failed_run("shown")
    detail = admin.show(key)
    assert_equal key, detail.run.key
    assert_equal [%w[create_ride done], %w[charge current], %w[notify pending]],
                 detail.steps.map { |s| [s.name, s.state] }
    assert_equal "yaml", detail.error.format
    assert_equal "StripeError", detail.error.class_name
    assert_equal "card declined for shown", detail.error.message
    assert_equal "StripeError: card declined for shown", detail.error.summary
    assert_match(/admin_helpers\.rb:\d+:in `charge'/, detail.error.backtrace.first)
    assert_equal "yaml", detail.attributes_format
    assert_match(/\A--- \{"user":"shown","ride_id":\d+\}\n\z/, detail.attributes) # a YAML flow document
    assert_equal "activejob", detail.resume.adapter
    assert_equal "AdminChargeJob", detail.resume.job_name
    assert_equal "---\n- shown\n", detail.job_args

    json = JSON.parse(detail.to_json)
    assert_equal %w[attributes attributes_format batch error job_args resume run staged steps], json.keys.sort
    assert_equal %w[backtrace class_name format message summary], json["error"].keys.sort
    assert_equal %w[awaits name state], json["steps"][0].keys.sort
    assert_equal %w[adapter job_name payload], json["resume"].keys.sort

    # JSON attributes (written by the C or Python layers) are pretty-printed
    conn = AcidicJob::Key.connection
    conn.execute("UPDATE acidic_job_keys SET attr_accessors = #{conn.quote(%({"user":"shown","n":[1,2]}))} WHERE idempotency_key = #{conn.quote(key)}")
    detail = admin.show(key)
    assert_equal "json", detail.attributes_format
    assert_equal JSON.pretty_generate("user" => "shown", "n" => [1, 2]), detail.attributes

    # a run's staged jobs and its open batch
    waiting = awaiting_run
    detail = admin.show(waiting)
    assert_equal "awaiting", detail.run.state
    assert_equal 2, detail.staged.size
    assert_equal %w[KeyedChildJob PlainJob], detail.staged.map(&:job_name).sort
    assert_equal "fan_out", detail.batch.step
    assert_equal 2, detail.batch.remaining
    assert_equal detail.batch.id, detail.run.awaiting_batch_id
    assert_equal [detail.batch.id] * 2, detail.staged.map(&:batch_id)
    assert_equal %w[PlainJob KeyedChildJob], detail.steps.first.awaits

    error = assert_raises(AcidicJob::NotFound) { admin.show("no-such-key") }
    assert_match(/no-such-key/, error.message)
  end

  def test_retry_enqueues_the_run_which_resumes_at_its_recovery_point
    key = failed_run("again")
    record = AcidicJob::Key.find_by(idempotency_key: key)
    assert_equal 1, Ride.where(user: "again").count
    record.retry!
    assert_equal "queued", record.admin_state
    assert_nil record.read_attribute_before_type_cast("error_object")
    assert_equal 1, enqueued.size
    assert_equal AdminChargeJob, enqueued.first[:job]
    perform_enqueued!
    record.reload
    assert record.succeeded?
    assert_equal "succeeded", record.admin_state
    assert_equal 1, Ride.where(user: "again").count, "the committed step did not run again"
    assert_equal 1, Audit.where(event: "charge again").count
    assert_equal ["retry.acidic_job"], @events.map(&:first)
    assert_equal({ action: :retry, force: false, enqueued_by: :core, run_id: record.id, key: key,
                   job_name: "AdminChargeJob", state: "queued" }, @events.first[1])

    error = assert_raises(AcidicJob::StateError) { record.retry! }
    assert_match(/succeeded/, error.message)
  end

  # Steps from the chosen one on run again, with their writes: they exist once more.
  def test_reset_to_a_step_reruns_it_and_its_writes_exist_once_more
    key = succeeded_run("twice")
    perform_enqueued! # the receipt
    record = AcidicJob::Key.find_by(idempotency_key: key)
    assert_equal 1, Ride.where(user: "twice").count
    record.reset_to!(:charge)
    assert_equal "charge", record.recovery_point
    assert_equal "queued", record.admin_state
    perform_enqueued!
    assert record.reload.succeeded?
    assert_equal 1, Ride.where(user: "twice").count, "create_ride was before the step reset to"
    assert_equal 2, Audit.where(event: "charge twice").count
    assert_equal 1, Audit.where(event: "ride twice").count

    record.reset_to!("create_ride")
    perform_enqueued!
    assert record.reload.succeeded?
    assert_equal 2, Ride.where(user: "twice").count
    assert_equal 2, Audit.where(event: "ride twice").count
    assert_equal 3, Audit.where(event: "charge twice").count
    assert_equal %w[reset.acidic_job reset.acidic_job], @events.map(&:first)
    assert_equal "create_ride", @events.last[1][:step]

    error = assert_raises(AcidicJob::UnknownRecoveryPoint) { record.reset_to!(:no_such_step) }
    assert_match(/no_such_step/, error.message)
  end

  def test_operator_actions_are_logged_at_info
    log = StringIO.new
    AcidicJob.config.logger = Logger.new(log, level: Logger::INFO)
    key = failed_run("logged")
    admin.retry(key)
    assert_raises(AcidicJob::StateError) { admin.unlock(key) }
    admin.bulk(:discard, filter: { state: :queued })
    lines = log.string.lines.grep(/operator/)
    assert_match(/\A.*\[acidic_job\] operator retry: run \d+ #{key} \(AdminChargeJob\) is now queued$/, lines[0])
    assert_match(/operator unlock refused: AcidicJob::StateError: cannot unlock run/, lines[1])
    assert_match(/operator bulk discard: 1 changed, 0 skipped$/, lines[2])
    assert_equal 3, lines.size
  ensure
    AcidicJob.config.logger = Logger.new(nil)
  end

  def test_discard_finishes_a_failed_run_and_keeps_it
    key = failed_run("gone")
    record = AcidicJob::Key.find_by(idempotency_key: key)
    record.discard!
    assert record.finished?
    assert_equal "discarded", record.admin_state
    assert_equal "StripeError", record.error_summary.class_name, "the error is kept"
    assert_equal [record.id], AcidicJob::Key.discarded.pluck(:id)
    assert_raises(AcidicJob::StateError) { record.discard! }
    assert_raises(AcidicJob::StateError) { record.retry! }
    assert_empty enqueued
  end

  def test_unlock_refuses_an_unlocked_run
    record = AcidicJob::Key.find_by(idempotency_key: failed_run)
    error = assert_raises(AcidicJob::StateError) { record.unlock! }
    assert_match(/not locked/, error.message)
  end

  # A console without the error's class (Stripe:: is not defined here) lists, inspects
  # and shows the row; loading the column itself would raise.
  def test_error_summary_of_a_0_7_0_row_whose_yaml_names_an_undefined_class
    refute defined?(::Stripe)
    id = insert_070_row("job-070")
    record = AcidicJob::Key.failed.find(id)
    assert_raises(ArgumentError) { record.error_object } # what the issue's console hit
    record = AcidicJob::Key.failed.find(id)
    summary = record.error_summary
    assert_equal "Stripe::CardError", summary.class_name
    assert_equal "Your card was declined.", summary.message
    assert_equal "Stripe::CardError: Your card was declined.", summary.summary
    assert_equal ["app/jobs/ride_create_job.rb:30:in `create_stripe_charge'",
                  "lib/acidic_job.rb:120:in `block in idempotently'"], summary.backtrace
    assert_equal SEVEN_ATTRIBUTES, record.attributes_summary
    assert_match(/Stripe::CardError: Your card was declined/, record.inspect)
    assert_match(/Stripe::CardError/, AcidicJob::Key.failed.to_a.inspect)
    assert_equal "failed", record.admin_state
    detail = admin.show("job-070")
    assert_equal "Stripe::CardError", detail.error.class_name
    assert_equal "yaml", detail.attributes_format
    assert_includes detail.attributes, "!ruby/object:Stripe::Charge"
    assert_nil detail.resume
    assert_equal %w[done current pending], detail.steps.map(&:state)
    refute defined?(::Stripe), "nothing defined the class"
    assert_nil AcidicJob::Key.succeeded.find_by(id: id)
  end

  # 0.7.0 rows have no resume description: the Ruby layer knows the job class and its
  # arguments, and enqueues the job (same job_id: the key) through ActiveJob.
  def test_retry_of_a_0_7_0_row_enqueues_its_job_through_activejob
    id = insert_070_row("job-070", error: "--- !ruby/exception:StripeError\nmessage: card declined\n")
    record = AcidicJob::Key.find(id)
    ride = Ride.create!(user: "ada", amount: 2000)
    AcidicJob::Key.where(id: id).update_all(attr_accessors: "---\nuser: ada\namount: 2000\nride: #{ride.to_global_id}\n")
    Trace.clear
    record.retry!
    assert_equal 1, enqueued.size
    job = enqueued.first
    assert_equal RideCreateJob, job[:job]
    assert_equal "job-070", job["job_id"]
    assert_equal ["ada", 2000], job[:args]
    assert_equal :ruby, @events.last[1][:enqueued_by]
    assert_equal "queued", record.admin_state
  end

  def test_reset_of_a_0_7_0_row_whose_job_class_is_not_loaded_is_refused_before_any_change
    id = insert_070_row("lost-070", job_name: "Billing::LostJob")
    before = AcidicJob::Key.connection.select_rows("SELECT recovery_point, error_object FROM acidic_job_keys WHERE id = #{id}")
    error = assert_raises(AcidicJob::Error) { AcidicJob::Key.find(id).reset_to!(:create_ride_and_audit_record) }
    assert_match(/Billing::LostJob/, error.message)
    assert_match(/not loaded/, error.message)
    assert_equal before, AcidicJob::Key.connection.select_rows("SELECT recovery_point, error_object FROM acidic_job_keys WHERE id = #{id}")
  end

  def test_an_ambiguous_0_7_0_key_names_its_runs
    insert_070_row("twin", job_args: "---\n- a\n")
    insert_070_row("twin", job_args: "---\n- b\n")
    error = assert_raises(AcidicJob::InvalidArgument) { admin.show("twin") }
    ids = AcidicJob::Key.where(idempotency_key: "twin").order(:id).pluck(:id)
    ids.each { |i| assert_includes error.message, i.to_s }
    assert_equal "twin", admin.show(ids.last).run.key
  end

  # The scopes are SQL written in Ruby; they must select what the core's CASE does.
  def test_scopes_agree_with_the_core_on_every_state
    with_config(lock_timeout: 60) do
      succeeded_run
      failed = failed_run
      awaiting_run
      queued = failed_run
      AcidicJob::Key.find_by(idempotency_key: queued).retry!
      discarded = failed_run
      admin.discard(discarded)
      dead = with_config(max_attempts: 1) { other_failed_run } # its one attempt failed
      stranded = failed_run
      running = failed_run
      conn = AcidicJob::Key.connection
      old = (Time.now.utc - 3600).strftime("%Y-%m-%d %H:%M:%S.%6N")
      now = Time.now.utc.strftime("%Y-%m-%d %H:%M:%S.%6N")
      # as a worker leaves them: locked long ago (its process died), locked now
      conn.execute("UPDATE acidic_job_keys SET locked_at = #{conn.quote(old)}, error_object = NULL WHERE idempotency_key = #{conn.quote(stranded)}")
      conn.execute("UPDATE acidic_job_keys SET locked_at = #{conn.quote(now)}, error_object = NULL WHERE idempotency_key = #{conn.quote(running)}")
      expected = { "succeeded" => 1, "failed" => 1, "awaiting" => 1, "queued" => 1, "discarded" => 1,
                   "dead" => 1, "stranded" => 1, "running" => 1 }
      assert_equal expected.sort.to_h, admin.stats.states.to_h { |c| [c.state, c.count] }.sort.to_h
      assert_equal [dead], AcidicJob::Key.dead.pluck(:idempotency_key)
      (AcidicJob::Admin::STATES + %w[finished]).each do |state|
        core = admin.list(state: state, limit: 1000).map(&:id).sort
        scope = AcidicJob::Key.in_state(state).pluck(:id).sort
        assert_equal core, scope, "state #{state}"
        assert_equal scope, AcidicJob::Key.public_send(state).pluck(:id).sort
      end
      assert_equal [stranded], AcidicJob::Key.stranded.pluck(:idempotency_key)
      assert_equal [running], AcidicJob::Key.running.pluck(:idempotency_key)
      assert_equal [failed], AcidicJob::Key.failed.pluck(:idempotency_key)
      assert_equal 2, AcidicJob::Key.in_state(:running, :stranded).count
      assert_equal 1, AcidicJob::Key.failed.where(job_name: "AdminChargeJob").count, "chainable"
      AcidicJob::Key.all.each { |k| assert_equal admin.show(k.id).run.state, k.admin_state }
    end
  end

  def test_bulk_retry_of_a_thousand_failed_runs
    skip "once per database" unless primary_part?
    AdminOtherJob.fail_always = true
    keys = Array.new(1000) { |i| other_failed_run("many-#{i}") }
    succeeded_run
    assert_equal 1000, AcidicJob::Key.failed.count
    enqueued.clear
    progress = []
    result = admin.bulk(:retry, filter: { state: :failed, job: "AdminOtherJob" }) { |done, total| progress << [done, total] }
    assert_equal 1000, result.changed
    assert_equal 0, result.skipped
    assert_equal 0, AcidicJob::Key.failed.count
    assert_equal 1000, AcidicJob::Key.queued.count
    assert keys.sort == enqueued.map { |j| j["job_id"] }.sort, "every run enqueued once"
    assert_operator progress.size, :>=, 10, "one report per transaction of 100 runs"
    assert_equal [1000, 1000], progress.last
    assert_equal progress.map(&:first).sort, progress.map(&:first)
    assert_equal({ "changed" => 1000, "skipped" => 0 }, JSON.parse(result.to_json))
    assert_equal ["bulk.acidic_job", { action: :retry, force: false, step: nil, changed: 1000, skipped: 0 }], @events.last
    AdminOtherJob.fail_always = false
    perform_enqueued!(limit: 2000)
    assert_equal 1001, AcidicJob::Key.succeeded.count
  ensure
    AdminOtherJob.fail_always = true
  end

  def test_bulk_by_ids_counts_what_was_refused_and_a_raising_block_stops_a_walk
    failed = [failed_run, failed_run, failed_run]
    done = succeeded_run
    ids = AcidicJob::Key.where(idempotency_key: failed + [done]).order(:id).pluck(:id)
    result = admin.bulk(:discard, ids: ids)
    assert_equal [3, 1], [result.changed, result.skipped]
    assert_equal 3, AcidicJob::Key.discarded.count

    4.times { failed_run }
    calls = 0
    assert_raises(RuntimeError) do
      admin.bulk(:retry, filter: { state: :failed }, batch_size: 1) do
        calls += 1
        raise "stop here"
      end
    end
    assert_equal 1, calls
    assert_equal 1, AcidicJob::Key.queued.count, "the first transaction committed, the walk stopped"
    assert_equal 3, AcidicJob::Key.failed.count
    assert_raises(AcidicJob::InvalidArgument) { admin.bulk(:explode, ids: ids) }
    assert_raises(AcidicJob::InvalidArgument) { admin.bulk(:retry, filter: { colour: "red" }) }
  end

  def test_prune_deletes_finished_runs_by_age_and_stats_count_them
    3.times { succeeded_run }
    failed = failed_run
    admin.discard(failed_run)
    stats = admin.stats
    assert_equal 5, stats.total
    assert_equal 3, stats.count_of(:succeeded)
    assert_equal 1, stats.count_of(:discarded)
    assert_equal 3, stats.staged_backlog, "the receipts"
    assert_equal "ReceiptJob", stats.oldest_staged.job_name
    assert_equal [{ "job_name" => "AdminChargeJob", "state" => "failed", "count" => 1 }],
                 JSON.parse(stats.to_json)["jobs"].select { |c| c["state"] == "failed" }
    assert_equal %w[jobs oldest_batch oldest_staged oldest_stranded open_batches staged_backlog states total],
                 JSON.parse(stats.to_json).keys.sort

    assert_equal 0, admin.prune(finished_before: "1h").deleted
    progress = []
    result = admin.prune(finished_before: 0, batch_size: 2) { |d, t| progress << [d, t] }
    assert_equal 4, result.deleted
    assert_equal [failed], AcidicJob::Key.pluck(:idempotency_key)
    assert_equal [4, 4], progress.last
    assert_equal 3, AcidicJob::Staged.count, "staged jobs are kept"
    assert_equal ["prune.acidic_job", { finished_before: 0.0, deleted: 4 }], @events.last
    assert_raises(AcidicJob::InvalidArgument) { admin.prune(finished_before: nil) }
    assert_raises(AcidicJob::InvalidArgument) { admin.prune(finished_before: 0, state: :failed) }
  end

  def test_drain_and_recover
    succeeded_run
    enqueued.clear
    assert_equal 1, admin.drain(older_than: 0).delivered
    assert_equal [ReceiptJob], enqueued.map { |j| j[:job] }
    result = admin.recover
    assert_equal [0, 0], [result.requeued, result.dead]
    assert_equal({ "requeued" => 0, "dead" => 0 }, result.as_json)
  end

  # A worker process holds the run's lock inside a step: every action is refused and
  # says why; the worker finishes undisturbed.
  def test_actions_on_a_live_lock_held_by_a_worker_process_are_refused
    skip "once per database" unless primary_part?
    with_config(lock_timeout: LOCK_TIMEOUT * 30) do
      key = "held-#{SecureRandom.hex(3)}"
      pid, release, out = start_holding_worker(key, lock_timeout: LOCK_TIMEOUT * 30)
      begin
        record = AcidicJob::Key.find_by!(idempotency_key: key)
        assert_equal "running", record.admin_state
        assert_equal [record.id], AcidicJob::Key.running.pluck(:id)
        [-> { record.retry! }, -> { record.reset_to!(:first) }, -> { record.unlock! }, -> { record.discard! }].each do |action|
          error = assert_raises(AcidicJob::LockedIdempotencyKey) { action.call }
          assert_match(/lock timeout|held by a transaction/, error.message) # SQLite: the live lock; PostgreSQL: the step holds the row
        end
        assert_equal "hold", AcidicJob::Key.find(record.id).recovery_point
        assert_empty enqueued
      ensure
        File.write(release, "")
        Process.wait(pid)
      end
      assert_equal "finished\n", File.read(out)
      assert AcidicJob::Key.find_by!(idempotency_key: key).succeeded?
      assert_equal 1, Audit.where(event: "hold #{key}").count
    end
  end

  # A SIGKILLed worker leaves its run locked: once the lock expires it is stranded;
  # unlock releases it, and recovery hands it back to its queue.
  def test_a_run_stranded_by_a_killed_worker_is_unlocked_and_recovered
    skip "once per database" unless primary_part?
    with_config(lock_timeout: LOCK_TIMEOUT) do
      key = stranded_run
      record = AcidicJob::Key.find_by!(idempotency_key: key)
      error = assert_raises(AcidicJob::LockedIdempotencyKey) { record.unlock! }
      assert_match(/force/, error.message)
      wait_for_lock_expiry
      assert_equal "stranded", record.admin_state
      assert_equal [record.id], AcidicJob::Key.stranded.pluck(:id)
      stats = admin.stats
      assert_equal key, stats.oldest_stranded.key
      assert_match(/:\d+\z/, stats.oldest_stranded.locked_by)
      record.unlock!
      assert_nil record.locked_at
      assert_equal 1, AcidicJob.recover.requeued
      assert_equal [key], enqueued.map { |j| j["job_id"] }
    end
  end

  # force: an operator who knows the worker is dead acts within the lock timeout.
  def test_force_acts_on_a_live_lock
    skip "once per database" unless primary_part?
    with_config(lock_timeout: 600) do
      key = stranded_run
      record = AcidicJob::Key.find_by!(idempotency_key: key)
      assert_equal "running", record.admin_state
      assert_raises(AcidicJob::LockedIdempotencyKey) { record.discard! }
      record.discard!(force: true)
      assert_equal "discarded", record.admin_state
      assert_equal "acidic_job.Discarded", record.error_summary.class_name
      assert_equal true, @events.last[1][:force]
    end
  end

  # acidic_job's own connection (config.database_url): the Admin works on that store.
  def test_owned_store_admin
    skip "owned stores only" unless owned?
    OwnedRideJob.failures = 1
    job = OwnedRideJob.new("own")
    assert_raises(StripeError) { job.perform_now }
    page = admin.list(state: :failed)
    assert_equal [job.job_id], page.map(&:key)
    assert_equal "charge", admin.show(job.job_id).steps.find { |s| s.state == "current" }.name
    admin.retry(job.job_id)
    perform_enqueued!
    assert_equal "succeeded", admin.show(job.job_id).run.state
  ensure
    OwnedRideJob.failures = 0
  end
end
