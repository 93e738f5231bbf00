# frozen_string_literal: true

# The Ruby worker of the kill-anywhere harness (driver.py starts and SIGKILLs it):
# ActiveJob jobs including AcidicJob on ActiveRecord (the connection shared with the core),
# or with --mode owned on acidic_job's own connection (database_url, no ActiveRecord).
#
#   ruby worker.rb --db URL --keys N [--mode activerecord|owned] [--final] [--recover]
#                  [--kill-at POINT:PERCENT]... [--pace-ms MS]
#
# The same work as c/kill_worker.c: runs "k0".."k<N-1>" (the ActiveJob job_id is the key)
# of three steps, each creating an app_steps row; s2 stages a PlainDelivery job, or for
# every fourth key awaits two children (the parent resumes through its continuation). The
# queue is ActiveJob's in-memory test adapter, performed after each run, so a killed
# process loses what it held, as Sidekiq's basic fetch does. Recovery (AcidicJob.recover)
# hands a run back as its own job (the same job_id), through the same adapter.
# --recover sweeps before each pass; --final finishes the work as c/kill_worker.c does:
# recovery, drains, and only keys without a row are started.
# Kill points: acquire and recovery (the acquire.acidic_job and recovered.acidic_job
# notifications of the core's events), step, push, child.
require "optparse"
require "logger"
require "active_job"
require "acidic_job"

opts = { keys: 100, final: false, kill: Hash.new(0), lock_ms: 2000 }
OptionParser.new do |o|
  o.on("--db URL") { |v| opts[:db] = v }
  o.on("--mode MODE") { |v| opts[:mode] = v }
  o.on("--keys N", Integer) { |v| opts[:keys] = v }
  o.on("--lock-ms MS", Integer) { |v| opts[:lock_ms] = v }
  o.on("--pace-ms MS", Integer) { |v| opts[:pace_ms] = v }
  o.on("--final") { opts[:final] = true }
  o.on("--recover") { opts[:recover] = true }
  o.on("--kill-at SPEC") do |v|
    point, percent = v.split(":")
    abort "unknown kill point #{point}" unless %w[acquire step push child recovery].include?(point)
    opts[:kill][point] = Integer(percent)
  end
end.parse!
$stdout.sync = true
KILL = opts[:kill]

def maybe_die(point)
  return unless KILL[point].positive? && rand(100) < KILL[point]

  puts "SELFKILL #{point}" # tell the driver where, then die
  Process.kill(:KILL, Process.pid)
end

OWNED = opts[:mode] == "owned"
if OWNED
  AcidicJob.config.database_url = opts[:db]
elsif opts[:db].start_with?("sqlite:")
  ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: opts[:db].delete_prefix("sqlite:"), timeout: 5000)
else
  require "pg"
  ActiveRecord::Base.establish_connection(url: opts[:db])
end

# The application's own writes: through ActiveRecord, or on acidic_job's connection.
module AppWrites
  module_function

  def insert(table, key, value)
    column = table == "app_steps" ? "step" : "job"
    if OWNED
      sql = "INSERT INTO #{table} (key, #{column}) VALUES (?, ?)"
      AcidicJob.current_run ? AcidicJob.exec(sql, key, value) : AcidicJob::Stores.owned.exec(sql, [key, value])
    elsif table == "app_steps"
      AppStep.create!(key: key, step: value)
    else
      Delivery.create!(key: key, job: value)
    end
  end

  def key_of(key_id)
    return AcidicJob::Key.find(key_id).idempotency_key unless OWNED

    AcidicJob::Stores.owned.exec("SELECT idempotency_key FROM acidic_job_keys WHERE id = ?", [key_id.to_i])[0][0]
  end

  def query(sql)
    return ActiveRecord::Base.connection.select_rows(sql) unless OWNED

    AcidicJob::Stores.owned.exec(sql)
  end

  # Every run finished and every staged job acknowledged.
  def done?(keys)
    query("SELECT count(*) FROM acidic_job_keys WHERE recovery_point = 'FINISHED'")[0][0].to_i >= keys &&
      query("SELECT count(*) FROM staged_acidic_jobs")[0][0].to_i.zero?
  end

  def keys_with_rows
    query("SELECT idempotency_key FROM acidic_job_keys").map(&:first).to_set
  end
