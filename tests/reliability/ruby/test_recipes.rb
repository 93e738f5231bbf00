# frozen_string_literal: true

# The defect recipes of issue 9 (sections 2 to 5) through the gem: ActiveJob on
# ActiveRecord (the connection shared with the core), and acidic_job's own connection
# (database_url) where the recipe needs it. Each test asserts the behaviour the issue asks
# for, so it fails while the defect is there.
require_relative "helper"

class ThreeStepJob < ActiveJob::Base
  include AcidicJob
  cattr_accessor :fail_at
  cattr_accessor :steps_run, default: []

  def perform(payload = "")
    idempotently with: { payload: payload, counter: 0 } do
      step :a
      step :b
      step :c
    end
  end

  private

  def run_step(name)
    self.class.steps_run << name
    AppLog.create!(tag: name.to_s)
    raise "fail at #{name}" if self.class.fail_at == name
  end

  def a
    self.counter = counter + 1
    run_step(:a)
  end

  def b
    run_step(:b)
  end

  def c
    run_step(:c)
  end
end

class OtherJob < ActiveJob::Base
  include AcidicJob

  def perform
    idempotently { step :only }
  end

  private

  def only
    ThreeStepJob.steps_run << :other
  end
end

class NulStepJob < ActiveJob::Base
  include AcidicJob

  def perform
    idempotently { step :"a\0b" }
  end
end

