# frozen_string_literal: true

# The kill test: real Sidekiq processes on a real Redis, SIGKILLed at random while they
# work through workflow jobs on a SQLite file shaped by acidic_job 0.7.0's generator
# migrations. The workers recover stranded runs themselves (config.recover_interval);
# after the kills, AcidicJob.recover hands every run whose job a kill lost back to Sidekiq
# (same jid), and AcidicJob.drain delivers what a kill left staged but unpushed. Asserts: every step's application row exists
# exactly once, every run finishes, every staged job reaches Redis (and performs).
require "minitest/autorun"
require "tmpdir"
require "fileutils"
require "logger"
require "sidekiq"
require "sidekiq/api"
require "acidic_job"
require "rails/generators"
require "generators/acidic_job_generator"
require_relative "support/summary_plugin"
require_relative "support/processes"

class KillSidekiqTest < Minitest::Test
  include StopsProcesses

  WORKFLOWS = 30
  KILLS = Integer(ENV.fetch("AJ_KILL_COUNT", "10"))
  # One thread per process: the sqlite3 gem (1.4) keeps the GVL while an application write
  # waits for SQLite's lock, so a second thread of the same process holding that lock could
  # not run to release it. Processes wait for each other without that problem.
  PROCESSES = 3
  LOCK_TIMEOUT = 2 # seconds
  DEADLINE = 40 # seconds: a guard against hanging, not a measurement

  def setup
    skip "needs AJ_TEST_REDIS_URL" if ENV["AJ_TEST_REDIS_URL"].to_s.empty?
    @dir = Dir.mktmpdir("aj-kill")
    @db = File.join(@dir, "app.db")
    @redis = ENV.fetch("AJ_TEST_REDIS_URL").sub(%r{/\d*\z}, "/11")
    @pids = []
    @kills = 0
    create_0_7_0_database
    ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: @db, timeout: 20_000)
    ActiveRecord::Base.logger = nil
    AcidicJob.config.logger = Logger.new(File.join(@dir, "test.log"))
    AcidicJob.config.lock_timeout = LOCK_TIMEOUT
    Sidekiq.configure_client { |config| config.redis = { url: @redis } }
    Sidekiq.redis(&:flushdb)
    require_relative "support/kill_workers"
  end

  def teardown
    (@pids || []).dup.each { |pid| stop(pid, "KILL") }
    ActiveRecord::Base.remove_connection
    FileUtils.rm_rf(@dir) if @dir && passed? && !ENV["AJ_KILL_KEEP"]
    puts "kept #{@dir} (sidekiq-*.log)" if @dir && (!passed? || ENV["AJ_KILL_KEEP"])
  end

  # The tables from 0.7.0's two generator migrations only, as a 0.7.0 application has them;
  # the core adds what it needs on first use.
  def create_0_7_0_database
    generated = File.join(@dir, "generated")
    out = $stdout
    $stdout = File.open(File::NULL, "w")
    AcidicJobGenerator.start([], destination_root: generated)
    $stdout = out
    Dir[File.join(generated, "db/migrate/*_add_acidic_job_batches.rb")].each { |f| File.delete(f) }
    ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: @db)
    ActiveRecord::Migration.verbose = false
    ActiveRecord::MigrationContext.new(File.join(generated, "db/migrate"), ActiveRecord::SchemaMigration).migrate
    conn = ActiveRecord::Base.connection
    conn.create_table(:step_rows) { |t| t.string :label, null: false; t.string :step, null: false }
    conn.create_table(:receipt_rows) { |t| t.string :label, null: false }
    raise "not 0.7.0's shape" if conn.table_exists?(:acidic_job_batches) || conn.column_exists?(:staged_acidic_jobs, :batch_id)

    ActiveRecord::Base.remove_connection
  end

  def start_sidekiq
    @started = (@started || 0) + 1
    log = File.join(@dir, "sidekiq-#{@started}.log")
    env = { "AJ_KILL_DB" => @db, "AJ_KILL_REDIS" => @redis, "AJ_KILL_LOCK_TIMEOUT" => LOCK_TIMEOUT.to_s }
    pid = Process.spawn(env, "sidekiq", "-r", File.expand_path("support/kill_boot.rb", __dir__),
                        "-q", "kill", "-c", "1", "-t", "1", out: [log, "a"], err: [log, "a"], pgroup: true)
    @pids << pid
    pid
  end

  def stop(pid, signal = "TERM")
    stop_process(pid, signal)
  ensure
    @pids.delete(pid)
  end

  def wait_for(what)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + DEADLINE
    until yield
      flunk "timed out waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.1
    end
  end

  def jid_for(label)
    Digest::SHA1.hexdigest("kill-#{label}")[0, 24]
  end

  def labels
    @labels ||= Array.new(WORKFLOWS) { |i| "w#{i}" }
  end

  # Through the outbox, as an application enqueues with perform_transactionally, with the
  # jid fixed: a job a kill lost before its run existed is delivered again by the drain,
  # under the same idempotency key.
  def push_workflow(label)
    AcidicJob::Staged.create!(adapter: "sidekiq", job_name: "KillWorkflowWorker",
                              job_args: { "args" => [label], "jid" => jid_for(label) })
  end

  def unfinished_labels
    finished = AcidicJob::Key.where(recovery_point: "FINISHED").pluck(:idempotency_key)
    labels.reject { |label| finished.include?(jid_for(label)) }
  end

  def jids_in_redis
    sets = [Sidekiq::Queue.new("kill"), Sidekiq::RetrySet.new, Sidekiq::ScheduledSet.new]
    sets.flat_map { |set| set.map(&:jid) }
  end

  # A process of ours that has booted and fetches jobs (nil once the work is done).
  def working_process
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + DEADLINE
    loop do
      booted = Sidekiq::ProcessSet.new.map { |process| process["pid"] }
      victim = (booted & @pids).sample
      return victim if victim
      return nil if unfinished_labels.empty? || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
  end

  def redis_idle?
    Sidekiq::Queue.new("kill").size.zero? && Sidekiq::RetrySet.new.size.zero? &&
      Sidekiq::ScheduledSet.new.size.zero?
  end

  # Sidekiq's basic fetch takes a job off the queue before performing it, so a SIGKILL
  # loses the jobs in flight: their runs stay locked. Once the lock timeout has passed,
  # recovery re-enqueues each through the outbox, with its jid.
  def recover_lost_runs
    sleep LOCK_TIMEOUT + 0.5
    AcidicJob.recover
  end

  def test_sigkilled_sidekiq_workers_finish_every_run_once_and_deliver_every_staged_job
    labels.each { |label| push_workflow(label) }
    PROCESSES.times { start_sidekiq }

    KILLS.times do
      victim = working_process
      break unless victim

      sleep(rand * 0.4) # somewhere inside a step, its commit or its push
      stop(victim, "KILL")
      @kills += 1
      start_sidekiq
    end
    @pids.dup.each { |pid| stop(pid, "KILL") }

    in_redis = jids_in_redis
    lost = unfinished_labels.count { |label| !in_redis.include?(jid_for(label)) }
    recovered = recover_lost_runs
    assert_equal 0, recovered.dead
    # jobs lost before their run's first step committed have no run to recover: their
    # staged rows are still there
    redelivered = AcidicJob.drain(older_than: 0)
    worker = start_sidekiq
    wait_for("every run to finish") { unfinished_labels.empty? }
    wait_for("the queues to empty") { redis_idle? }
    stop(worker)
    # With no job in flight, what the drain delivers is what a kill left staged and
    # unpushed, or pushed and lost in flight.
    drained = AcidicJob.drain(older_than: 0)
    worker = start_sidekiq
    wait_for("every staged job to perform") { AcidicJob::Staged.count.zero? && redis_idle? }
    stop(worker)

    rows = StepRow.group(:label, :step).count
    duplicates = rows.values.sum - rows.size
    keys = AcidicJob::Key.all.to_a
    receipts = ReceiptRow.distinct.pluck(:label)
    puts format("kill test: %<kills>d kills, %<runs>d runs, %<steps>d step rows, %<dup>d duplicates, " \
                "%<lost>d runs whose job was lost, %<recovered>d recovered, %<redelivered>d redelivered, " \
                "%<drained>d drained, " \
                "%<receipts>d receipts (%<rows>d rows)",
                kills: @kills, runs: keys.size, steps: rows.values.sum, dup: duplicates, lost: lost,
                recovered: recovered.requeued, redelivered: redelivered,
                drained: drained, receipts: receipts.size, rows: ReceiptRow.count)

    expected = labels.product(%w[reserve charge confirm]).to_h { |pair| [pair, 1] }
    assert_equal expected, rows, "every step's application row exists exactly once"
    assert_equal WORKFLOWS, keys.size
    assert keys.all?(&:succeeded?), "every run finishes: #{keys.reject(&:succeeded?).map(&:recovery_point)}"
    assert_equal labels.sort, receipts.sort, "every staged job reached Redis and performed"
    assert_equal 0, AcidicJob::Staged.count
    assert keys.none?(&:locked_at), "nothing left locked"
  end
end
