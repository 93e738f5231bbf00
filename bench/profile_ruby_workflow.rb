# frozen_string_literal: true

# A 3-step ActiveJob workflow with ActiveRecord writes (each step inserts one row and sets
# one persisted attribute, the last stages one job) against the same job without
# acidic_job (three inserts in three transactions and a direct enqueue), on one SQLite
# file (WAL, synchronous=FULL). Alternating rounds; prints the median ratio.
#   ruby bench/profile_ruby_workflow.rb DB [RUNS] [stackprof-output]
require "logger"
require "active_record"
require "active_job"
require "acidic_job"

path = ARGV[0] or abort("usage: profile_ruby_workflow.rb DB [RUNS] [PROFILE]")
runs = Integer(ARGV[1] || 300)
File.delete(path) if File.exist?(path)
ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: path, timeout: 5000)
ActiveRecord::Base.connection.execute("PRAGMA journal_mode=WAL")
ActiveRecord::Base.connection.execute("PRAGMA synchronous=FULL")
ActiveRecord::Base.logger = nil
ActiveJob::Base.logger = Logger.new(nil)
ActiveJob::Base.queue_adapter = :test
AcidicJob.config.logger = Logger.new(nil, level: Logger::INFO)
ActiveRecord::Schema.verbose = false
ActiveRecord::Schema.define { create_table(:bench_rows) { |t| t.string :name, null: false } }
class BenchRow < ActiveRecord::Base; end

class NotifyJob < ActiveJob::Base
  def perform(*) = nil
end

class PlainWorkflowJob < ActiveJob::Base
  def perform(n)
    3.times { |i| ActiveRecord::Base.transaction { BenchRow.create!(name: "plain #{n} #{i}") } }
    NotifyJob.perform_later(n)
  end
end

class AcidicWorkflowJob < ActiveJob::Base
  include AcidicJob

  def perform(n)
    idempotently(with: { n: n, done: 0 }) do
      step :one
      step :two
      step :three
    end
  end

  def one
    BenchRow.create!(name: "acidic #{@n} 1")
    self.done = 1
  end

  def two
    BenchRow.create!(name: "acidic #{@n} 2")
    self.done = 2
  end

  def three
    BenchRow.create!(name: "acidic #{@n} 3")
    self.done = 3
    NotifyJob.perform_transactionally(@n)
  end
end

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def rate(klass, count, offset)
  t0 = now
  count.times { |i| klass.perform_now(offset + i) }
  ActiveJob::Base.queue_adapter.enqueued_jobs.clear
  count / (now - t0)
end

rate(PlainWorkflowJob, 30, 0)
rate(AcidicWorkflowJob, 30, 0)
if ARGV[2]
  require "stackprof"
  StackProf.run(mode: :wall, out: ARGV[2], interval: 200) { rate(AcidicWorkflowJob, runs, 1_000_000) }
  puts "profile written to #{ARGV[2]}"
  exit
end
ratios = Array.new(7) do |round|
  plain = rate(PlainWorkflowJob, runs / 7, (round + 1) * 10_000)
  acidic = rate(AcidicWorkflowJob, runs / 7, (round + 1) * 10_000)
  acidic / plain
end
printf("RATIO ruby-workflow sqlite %.2f (rounds %s)\n", ratios.sort[ratios.size / 2], ratios.map { |r| format("%.2f", r) }.join(" "))
