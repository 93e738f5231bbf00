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
    owned? ? AcidicJob::OwnedSession.store.exec("SELECT count(*) FROM acidic_job_keys")[0][0] : AcidicJob::Key.count
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
    job = RideCreateJob.new("ada", 2000)
    job.perform_now
    other = RideCreateJob.new("bob", 10)
    other.job_id = job.job_id
    assert_raises(AcidicJob::MismatchedIdempotencyKeyAndJobArguments) { other.perform_now }
  end

  def test_a_locked_key_is_refused_within_the_lock_timeout
    gate = Queue.new
    release = Queue.new
    klass = job_class("SlowJob") do
      define_method(:perform) { idempotently { step :wait } }
      define_method(:wait) do
        gate << :inside
        release.pop
      end
    end
    job = klass.new
    owner = Thread.new { ActiveRecord::Base.connection_pool.with_connection { job.perform_now } }
    gate.pop
    twin = klass.new
    twin.job_id = job.job_id
    e = ActiveRecord::Base.connection_pool.with_connection do
      assert_raises(AcidicJob::LockedIdempotencyKey) { twin.perform_now }
    end
    assert_match(/locked/, e.message)
    release << :go
    assert owner.value
  end

  def test_an_unknown_recovery_point_raises_and_keeps_the_lock
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
      AcidicJob::OwnedSession.store.exec("UPDATE acidic_job_keys SET recovery_point = 'gone'")
    else
      AcidicJob::Key.update_all(recovery_point: "gone")
    end
    assert_raises(AcidicJob::UnknownRecoveryPoint) { job.perform_now }
    assert_raises(AcidicJob::LockedIdempotencyKey) { job.perform_now }
  end

  def test_unknown_job_adapter
    assert_raises(AcidicJob::UnknownJobAdapter) { AcidicJob::Outbox.describe(String, []) }
    assert_raises(AcidicJob::UnknownJobAdapter) { AcidicJob::Outbox.push(1, "carrier-pigeon", "X", []) }
  end
end
