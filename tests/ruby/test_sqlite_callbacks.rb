# frozen_string_literal: true

require_relative "test_helper"

# An application may give its SQLite connection Ruby callbacks: a busy handler that
# sleeps (what Rails 7.1's `timeout` installs, and what a threaded application on the
# sqlite3 gem needs so that waiting for the write lock releases the GVL), a trace, an
# authorizer. SQLite calls them from inside every statement, the core's too, so while a
# borrowed connection has one the core runs its statements holding the GVL: the
# callbacks run, and nothing calls Ruby from a thread without it.
class SqliteCallbacksTest < AcidicTest
  def setup
    skip "SQLite connections of ActiveRecord only" if postgres? || owned?
    super
    RideCreateJob.stripe_failures = 0 # test_events leaves some behind
    @raw = ActiveRecord::Base.connection.raw_connection
  end

  def teardown
    return unless @raw

    @raw.busy_handler
    @raw.trace
    @raw.busy_timeout = TestDatabase.ar_config.fetch(:timeout)
    super
  end

  def test_the_core_waits_through_the_applications_busy_handler_and_is_traced
    # a first job makes the core's tables and store, whatever ran before this test
    assert RideCreateJob.perform_now("callbacks-warm-up", 1)
    busy_calls = 0
    traced = []
    @raw.busy_handler do |count|
      busy_calls += 1
      sleep 0.005 # releases the GVL: the thread holding the lock runs
      count < 2_000
    end
    @raw.trace { |sql| traced << sql }

    blocker = SQLite3::Database.new(TestDatabase.sqlite_path)
    blocker.execute("BEGIN IMMEDIATE") # the write lock, held by another connection
    # Released 0.3 s after the core's first statement (a fixed delay from here raced the
    # job's start on a loaded machine: the lock was gone before the job reached it).
    releaser = Thread.new do
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
      sleep 0.01 until traced.any? { |sql| sql.include?("acidic_job_keys") } ||
                       Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.3
      blocker.execute("ROLLBACK")
    end
    assert RideCreateJob.perform_now("callbacks", 1)
    releaser.join

    assert busy_calls.positive?, "the job waited for the write lock in the application's handler"
    assert traced.any? { |sql| sql.include?("acidic_job_keys") }, "the core's statements were traced"
    assert_equal 2, Ride.count
    assert_equal %w[FINISHED FINISHED], AcidicJob::Key.pluck(:recovery_point)
  ensure
    blocker&.close
  end
end
