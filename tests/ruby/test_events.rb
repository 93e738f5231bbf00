# frozen_string_literal: true

require_relative "test_helper"

# ActiveSupport::Notifications events fed from the core, and the log subscriber.
class EventsTest < AcidicTest
  NAMES = %w[acquire step step_failed staged enqueued drained recovered].map { |n| "#{n}.acidic_job" }

  def setup
    super
    RideCreateJob.stripe_failures = 0
    @events = []
    @subscriptions = NAMES.map do |name|
      ActiveSupport::Notifications.subscribe(name) { |event| @events << [event.name, event.payload] }
    end
  end

  def teardown
    @subscriptions.each { |s| ActiveSupport::Notifications.unsubscribe(s) }
    AcidicJob.config.max_attempts = nil
    AcidicJob.config.retry_base = nil
    super
  end

  def payloads(name)
    @events.select { |n, _| n == "#{name}.acidic_job" }.map(&:last)
  end

  def test_a_run_reports_its_acquisition_each_step_and_its_staged_job
    job = RideCreateJob.new("ev", 100)
    assert job.perform_now
    key = key_for(job)

    acquire = payloads(:acquire)
    assert_equal 1, acquire.size
    # On SQLite a new run's row is written at the end of its first step: no id yet.
    run_id = AcidicJob::Key.connection.adapter_name =~ /sqlite/i ? nil : key.id
    assert_equal({ run_id: run_id, key: job.job_id, job_name: "RideCreateJob", step: "create_ride_and_audit_record",
                   attempt: 1, resumed: false }, acquire.first)

    steps = payloads(:step)
    assert_equal %w[create_ride_and_audit_record create_stripe_charge send_receipt], steps.map { |p| p[:step] }
    steps.each do |p|
      assert_equal [key.id, job.job_id, "RideCreateJob", :committed], p.values_at(:run_id, :key, :job_name, :outcome)
      assert_kind_of Float, p[:duration]
      assert_operator p[:duration], :>=, 0
    end

    staged = payloads(:staged)
    assert_equal 1, staged.size
    assert_equal ["activejob", key.id], staged.first.values_at(:adapter, :run_id)
    assert_match(/ReceiptJob/, staged.first[:job])

    enqueued = payloads(:enqueued)
    assert_equal 1, enqueued.size
    assert_equal ["activejob", true], enqueued.first.values_at(:adapter, :accepted)
    assert_kind_of Integer, enqueued.first[:staged_id]
    assert_empty payloads(:step_failed)
  end

  def test_a_failed_step_reports_its_exception
    RideCreateJob.stripe_failures = 1
    job = RideCreateJob.new("evf", 100)
    assert_raises(StripeError) { job.perform_now }
    failed = payloads(:step_failed)
    assert_equal 1, failed.size
    assert_equal "create_stripe_charge", failed.first[:step]
    assert_equal :AJ_ESTEP, failed.first[:code]
    assert_equal ["StripeError", "card declined"], failed.first[:exception]
    assert_instance_of StripeError, failed.first[:exception_object]
    assert_equal [:committed, :failed], payloads(:step).map { |p| p[:outcome] }

    @events.clear
    assert job.perform_now
    assert_equal [[2, "create_stripe_charge"]], payloads(:acquire).map { |p| p.values_at(:attempt, :step) }
  end

  def test_drain_and_recovery_report_what_they_did
    skip "ActiveRecord connection sharing only" if owned?
    AcidicJob::Staged.insert_all!([{ adapter: "activejob", job_name: "PlainJob", job_args: PlainJob.new(1).serialize,
                                     created_at: 1.hour.ago, updated_at: 1.hour.ago }])
    assert_equal 1, AcidicJob.drain
    assert_equal [{ count: 1 }], payloads(:drained)

    AcidicJob.config.retry_base = 0.001
    AcidicJob.config.max_attempts = 2
    RideCreateJob.stripe_failures = 5
    job = RideCreateJob.new("evr", 100)
    assert_raises(StripeError) { job.perform_now }
    enqueued.clear
    sleep 0.01
    result = AcidicJob.recover
    assert_equal [1, 0], [result.requeued, result.dead]
    recovered = payloads(:recovered)
    assert_equal 1, recovered.size
    assert_equal [key_for(job).id, job.job_id, "RideCreateJob", "activejob", false],
                 recovered.first.values_at(:run_id, :key, :job_name, :adapter, :dead)
    assert_equal [job.job_id], enqueued.map { |j| j["job_id"] }, "the same job_id comes back"

    assert_raises(StripeError) { perform_enqueued! } # attempt 2 fails too: max_attempts reached
    sleep 0.01
    result = AcidicJob.recover
    assert_equal 0, result.requeued
    # dead at its last failure, or marked so by this sweep (then reported)
    refute_nil AcidicJob::Key.where(id: key_for(job).id).pluck(:dead_at).first
    assert_equal true, payloads(:recovered).last[:dead] if result.dead == 1
    refute job.perform_now, "a dead run does not run"
  end

  def test_the_log_subscriber_writes_a_line_per_step_and_per_failure
    log = StringIO.new
    AcidicJob.config.logger = Logger.new(log, level: Logger::DEBUG)
    RideCreateJob.stripe_failures = 1
    assert_raises(StripeError) { RideCreateJob.new("log", 1).perform_now }
    lines = log.string.lines
    assert_equal 1, lines.grep(/DEBUG.*step create_ride_and_audit_record committed in [\d.]+ms/).size
    assert_equal 1, lines.grep(/WARN.*step create_stripe_charge failed after [\d.]+ms \(StripeError: card declined\)/).size
  ensure
    AcidicJob.config.logger = Logger.new(nil)
  end
end
