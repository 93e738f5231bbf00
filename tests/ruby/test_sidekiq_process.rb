# frozen_string_literal: true

require_relative "test_helper"
require_relative "support/processes"
require "sidekiq/api"
require "securerandom"

# Real Sidekiq 6.4 processes (the `sidekiq` executable) working from a real Redis on the
# suite's database. The test process pushes jobs and reads the database.
class SidekiqProcessTest < AcidicTest
  include StopsProcesses

  PART = TestDatabase.part
  QUEUE = "acidic_#{PART.tr('-', '_')}"
  REDIS = ENV["AJ_TEST_REDIS_URL"].to_s.sub(%r{/\d*\z}, TestDatabase.postgres? ? "/10" : "/9")
  LOCK_TIMEOUT = 2
  DEADLINE = 60 # seconds: a guard against hanging, not a measurement

  @flags = Dir.mktmpdir("aj-flags")
  class << self
    attr_reader :flags
  end
  Minitest.after_run { FileUtils.rm_rf(SidekiqProcessTest.flags) }

  def setup
    skip "needs AJ_TEST_REDIS_URL" if ENV["AJ_TEST_REDIS_URL"].to_s.empty?
    super
    Sidekiq.configure_client { |c| c.redis = { url: REDIS } }
    Sidekiq.redis(&:flushdb)
    ENV["AJ_TEST_QUEUE"] = QUEUE
    ENV["AJ_TEST_FLAGS"] = self.class.flags
    require_relative "support/sidekiq_workers"
    Dir[File.join(self.class.flags, "*")].each { |f| File.delete(f) }
    @pids = []
    start_sidekiq
  end

  def teardown
    @pids&.each { |pid| stop_sidekiq(pid) }
    super
  end

  def start_sidekiq
    log = File.join(TestDatabase::DIR, "sidekiq-#{PART}.log")
    env = ENV.to_h.merge(
      "AJ_TEST_SIDEKIQ_REDIS" => REDIS, "AJ_TEST_LOCK_TIMEOUT" => LOCK_TIMEOUT.to_s,
      "AJ_TEST_QUEUE" => QUEUE, "AJ_TEST_FLAGS" => self.class.flags
    )
    concurrency = "3"
    pid = Process.spawn(env, "sidekiq", "-r", File.expand_path("support/sidekiq_boot.rb", __dir__),
                        "-q", QUEUE, "-c", concurrency, "-t", "2",
                        out: [log, "a"], err: [log, "a"], pgroup: true)
    @pids << pid
    wait_for("sidekiq #{pid} to start") do
      Sidekiq::ProcessSet.new.any? { |p| p["pid"] == pid }
    end
    pid
  end

  def stop_sidekiq(pid, signal = "TERM")
    stop_process(pid, signal)
  ensure
    @pids.delete(pid)
  end

  def wait_for(what)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + DEADLINE
    loop do
      result = begin
        ActiveRecord::Base.connection_pool.with_connection { yield }
      rescue ActiveRecord::StatementInvalid => e
        # This observer reads while the Sidekiq processes write: on SQLite a reader can
        # meet a writer's lock; it looks again, as it does for an unfinished run.
        raise unless defined?(SQLite3::BusyException) && e.cause.is_a?(SQLite3::BusyException)

        nil
      end
      return result if result

      flunk "timed out waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.05
    end
  end

  def events
    Audit.order(:id).pluck(:event)
  end

  def key(jid)
    AcidicJob::Key.find_by(idempotency_key: jid)
  end

  def flag(name)
    File.write(File.join(self.class.flags, name), "")
  end

  def test_a_workflow_with_a_failing_step_is_retried_by_sidekiq_and_resumes_there
    flag("fail-charge-ada")
    jid = SqRideWorker.perform_async("ada")
    wait_for("the ride to finish") { key(jid)&.finished? }
    ride = Ride.find_by!(user: "ada")
    assert_equal "ch_#{ride.id}", ride.stripe_charge_id
    assert_equal 1, Ride.count
    assert key(jid).succeeded?
    wait_for("the receipt") { events.include?("receipt #{ride.id}") }
    assert_equal ["ride ada", "charge attempt ada", "receipt #{ride.id}"], events
    wait_for("the staged receipt to be acknowledged") { AcidicJob::Staged.count.zero? }
  end

  def test_awaited_plain_workers_fan_in_and_the_parent_resumes_once
    jid = SqAwaitingWorker.perform_async("trip")
    wait_for("the parent to finish") { key(jid)&.finished? }
    k = key(jid)
    assert k.succeeded?
    assert_equal ["fan out trip", "child a", "child b #{k.id}", "fan in trip"].sort, events.sort
    assert_equal 1, events.count("fan in trip")
    assert_equal "fan out trip", events.first
    assert_equal "fan in trip", events.last
    wait_for("every staged row to be acknowledged") { AcidicJob::Staged.count.zero? }
    assert_equal 0, ActiveRecord::Base.connection.select_value("SELECT count(*) FROM acidic_job_batches").to_i
  end

  def test_sidekiq_workers_run_activejob_style_callbacks
    jid = SqCallbacksWorker.perform_async
    wait_for("the callbacks") { events.include?("after") }
    assert_equal %w[before work after], events
    assert key(jid).succeeded?
  end

  def test_a_worker_killed_in_the_middle_of_a_step_reruns_it_and_its_rows_appear_once
    flag("hang")
    jid = "kill-#{SecureRandom.hex(4)}"
    item = { "class" => "SqHangWorker", "args" => ["kim"], "jid" => jid, "queue" => QUEUE }
    Sidekiq::Client.push(item)
    inside = File.join(self.class.flags, "inside-second")
    wait_for("the worker to be inside the second step") { File.exist?(inside) }
    victim = @pids.first
    Process.kill("KILL", victim)
    Process.wait(victim)
    @pids.delete(victim)

    # The second step's ride died with its transaction; the first step had committed.
    assert_equal 0, Ride.count
    assert_equal ["first kim"], events
    k = key(jid)
    assert_equal "second", k.recovery_point
    refute_nil k.locked_at, "the dead worker's lock is held until the lock timeout"

    # Open-source Sidekiq loses the job of a killed process: push it again (same jid) once
    # the lock is stale, to a new process.
    File.delete(File.join(self.class.flags, "hang"))
    start_sidekiq
    wait_for("the dead worker's lock to expire") { k.locked_at < Time.now - LOCK_TIMEOUT - 0.5 }
    Sidekiq::Client.push(item)
    wait_for("the rerun to finish") { key(jid)&.finished? }
    assert key(jid).succeeded?
    assert_equal 1, Ride.where(user: "kim").count
    assert_equal ["first kim"], events
  end

  def test_staged_rows_left_by_a_killed_process_are_delivered_by_the_drain
    # a staged job that was committed but never pushed: stop every worker, stage through
    # the model without a queue connection... the simplest honest stand-in is a row that
    # the push refused, which is what a crash between commit and push leaves behind.
    @pids.dup.each { |pid| stop_sidekiq(pid) }
    Sidekiq.configure_client { |c| c.redis = { url: "redis://127.0.0.1:1/0" } } # unreachable
    assert SqRideWorker.new.tap { |w| w.jid = "drain-1" }.perform("dan")
    Sidekiq.configure_client { |c| c.redis = { url: REDIS } }
    assert_equal 1, AcidicJob::Staged.count
    assert_equal 0, Sidekiq::Queue.new(QUEUE).size
    assert_equal 1, AcidicJob.drain(older_than: 0)
    start_sidekiq
    ride = Ride.find_by!(user: "dan")
    wait_for("the drained receipt") { events.include?("receipt #{ride.id}") }
    wait_for("the drained row to be acknowledged") { AcidicJob::Staged.count.zero? }
  end
end