class RecipesTest < RelTest
  def setup
    super
    ThreeStepJob.fail_at = nil
    ThreeStepJob.steps_run = []
  end

  def failed_run(key)
    ThreeStepJob.fail_at = :b
    job = ThreeStepJob.new("x")
    job.job_id = key
    assert_raises(RuntimeError) { job.perform_now }
    ThreeStepJob.fail_at = nil
    job
  end

  def rerun(key, *args)
    job = ThreeStepJob.new(*(args.empty? ? ["x"] : args))
    job.job_id = key
    job.perform_now
  end

  # 2.4: 100 rows of an adapter this process cannot push, then the ones it can: the drain
  # delivers those (today: 0, it stops at the first page).
  def test_drain_past_a_page_of_refused_rows
    assert rerun("stager", "x") # first: the core makes its tables on first use
    100.times do |i|
      RelDb.sql("INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at, updated_at) " \
                "VALUES ('not-loaded', 'Nope', ?, '2000-01-01 00:00:00', '2000-01-01 00:00:00')", "--- #{i}\n")
    end
    staged_before = RelDb.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0].to_i
    job = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "StagingJob"
      def perform
        idempotently { step :stage }
      end

      def stage
        20.times { |i| OtherJob.perform_transactionally }
      end
    end
    Object.const_set(:StagingJob, job) unless defined?(::StagingJob)
    StagingJob.perform_now
    assert_equal staged_before + 20, RelDb.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0].to_i
    RelDb.sql("UPDATE staged_acidic_jobs SET updated_at = '2001-01-01 00:00:00' WHERE adapter = 'activejob'")
    enqueued.clear
    delivered = AcidicJob.drain(older_than: 0)
    assert_equal 20, delivered
    assert_equal 20, enqueued.size
  end

  # 2.4: a drain on the application's connection (a borrowed store) delivers every page in
  # one call (today: 100 rows).
  def test_borrowed_drain_delivers_every_page
    job = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "ManyStagingJob"
      def perform
        idempotently { step :stage }
      end

      def stage
        250.times { OtherJob.perform_transactionally }
      end
    end
    Object.const_set(:ManyStagingJob, job) unless defined?(::ManyStagingJob)
    ManyStagingJob.perform_now
    RelDb.sql("UPDATE staged_acidic_jobs SET updated_at = '2001-01-01 00:00:00'")
    enqueued.clear
    assert_equal 250, AcidicJob.drain(older_than: 0)
  end

  # 2.5: another worker has inserted the same key in its open transaction; this run's
  # INSERT waits and then meets the unique index: LockedIdempotencyKey (today:
  # DatabaseError "duplicate key value violates unique constraint ... (23505)").
  def test_racing_creation_is_locked_not_a_unique_violation
    skip "PostgreSQL only (SQLite serialises writers)" unless RelDb.postgres?
    OtherJob.perform_now # the tables exist
    rival = PG.connect(RelDb.pg_url)
    rival.exec("BEGIN")
    now = RelDb.now_text
    rival.exec_params(
      "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, locked_at, " \
      "recovery_point, attr_accessors, created_at, updated_at) VALUES ('race', 'OtherJob', $1, $2, $2, " \
      "'only', $3, $2, $2)", [AcidicJob::Documents.job_args([]), now, AcidicJob::Documents.attributes({})]
    )
    outcome = nil
    racer = Thread.new do
      ActiveRecord::Base.connection_pool.with_connection do
        job = OtherJob.new
        job.job_id = "race"
        job.perform_now
        outcome = :acquired
      rescue StandardError => e
        outcome = e
      end
    end
    sleep 0.5
    rival.exec("COMMIT")
    racer.join(30)
    rival.close
    assert_kind_of AcidicJob::LockedIdempotencyKey, outcome, outcome.inspect
  end

  # 3.2: a step that commits the owned store's transaction is refused, and nothing it
  # wrote is committed twice (today: the later writes autocommit).
  def test_commit_inside_a_step_is_refused
    AcidicJob.config.database_url = "sqlite:#{File.join(RelDb.dir, "owned-#{SecureRandom.hex(4)}.db")}"
    job = Class.new(ActiveJob::Base) do
      include AcidicJob
      cattr_accessor :attempts, default: 0
      def self.name = "CommittingJob"
      def perform
        idempotently do
          step :setup
          step :commit_and_write
        end
      end

      def setup
        AcidicJob.exec("CREATE TABLE IF NOT EXISTS owned_log (tag text)")
      end

      def commit_and_write
        self.class.attempts += 1
        AcidicJob.exec("INSERT INTO owned_log (tag) VALUES ('before')")
        AcidicJob.exec("COMMIT") if self.class.attempts == 1
        AcidicJob.exec("INSERT INTO owned_log (tag) VALUES ('after')")
        raise "fail after the writes" if self.class.attempts == 1
      end
    end
    Object.const_set(:CommittingJob, job) unless defined?(::CommittingJob)
    CommittingJob.attempts = 0
    first = CommittingJob.new
    first.job_id = "committing"
    assert_raises(RuntimeError, AcidicJob::Misuse) { first.perform_now }
    committed = AcidicJob::Stores.owned.exec("SELECT count(*) FROM owned_log")[0][0].to_i
    assert_equal 0, committed, "the failed attempt committed #{committed} rows"
    again = CommittingJob.new
    again.job_id = "committing"
    assert again.perform_now
    counts = AcidicJob::Stores.owned.exec("SELECT tag, count(*) FROM owned_log GROUP BY tag ORDER BY tag")
    assert_equal [["after", 1], ["before", 1]], counts.map { |t, n| [t, n.to_i] }
  end

  # 2.7: UnknownRecoveryPoint releases the lock and records the error (today: the run
  # stays locked and a retry is LockedIdempotencyKey).
  def test_unknown_recovery_point_releases_the_lock
    failed_run("urp")
    RelDb.sql("UPDATE acidic_job_keys SET recovery_point = 'renamed' WHERE idempotency_key = 'urp'")
    assert_raises(AcidicJob::UnknownRecoveryPoint) { rerun("urp") }
    row = key_row("urp")
    assert_nil row[0], "the run is still locked after UnknownRecoveryPoint"
    refute_nil row[2], "no error recorded"
  end

  # 2.7: an undecodable attr_accessors document raises an AcidicJob::Error naming the run
  # and the column, and leaves the run unlocked (today: Psych::SyntaxError / ArgumentError).
  ["--- {a: [", "--- !ruby/object:NoSuchClassAnywhere {}\n"].each_with_index do |bad, i|
    define_method("test_undecodable_attributes_#{i}_release_the_lock") do
      failed_run("attrs#{i}")
      RelDb.sql("UPDATE acidic_job_keys SET attr_accessors = ? WHERE idempotency_key = ?", bad, "attrs#{i}")
      error = assert_raises(StandardError) { rerun("attrs#{i}") }
      assert_kind_of AcidicJob::Error, error, "#{error.class}: #{error.message}"
      assert_includes error.message, "attr_accessors"
      assert_includes error.message, "attrs#{i}"
      assert_nil key_row("attrs#{i}")[0], "the run is still locked"
    end
  end

  # 2.9: a port out of range is InvalidArgument (today: DatabaseError).
  def test_port_out_of_range_is_invalid
    AcidicJob.config.database_url = "postgres://@:99999/x"
    assert_raises(AcidicJob::InvalidArgument) { OtherJob.perform_now }
  end

  # 3.1: an ack inside a step on acidic_job's own store joins the step's transaction or is
  # refused; the step's later writes never autocommit (today: committed twice).
  def test_ack_inside_a_step_keeps_the_step_transaction
    AcidicJob.config.database_url = "sqlite:#{File.join(RelDb.dir, "owned-#{SecureRandom.hex(4)}.db")}"
    job = Class.new(ActiveJob::Base) do
      include AcidicJob
      cattr_accessor :attempts, default: 0
      def self.name = "AckingJob"
      def perform
        idempotently do
          step :stage
          step :ack_and_write
        end
      end

      def stage
        AcidicJob.exec("CREATE TABLE IF NOT EXISTS owned_log (tag text)")
        OtherJob.perform_transactionally
      end

      def ack_and_write
        self.class.attempts += 1
        AcidicJob.exec("INSERT INTO owned_log (tag) VALUES ('before')")
        if self.class.attempts == 1
          id = AcidicJob.exec("SELECT id FROM staged_acidic_jobs")[0][0]
          AcidicJob.current_store.ack(Integer(id))
        end
        AcidicJob.exec("INSERT INTO owned_log (tag) VALUES ('after')")
        raise "fail after the writes" if self.class.attempts == 1
      end
    end
    Object.const_set(:AckingJob, job) unless defined?(::AckingJob)
    AckingJob.attempts = 0
    first = AckingJob.new
    first.job_id = "acking"
    assert_raises(RuntimeError, AcidicJob::Misuse) { first.perform_now }
    committed = AcidicJob::Stores.owned.exec("SELECT count(*) FROM owned_log")[0][0].to_i
    assert_equal 0, committed, "the failed attempt committed #{committed} rows"
    again = AckingJob.new
    again.job_id = "acking"
    assert again.perform_now
    store = AcidicJob::Stores.owned
    counts = store.exec("SELECT tag, count(*) FROM owned_log GROUP BY tag ORDER BY tag").map { |t, n| [t, n.to_i] }
    assert_equal [["after", 1], ["before", 1]], counts
  end

  # 3.4: borrowing anything but the sqlite3 gem's Database is a TypeError (today: a
  # segfault on first use).
  [["borrow_sqlite", "Time.now"], ["borrow_pg", "Time.now"], ["borrow_sqlite", "Object.new"]].each do |meth, arg|
    define_method("test_#{meth}_of_#{arg.gsub(/\W/, '_')}_is_a_type_error") do
      out, err, status = ruby_child(<<~RUBY)
        require "pg"
        require "acidic_job"
        begin
          store = AcidicJob::Native::Store.#{meth}(#{arg}, {})
          store.exec("SELECT 1", [])
          puts "RESULT accepted"
        rescue TypeError => e
          puts "RESULT TypeError \#{e.message}"
        rescue Exception => e
          puts "RESULT \#{e.class} \#{e.message}"
        end
      RUBY
      assert status.success?, "the child died: #{status.inspect}\n#{err[-2000..] || err}"
      assert_includes out, "RESULT TypeError", out
    end
  end

  # 3.5: a lock timeout that overflows when turned into microseconds keeps a locked run
  # locked (or is refused).
  [1.7e13, 9.2e15].each do |seconds|
    define_method("test_lock_timeout_of_#{seconds.to_i}_s_keeps_the_lock") do
      failed_run("huge")
      RelDb.sql("UPDATE acidic_job_keys SET locked_at = ? WHERE idempotency_key = 'huge'", RelDb.now_text)
      AcidicJob.config.lock_timeout = seconds
      begin
        rerun("huge")
        flunk "a run locked a moment ago was acquired with lock_timeout = #{seconds}"
      rescue AcidicJob::LockedIdempotencyKey, AcidicJob::InvalidArgument
        pass
      end
    end
  end

  # 3.6: a step name with a NUL byte is an input error (not truncated, not a bare
  # ArgumentError).
  def test_a_step_name_with_a_nul_byte_is_invalid
    assert_raises(AcidicJob::InvalidArgument) { NulStepJob.perform_now }
  end

  # 3.7: a key reused by another job is a mismatch naming both, behind the setting
  # match_job_name (the option of the next core; 0.7.0 matched keys alone).
  def test_a_key_of_another_job_is_a_mismatch_when_configured
    assert_respond_to AcidicJob.config, :match_job_name=,
                      "AcidicJob.config.match_job_name (the core's match_job_name) does not exist"
    AcidicJob.config.match_job_name = true
    begin
      first = OtherJob.new
      first.job_id = "shared"
      assert first.perform_now
      second = ThreeStepJob.new("x")
      second.job_id = "shared"
      error = assert_raises(AcidicJob::MismatchedIdempotencyKeyAndJobArguments) { second.perform_now }
      assert_includes error.message, "OtherJob"
      assert_includes error.message, "ThreeStepJob"
    ensure
      AcidicJob.config.match_job_name = false
    end
  end

  # 4: no password appears in any error.
  [
    ["postgresql://user:Secr/et9x@127.0.0.1:1/db?connect_timeout=1", %w[Secr et9x]],
    ["host=127.0.0.1 port=1 connect_timeout=1 passwd=Hunter2x", %w[Hunter2x]],
    ["host=127.0.0.1 port=1 connect_timeout=1 PASSWORD=Hunter3x", %w[Hunter3x]],
    ["host=/x\vpassword=Hunter2://x:Secret9@y", %w[Hunter2 Secret9]],
    ["mysql://user:pa?ss9word@h/db", %w[ss9word]],
    ["sqlite3://user:pa#ss8word@h/db", %w[ss8word]],
    ["host=127.0.0.1 port=1 password = 'it''s-secret9'", %w[secret9]],
    ["host=127.0.0.1 port=1 connect_timeout=1 password=abc&secret7 dbname=x", %w[secret7]]
  ].each_with_index do |(url, secrets), i|
    define_method("test_password_#{i}_never_reaches_messages") do
      AcidicJob.config.database_url = url
      error = assert_raises(AcidicJob::Error) { OtherJob.perform_now }
      text = [error.message, error.inspect, error.cause&.message].compact.join("\n")
      secrets.each { |s| refute_includes text, s }
    end
  end

  # 5: job arguments of any size (today on PostgreSQL: "index row size ... exceeds btree
  # version 4 maximum 2704" above about 2.7 KB).
  [2800, 1 << 20, 50 << 20].each do |size|
    define_method("test_arguments_of_#{size}_bytes") do
      big = SecureRandom.base64(size * 3 / 4 + 3)[0, size]
      job = ThreeStepJob.new(big)
      job.job_id = "big#{size}"
      assert job.perform_now
      assert_equal 1, AppLog.where(tag: "c").count
    end
  end
end
