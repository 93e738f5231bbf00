# frozen_string_literal: true

# make bench, Ruby part: acidic_job steps against plain transactions, same database.
#
#   ruby bench_ruby.rb PATH-or-POSTGRES-URL [STEPS]
#
# The application writes through ActiveRecord: the baseline is
# `ActiveRecord::Base.transaction { INSERT }`; the acidic side is an ActiveJob job whose
# workflow has 10 steps, each making that same INSERT on the same connection. A step's cost
# is the marginal one: (time of a 10-step job - time of a 1-step job) / 9, which leaves out
# the run's acquisition (also reported, as whole 10-step runs). Rounds alternate; the median
# ratios are printed as "RATIO ruby <db> <ratio>" and "RATIO ruby-runs <db> <ratio>".
require "logger"
require "active_record"
require "active_job"
require "acidic_job"

target = ARGV[0] or abort("usage: bench_ruby.rb PATH|postgres://... [STEPS]")
steps = Integer(ARGV[1] || 3000)
STEPS_PER_RUN = 10
ROUNDS = 11

if target.start_with?("postgres")
  ActiveRecord::Base.establish_connection(target)
  db = "postgres"
else
  ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: target)
  ActiveRecord::Base.connection.execute("PRAGMA journal_mode=WAL")
  ActiveRecord::Base.connection.execute("PRAGMA synchronous=FULL")
  db = "sqlite"
end
ActiveRecord::Base.logger = nil
ActiveJob::Base.logger = Logger.new(nil)
ActiveRecord::Schema.verbose = false
ActiveRecord::Schema.define do
  create_table(:bench_rides, if_not_exists: true) { |t| t.string :name, null: false }
end
INSERT = "INSERT INTO bench_rides (name) VALUES ('ride')"

def workflow_job(name, count)
  Class.new(ActiveJob::Base) do
    include AcidicJob
    define_singleton_method(:name) { name }
    define_method(:perform) do
      idempotently(with: {}) do
        count.times { |i| step :"step_#{i}" }
        @_steps
      end
    end
    count.times do |i|
      define_method(:"step_#{i}") { ActiveRecord::Base.connection.execute(INSERT) }
    end
  end
end
LongJob = workflow_job("BenchLongJob", STEPS_PER_RUN)
ShortJob = workflow_job("BenchShortJob", 1)

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def plain(n)
  t0 = now
  n.times { ActiveRecord::Base.transaction { ActiveRecord::Base.connection.execute(INSERT) } }
  n / (now - t0)
end

def seconds_per_run(job, runs)
  t0 = now
  runs.times { job.perform_now || abort("bench: a run did not succeed") }
  (now - t0) / runs
end

def median(values) = values.sort[values.size / 2]

plain(steps / 10)
seconds_per_run(LongJob, [1, steps / 100].max)
runs = [2, steps / ROUNDS / STEPS_PER_RUN].max
base = []
step_rate = []
run_rate = []
ROUNDS.times do
  base << plain(runs * STEPS_PER_RUN)
  long = seconds_per_run(LongJob, runs)
  short = seconds_per_run(ShortJob, runs)
  step_rate << (STEPS_PER_RUN - 1) / (long - short)
  run_rate << STEPS_PER_RUN / long
end
printf("%-8s Ruby    plain transactions  %9.0f /s\n", db, median(base))
printf("%-8s Ruby    acidic_job steps    %9.0f /s\n", db, median(step_rate))
printf("%-8s Ruby    in 10-step runs     %9.0f steps/s (acquisition included)\n", db, median(run_rate))
printf("RATIO ruby %s %.3f\n", db, median(step_rate.zip(base).map { |s, b| s / b }))
printf("RATIO ruby-runs %s %.3f\n", db, median(run_rate.zip(base).map { |s, b| s / b }))