end
ActiveRecord::Base.logger = nil
ActiveJob::Base.logger = Logger.new(nil)
AcidicJob.config.logger = Logger.new(nil)
AcidicJob.config.lock_timeout = opts[:lock_ms] / 1000.0
AcidicJob.config.retry_base = 0.05   # failed runs (lost connections) come back soon
AcidicJob.config.max_attempts = 0    # a run killed many times is never dead here
AcidicJob.config.recover_interval = nil # this worker sweeps itself (--recover, --final)
ActiveSupport::Notifications.subscribe("acquire.acidic_job") { maybe_die("acquire") } if KILL["acquire"].positive?
ActiveSupport::Notifications.subscribe("recovered.acidic_job") { maybe_die("recovery") } if KILL["recovery"].positive?
GlobalID.app = "acidic-kill"
ActiveRecord::Base.include GlobalID::Identification

# The test adapter, with the "push" kill point: after the step's commit, before the queue.
class KillableAdapter < ActiveJob::QueueAdapters::TestAdapter
  def enqueue(job)
    maybe_die("push")
    super
  end
end
ActiveJob::Base.queue_adapter = KillableAdapter.new

class AppStep < ActiveRecord::Base
  self.table_name = "app_steps"
end

class Delivery < ActiveRecord::Base
  self.table_name = "deliveries"
end

class PlainDelivery < ActiveJob::Base
  def perform(key, *)
    AppWrites.insert("deliveries", key, "plain")
  end
end

module ChildDelivery
  def perform(key_id, *)
    key = AppWrites.key_of(key_id)
    AppWrites.insert("deliveries", key, self.class.name == "Child0" ? "child0" : "child1")
    maybe_die("child")
  end
end

class Child0 < ActiveJob::Base
  include ChildDelivery
end

class Child1 < ActiveJob::Base
  include ChildDelivery
end

module KillSteps
  def s1
    write_step("s1")
  end

  def s3
    write_step("s3")
  end

  private

  def write_step(name)
    AppWrites.insert("app_steps", job_id, name)
    maybe_die("step")
  end
end

class KillFlow < ActiveJob::Base
  include AcidicJob
  include KillSteps

  def perform
    idempotently do
      step :s1
      step :s2
      step :s3
    end
  end

  def s2
    write_step("s2")
    PlainDelivery.perform_transactionally(job_id)
  end
end

class KillFlowAwait < ActiveJob::Base
  include AcidicJob
  include KillSteps

  def perform
    idempotently do
      step :s1
      step :s2, awaits: [Child0, Child1]
      step :s3
    end
  end

  def s2
    write_step("s2")
  end
end

def run_key(i)
  job = (i % 4).zero? ? KillFlowAwait.new : KillFlow.new
  job.job_id = "k#{i}"
  job.perform_now
rescue AcidicJob::LockedIdempotencyKey, AcidicJob::SerializedTransactionConflict
  nil
rescue StandardError => e
  warn "run k#{i}: #{e.class}: #{e.message}"
end

def perform_queue
  queue = ActiveJob::Base.queue_adapter.enqueued_jobs
  while (job = queue.shift)
    begin
      ActiveJob::Base.execute(job.except(:job, :args, :queue, :at, :priority))
    rescue AcidicJob::LockedIdempotencyKey, AcidicJob::SerializedTransactionConflict
      nil
    rescue StandardError => e
      warn "job #{job[:job]}: #{e.class}: #{e.message}"
    end
  end
end

def safely(what)
  yield
rescue StandardError => e # the database may be restarting
  warn "#{what}: #{e.class}: #{e.message}"
  nil
end

def recover
  result = safely("recover") { AcidicJob.recover }
  puts "RECOVERED #{result.requeued} #{result.dead}" if result && (result.requeued.positive? || result.dead.positive?)
end

safely("open") { OWNED ? AcidicJob::Stores.owned : AcidicJob::Key.count } # the connection, the tables
puts "READY"
deadline = Time.now + 300
finished = false
loop do
  recover if opts[:recover] || opts[:final]
  safely("drain") { AcidicJob.drain(older_than: 0) } if opts[:final]
  perform_queue
  started = opts[:final] ? (safely("keys") { AppWrites.keys_with_rows } || (0...opts[:keys]).map { |i| "k#{i}" }.to_set) : Set.new
  (0...opts[:keys]).to_a.shuffle.each do |i|
    next if started.include?("k#{i}") # recovery's, not the rerun's

    run_key(i)
    perform_queue
    # what the Rails executor does after each job: the next checkout verifies the connection
    ActiveRecord::Base.clear_active_connections! unless OWNED
    sleep(opts[:pace_ms] / 1000.0) if opts[:pace_ms]
  end
  next unless opts[:final]

  finished = safely("count") { AppWrites.done?(opts[:keys]) }
  break if finished || Time.now > deadline

  ActiveRecord::Base.clear_active_connections! unless OWNED
  sleep 0.1
end
puts finished ? "DONE" : "GAVE UP"
exit(finished ? 0 : 1)
