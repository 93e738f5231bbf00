# frozen_string_literal: true

require_relative "test_helper"

# The errors an application sees through the DSL, on every kind of connection.
class ErrorsTest < AcidicTest
  def job_class(name, &body)
    Class.new(ActiveJob::Base) do
      include AcidicJob
      define_singleton_method(:name) { name }
      class_eval(&body)
    end
  end

  def keys_count
    owned? ? AcidicJob::Stores.owned.exec("SELECT count(*) FROM acidic_job_keys")[0][0] : AcidicJob::Key.count
  end

  def test_no_defined_steps_writes_nothing
    klass = job_class("EmptyJob") { def perform = idempotently { nil } }
    e = assert_raises(AcidicJob::NoDefinedSteps) { klass.perform_now }
    assert_kind_of AcidicJob::Error, e
    assert_equal 0, keys_count
  end

  def test_duplicate_step_names_are_refused_before_anything_runs
    klass = job_class("DuplicateJob") do
      def perform
        idempotently do
          step :once
          step :once
        end
      end

      def once = Trace << :once
    end
    e = assert_raises(AcidicJob::DuplicateStepName) { klass.perform_now }
    assert_match(/once/, e.message)
    assert_empty Trace.events
    assert_equal 0, keys_count
  end

  def test_mismatched_arguments_for_an_existing_key
    RideCreateJob.stripe_failures = 0
    klass = owned? ? OwnedRideJob : RideCreateJob
    job = klass.new("ada", *([2000] unless owned?))
    job.perform_now
    other = klass.new("bob", *([10] unless owned?))
    other.job_id = job.job_id
    assert_raises(AcidicJob::MismatchedIdempotencyKeyAndJobArguments) { other.perform_now }
  end

  # A worker died holding the run (locked_at is recent): another worker is refused until
  # the lock timeout has passed.
  def test_a_locked_key_is_refused_within_the_lock_timeout
    klass = job_class("CrashedJob") do
      def perform
        idempotently do
          step :first
          step :second
        end
      end

      def first = Trace << :first
      def second
        raise "crash" if Trace.count(:first) == 1
      end
    end
    job = klass.new
    assert_raises(RuntimeError) { job.perform_now }
    now = Time.now.utc.strftime("%Y-%m-%d %H:%M:%S.%6N")
    if owned?
      AcidicJob::Stores.owned.exec("UPDATE acidic_job_keys SET locked_at = ?", [now])
    else
      AcidicJob::Key.update_all(locked_at: Time.now.utc)
    end
    e = assert_raises(AcidicJob::LockedIdempotencyKey) { job.perform_now }
    assert_match(/locked/, e.message)
    assert_equal 1, Trace.count(:first)
    AcidicJob.config.lock_timeout = 0
    Trace << :first
    assert job.perform_now, "a stale lock is taken over"
  ensure
    AcidicJob.config.lock_timeout = 90
  end

  def test_an_unknown_recovery_point_raises_is_recorded_and_releases_the_lock
    klass = job_class("RenamedStepJob") do
      def perform
        idempotently do
          step :first
          step :second
        end
      end

      def first = raise("stop")
      def second = nil
    end
    job = klass.new
    assert_raises(RuntimeError) { job.perform_now }
    if owned?
      AcidicJob::Stores.owned.exec("UPDATE acidic_job_keys SET recovery_point = 'gone'")
    else
      AcidicJob::Key.update_all(recovery_point: "gone")
    end
    e = assert_raises(AcidicJob::UnknownRecoveryPoint) { job.perform_now }
    assert_match(/recovery point "gone"/, e.message)
    # 0.7.0 left the run locked; the core records the error and unlocks it, so that a
    # fix (or an operator) can move it on without waiting for the lock timeout.
    unless owned?
      key = AcidicJob::Key.last
      assert_nil key.locked_at
      assert_instance_of AcidicJob::UnknownRecoveryPoint, key.error_object
    end
    assert_raises(AcidicJob::UnknownRecoveryPoint) { job.perform_now }
  end

  def test_unknown_job_adapter
    assert_raises(AcidicJob::UnknownJobAdapter) { AcidicJob::Outbox.describe(String, []) }
    assert_raises(AcidicJob::UnknownJobAdapter) { AcidicJob::Outbox.push(1, "carrier-pigeon", "X", []) }
  end
end
