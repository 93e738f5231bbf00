# frozen_string_literal: true

require_relative "test_helper"
require "tempfile"

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

  # On PostgreSQL with the core on ActiveRecord's libpq handle, the core's first statements
  # of a step carry its BEGIN and its last ones its COMMIT, and ActiveRecord sends neither
  # (AcidicJob::LibpqTransactions): a new 3-step run costs the round trips of the same
  # three creates in three ActiveRecord transactions. Counted from libpq's protocol trace:
  # every round trip ends with a frontend Sync or a simple Query.
  def test_postgres_steps_cost_the_round_trips_of_plain_transactions
    native_postgres_only!
    job_class = three_audits_job("ThreeAuditsJob")
    assert job_class.new.perform_now # the tables, the prepared statements
    plain = lambda do
      3.times { |i| ActiveRecord::Base.transaction { Audit.create!(event: "plain #{i}") } }
      true
    end
    plain.call
    baseline = round_trips(&plain)
    assert_equal 9, baseline
    job = job_class.new
    assert_equal baseline, round_trips { job.perform_now }
    assert_equal ::PG::PQTRANS_IDLE, raw_pg.transaction_status, "nothing left open"
    assert_equal "FINISHED", key_for(job).recovery_point
    assert_equal 3 + 6 + 3, Audit.count
  end

  # ActiveRecord's own bookkeeping of a transaction the core began and committed: the
  # records' before_commit callbacks run inside the step's transaction (the core's COMMIT
  # goes with its last statements, before ActiveRecord would run them), their
  # after_commit callbacks once the step has committed, and a failed step's records get
  # after_rollback and nothing of them is stored.
  def test_postgres_records_see_the_commit_and_rollback_the_core_sent
    native_postgres_only!
    seen = []
    step_txids = {}
    fail_second = true
    txid = -> { ActiveRecord::Base.connection.select_value("SELECT txid_current_if_assigned()") }
    model = Class.new(ActiveRecord::Base) do
      self.table_name = "audits"
      def self.name = "CallbackAudit"
      before_commit do
        seen << [:before_commit, event, txid.call == step_txids.fetch(event)]
        Audit.create!(event: "before_commit #{event}")
      end
      after_commit { seen << [:commit, event, self.class.where(id: id).exists?] }
      after_rollback { seen << [:rollback, event] }
    end
    job_class = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "CallbackAuditJob"
      def perform
        idempotently do
          step :first
          step :second
        end
      end
      define_method(:first) do
        model.create!(event: "first")
        step_txids["first"] = txid.call
      end
      define_method(:second) do
        model.create!(event: "second")
        step_txids["second"] = txid.call
        raise "the second step fails" if fail_second
      end
    end
    job = job_class.new
    assert_raises(RuntimeError) { job.perform_now }
    assert_equal [[:before_commit, "first", true], [:commit, "first", true], [:rollback, "second"]], seen
    assert_equal ["first", "before_commit first"], Audit.order(:id).pluck(:event)
    assert_equal "second", key_for(job).recovery_point
    assert_equal ::PG::PQTRANS_IDLE, raw_pg.transaction_status
    seen.clear
    fail_second = false
    assert job.perform_now
    assert_equal [[:before_commit, "second", true], [:commit, "second", true]], seen
    assert_equal 4, Audit.count
  end

  private

  def native_postgres_only!
    skip "PostgreSQL with the native handle shared" unless postgres? && AcidicJob::Stores.sharing(AcidicJob::Stores.current) == :native
  end

  def raw_pg
    AcidicJob::TransactionHost.raw_of(ActiveRecord::Base.connection)
  end

  def three_audits_job(name)
    Class.new(ActiveJob::Base) do
      include AcidicJob
      define_singleton_method(:name) { name }
      def perform
        idempotently do
          step :a
          step :b
          step :c
        end
      end
      %i[a b c].each { |s| define_method(s) { Audit.create!(event: s.to_s) } }
    end
  end

  def round_trips
    Tempfile.create("pg-trace") do |f|
      raw_pg.trace(f)
      begin
        assert yield
      ensure
        raw_pg.untrace
      end
      f.flush
      $stderr.puts File.read(f.path) if ENV["AJ_TRACE_DEBUG"]
      File.readlines(f.path).count { |line| line =~ /(\A|\t)F\t\d+\t(Sync|Query)\b/ }
    end
  end
end
