# frozen_string_literal: true

require "fileutils"
require "timeout"
require "securerandom"
require_relative "admin_hold_job"

# Jobs and seeding of the operator tests (test_admin.rb, test_admin_cli.rb): real
# workflows that succeed, fail, await and get stranded by a SIGKILLed worker, and rows
# shaped as acidic_job 0.7.0 wrote them.
class AdminChargeJob < ActiveJob::Base
  include AcidicJob

  cattr_accessor :failures, default: 0

  def perform(user)
    idempotently with: { user: user, ride_id: nil } do
      step :create_ride
      step :charge
      step :notify
    end
  end

  def create_ride
    self.ride_id = Ride.create!(user: @user, amount: 100).id
    Audit.create!(event: "ride #{@user}")
  end

  def charge
    if self.class.failures.positive?
      self.class.failures -= 1
      raise StripeError, "card declined for #{@user}"
    end
    Ride.find(@ride_id).update!(stripe_charge_id: "ch_#{@ride_id}")
    Audit.create!(event: "charge #{@user}")
  end

  def notify
    ReceiptJob.perform_transactionally(@ride_id)
  end
end

class AdminOtherJob < ActiveJob::Base
  include AcidicJob

  cattr_accessor :fail_always, default: true

  def perform(label)
    idempotently with: { label: label } do
      step :only
    end
  end

  def only
    raise ArgumentError, "bad #{@label}" if self.class.fail_always
  end
end

