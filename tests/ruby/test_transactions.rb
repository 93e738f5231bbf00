# frozen_string_literal: true

require_relative "test_helper"

# A step's own ActiveRecord writes commit or roll back together with the run's
# bookkeeping, on the connection shared the way this part asks for.
class TransactionsTest < AcidicTest
  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
    RideCreateJob.stripe_failures = 0
  end

  def test_the_connection_is_shared_the_requested_way
    expected = ENV["AJ_TEST_SHARING"] == "host" ? :host : :native
    store = AcidicJob::Stores.current
    assert_equal expected, AcidicJob::Stores.sharing(store)
    assert_equal(expected == :host ? "host" : (postgres? ? "postgres" : "sqlite"), store.driver)
    assert_same store, AcidicJob::Stores.current, "one store per ActiveRecord connection"
  end

  def test_native_sharing_can_be_demanded_and_host_forced
    previous = AcidicJob.config.connection_sharing
    AcidicJob.config.connection_sharing = :host
    assert_equal :host, AcidicJob::Stores.sharing(AcidicJob::Stores.current)
    AcidicJob.config.connection_sharing = :native
    assert_equal :native, AcidicJob::Stores.sharing(AcidicJob::Stores.current)
  ensure
    AcidicJob.config.connection_sharing = previous
  end

  def test_the_recovery_point_does_not_advance_when_the_steps_writes_roll_back
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "HalfWriteJob"
      def perform
        idempotently(with: { note: "start" }) do
          step :write
          step :after
        end
      end

      def write
        Audit.create!(event: "written")
        self.note = "changed"
        Ride.create!(user: nil, amount: 1)
        raise ActiveRecord::RecordInvalid.new(Ride.new) if Trace.count(:retry).zero?
      end

      def after = Trace << [:after, @note]
    end
    job = klass.new
    assert_raises(ActiveRecord::RecordInvalid) { job.perform_now }
    key = key_for(job)
    assert_equal "write", key.recovery_point
    assert_equal "start", key.attr_accessors[:note]
    assert_equal 0, Audit.count
    assert_equal 0, Ride.count
    assert_instance_of ActiveRecord::RecordInvalid, key.error_object
    Trace << :retry
    assert job.perform_now
    assert_equal [[:after, "changed"]], Trace.events.grep(Array)
    assert_equal 1, Audit.count
  end

  def test_a_job_performed_inside_an_application_transaction_uses_savepoints
    ActiveRecord::Base.transaction do
      assert RideCreateJob.perform_now("ada", 2000)
      assert_equal 1, Ride.count
      raise ActiveRecord::Rollback
    end
    assert_equal 0, Ride.count
    assert_equal 0, AcidicJob::Key.count, "the run rolled back with the outer transaction"
  end

  def test_activerecord_rollback_inside_a_step_rolls_the_step_back
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "RollbackJob"
      def perform
        idempotently { step :write }
      end

      def write
        Audit.create!(event: "x")
        raise ActiveRecord::Rollback
      end
    end
    job = klass.new
    assert_equal false, job.perform_now
    assert_equal 0, Audit.count
    key = key_for(job)
    assert_equal "write", key.recovery_point
    assert_nil key.locked_at, "a retry can run the step again"
  end
end