module AdminHelpers
  ROOT = File.expand_path("../../..", __dir__)
  WORKER = File.join(__dir__, "admin_worker.rb")
  LOCK_TIMEOUT = 2.0 # seconds, the workers' and the operator's

  # A run of AdminChargeJob that succeeds; returns its key.
  def succeeded_run(user = "ok-#{SecureRandom.hex(3)}")
    job = AdminChargeJob.new(user)
    job.perform_now
    job.job_id
  end

  # A run of AdminChargeJob that fails in its charge step (recovery point "charge").
  def failed_run(user = "bad-#{SecureRandom.hex(3)}")
    AdminChargeJob.failures = 1
    job = AdminChargeJob.new(user)
    begin
      job.perform_now
    rescue StripeError
      nil
    end
    job.job_id
  ensure
    AdminChargeJob.failures = 0
  end

  def other_failed_run(label = "other-#{SecureRandom.hex(3)}")
    job = AdminOtherJob.new(label)
    begin
      job.perform_now
    rescue ArgumentError
      nil
    end
    job.job_id
  end

  # A run waiting for its awaited jobs (AwaitingJob of support/jobs.rb).
  def awaiting_run
    job = AwaitingJob.new("await-#{SecureRandom.hex(3)}")
    job.perform_now
    enqueued.clear
    job.job_id
  end

  def db_location
    TestDatabase.core_url
  end

  # A worker process (support/admin_worker.rb) inside the second step of a run under
  # `key`, holding its lock. Returns [pid, release_file, output_file].
  def start_holding_worker(key, release: true, lock_timeout: LOCK_TIMEOUT)
    dir = Dir.mktmpdir("aj-admin-worker")
    (@worker_dirs ||= []) << dir
    ready = File.join(dir, "ready")
    release_file = File.join(dir, "release")
    out = File.join(dir, "out")
    env = { "AJ_ADMIN_DB" => db_location, "AJ_ADMIN_KEY" => key, "AJ_ADMIN_READY" => ready,
            "AJ_ADMIN_LOCK_TIMEOUT" => lock_timeout.to_s, "AJ_ADMIN_LABEL" => key }
    env["AJ_ADMIN_RELEASE"] = release_file if release
    pid = Process.spawn(env, RbConfig.ruby, WORKER, out: out, err: [out, "a"])
    Timeout.timeout(30) do
      sleep 0.02 until File.exist?(ready)
    rescue Timeout::Error
      Process.kill("KILL", pid)
      raise "the worker did not reach its held step: #{File.read(out) rescue ''}"
    end
    [pid, release_file, out]
  end

  # The workers' directories go with the test that made them (Minitest's lifecycle hook,
  # after the test class's own teardown).
  def after_teardown
    super
    (@worker_dirs || []).each { |d| FileUtils.remove_entry(d, true) }
  end

  # A run stranded by a worker SIGKILLed in its second step; the lock is left to expire
  # (LOCK_TIMEOUT). Returns the key.
  def stranded_run(key = "stranded-#{SecureRandom.hex(3)}")
    pid, = start_holding_worker(key, release: false)
    Process.kill("KILL", pid)
    Process.wait(pid)
    wait_for_dead_transaction(key) if postgres?
    key
  end

  # PostgreSQL ends a killed client's transaction (and releases its row lock) once its
  # backend sees the connection closed: a moment after the kill.
  def wait_for_dead_transaction(key)
    conn = AcidicJob::Key.connection
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
    begin
      conn.transaction do
        conn.execute("SELECT id FROM acidic_job_keys WHERE idempotency_key = #{conn.quote(key)} FOR UPDATE NOWAIT")
      end
    rescue ActiveRecord::StatementInvalid
      raise if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
      retry
    end
  end

  def wait_for_lock_expiry
    sleep LOCK_TIMEOUT + 0.2
  end

  # What acidic_job 0.7.0 wrote for a RideCreateJob whose Stripe step failed with an
  # exception whose class the console does not define (Stripe::CardError).
  SEVEN_ERROR = "--- !ruby/exception:Stripe::CardError\nmessage: Your card was declined.\n" \
                "http_status: 402\njson_body:\n  error:\n    code: card_declined\n" \
                "backtrace:\n- app/jobs/ride_create_job.rb:30:in `create_stripe_charge'\n" \
                "- lib/acidic_job.rb:120:in `block in idempotently'\n"
  SEVEN_ATTRIBUTES = "--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess\nuser: ada\n" \
                     "amount: 2000\nride: !ruby/object:Stripe::Charge\n  id: ch_1\n"
  SEVEN_WORKFLOW = "---\ncreate_ride_and_audit_record:\n  does: create_ride_and_audit_record\n" \
                   "  awaits: []\n  then: create_stripe_charge\ncreate_stripe_charge:\n" \
                   "  does: create_stripe_charge\n  awaits: []\n  then: send_receipt\n" \
                   "send_receipt:\n  does: send_receipt\n  awaits: []\n  then: FINISHED\n"

  def insert_070_row(key, job_name: "RideCreateJob", job_args: "---\n- ada\n- 2000\n",
                     recovery_point: "create_stripe_charge", error: SEVEN_ERROR,
                     attributes: SEVEN_ATTRIBUTES, workflow: SEVEN_WORKFLOW)
    now = Time.now.utc.strftime("%Y-%m-%d %H:%M:%S.%6N")
    values = [key, job_name, job_args, now, recovery_point, error, attributes, workflow, now, now]
    marks = postgres? ? (1..10).map { |i| "$#{i}" }.join(", ") : (["?"] * 10).join(", ")
    AcidicJob::Key.connection.exec_insert(<<~SQL, "test", values)
      INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, recovery_point,
        error_object, attr_accessors, workflow, created_at, updated_at) VALUES (#{marks})
    SQL
    AcidicJob::Key.where(idempotency_key: key).order(:id).last.id
  end

  def with_config(**settings)
    previous = settings.keys.to_h { |k| [k, AcidicJob.config.public_send(k)] }
    settings.each { |k, v| AcidicJob.config.public_send("#{k}=", v) }
    yield
  ensure
    previous&.each { |k, v| AcidicJob.config.public_send("#{k}=", v) }
  end

  def run_row(key)
    AcidicJob::Admin.show(key).run
  end
end
