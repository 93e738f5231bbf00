# frozen_string_literal: true

# make bench, Ruby part (issue 10), through the installed gem as an application uses it.
#
#   ruby bench_ruby.rb workflow DB ROUNDS RUNS BENCH_CORE   ratio, commits, job latency
#   ruby bench_ruby.rb memory DB RUNS WARM SIDE             RSS growth (SIDE: acidic|plain)
#   ruby bench_ruby.rb profile DB RUNS                      stackprof of both jobs
#
# DB is a SQLite path (WAL, synchronous=FULL) or a postgres:// URL. BENCH_CORE is the C
# bench, used to count SQLite WAL commit frames.
#
# The workflow is an ActiveJob job (queue adapter :test) with 3 steps; each creates one
# ActiveRecord row and sets one persisted attribute (`with:`); the last stages NotifyJob
# with perform_transactionally. The plain job does the same 3 creates in 3
# ActiveRecord::Base.transaction blocks and then NotifyJob.perform_later. Both run on the
# same ActiveRecord connection, in alternating rounds; each result is a line "ROW {json}".
# Beside them run the same workflow written by hand (BenchByHandJob) and the core's calls
# alone (BenchCoreOnlyJob): what an application would write, and the least a binding can.
require "json"
require "logger"
require "active_record"
require "active_job"
require "acidic_job"

mode, target = ARGV.shift(2)
abort("usage: bench_ruby.rb workflow|memory|profile DB ...") unless %w[workflow memory profile].include?(mode) && target

if target.start_with?("postgres")
  ActiveRecord::Base.establish_connection(target)
  DB = "postgres"
  SQLITE_PATH = nil
else
  ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: target)
  ActiveRecord::Base.connection.execute("PRAGMA journal_mode=WAL")
  ActiveRecord::Base.connection.execute(
    "PRAGMA synchronous=#{mode == 'memory' ? 'OFF' : 'FULL'}"
  )
  DB = "sqlite"
  SQLITE_PATH = target
end
ActiveRecord::Base.logger = nil
ActiveJob::Base.logger = Logger.new(nil)
ActiveJob::Base.queue_adapter = :test
ActiveRecord::Schema.verbose = false
ActiveRecord::Schema.define do
  create_table(:bench_rides, if_not_exists: true) { |t| t.string :name, null: false }
  create_table(:bench_progress, if_not_exists: true) do |t|
    t.string :key, null: false, index: { unique: true }
    t.string :step, null: false
    t.text :attrs
    t.string :locked_at
  end
  create_table(:bench_outbox, if_not_exists: true) { |t| t.text :payload, null: false }
end

class BenchRide < ActiveRecord::Base
  self.table_name = "bench_rides"
end

class BenchProgress < ActiveRecord::Base
  self.table_name = "bench_progress"
end

class BenchOutbox < ActiveRecord::Base
  self.table_name = "bench_outbox"
end

class NotifyJob < ActiveJob::Base
  def perform(ride_id); end
end

class BenchWorkflowJob < ActiveJob::Base
  include AcidicJob

  def perform
    idempotently(with: { ride_a: nil, ride_b: nil, ride_c: nil }) do
      step :create_a
      step :create_b
      step :create_c
    end
  end

  def create_a
    self.ride_a = BenchRide.create!(name: "ride").id
  end

  def create_b
    self.ride_b = BenchRide.create!(name: "ride").id
  end

  def create_c
    self.ride_c = BenchRide.create!(name: "ride").id
    NotifyJob.perform_transactionally(ride_c)
  end
end

class BenchPlainJob < ActiveJob::Base
  def perform
    ActiveRecord::Base.transaction { BenchRide.create!(name: "ride") }
    ActiveRecord::Base.transaction { BenchRide.create!(name: "ride") }
    ride = ActiveRecord::Base.transaction { BenchRide.create!(name: "ride") }
    NotifyJob.perform_later(ride.id)
    true
  end
end

# The workflow written by hand, as bench_core.c's: each step's transaction also
# compares-and-sets a progress row (the step to resume at and the attributes as JSON); the
# last writes the serialized job to an outbox row, enqueued after commit.
class BenchByHandJob < ActiveJob::Base
  STEPS = [[:ride_a, "b", nil], [:ride_b, "c", "b"], [:ride_c, "FINISHED", "c"]].freeze

  def perform
    key = "hand-#{job_id}"
    attrs = {}
    job = nil
    STEPS.each do |name, step, expect|
      ActiveRecord::Base.transaction do
        attrs[name] = BenchRide.create!(name: "ride").id
        if expect.nil?
          BenchProgress.create!(key: key, step: step, attrs: JSON.generate(attrs), locked_at: Time.now.to_f.to_s)
        else
          locked_at = step == "FINISHED" ? nil : Time.now.to_f.to_s
          moved = BenchProgress.where(key: key, step: expect)
                               .update_all(step: step, attrs: JSON.generate(attrs), locked_at: locked_at)
          raise "bench: the hand-written progress row moved" unless moved == 1
        end
        if step == "FINISHED"
          job = NotifyJob.new(attrs[name])
          BenchOutbox.create!(payload: JSON.generate(job.serialize))
        end
      end
    end
    job.enqueue
    true
  end
end

# The least Ruby a binding can run over the core: the workflow's core calls (the same
# statements, ActiveRecord transactions, resume description, attributes document, staged
# job and push) made on AcidicJob::Native directly, with none of the concern around them
# (no Runner, key lookup, events, attribute accessors or document checks). What it reads
# against the plain job is the most any Ruby layer over this core can read.
class BenchCoreOnlyJob < ActiveJob::Base
  WORKFLOW = AcidicJob::Native::Workflow.new(%w[create_a create_b create_c].map { |s| [s, [].freeze].freeze }.freeze)

  def perform
    resume = ["activejob", self.class.name, AcidicJob::Documents.serialized_job(serialize)]
    run = AcidicJob::Native::Run.new(AcidicJob::Stores.current, WORKFLOW,
                                     { key: job_id, job_name: self.class.name, args: "--- []\n",
                                       attributes: "--- {}\n", resume: resume })
    rides = {}
    connection = AcidicJob::Stores.shared_connection
    status = begin
      run.execute do |step|
        rides[step] = BenchRide.create!(name: "ride").id
        run.attributes = "--- #{JSON.generate(rides)}\n"
        run.stage("activejob", "NotifyJob", AcidicJob::Documents.serialized_job(NotifyJob.new(rides[step]).serialize)) if step == "create_c"
        AcidicJob::LibpqTransactions.before_commit(connection) # the records' before-commit work
      end
    ensure
      run.close
    end
    status == AcidicJob::Native::Run::SUCCEEDED
  end
end

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def quantile(values, q)
  sorted = values.sort
  sorted[[(q * (sorted.size - 1)).round, sorted.size - 1].min]
end

def median(values) = quantile(values, 0.5)

def emit(measure, figure:, baseline:, unit:, ratio: nil, goal: nil, limit: nil, note: nil)
  row = { measure: measure, from: "Ruby", db: DB, figure: figure, baseline: baseline,
          unit: unit, ratio: ratio, goal: goal, limit: limit }
  row[:note] = note if note
  puts "ROW #{JSON.generate(row)}"
  $stdout.flush
end

# Rates of one side against another's, round by round: the medians, the median ratio and
# the rounds' spread after `what`.
def emit_rates(measure, rates, baselines, what)
  ratios = rates.zip(baselines).map { |a, b| a / b }
  emit(measure, figure: median(rates), baseline: median(baselines), unit: "workflows/s",
                ratio: median(ratios), note: format("%s; %.2f to %.2f", what, ratios.min, ratios.max))
end

# Runs `job` n times; returns the seconds of each run.
def perform(job, n)
  enqueued = ActiveJob::Base.queue_adapter.enqueued_jobs
  Array.new(n) do
    t0 = now
    job.perform_now || abort("bench: #{job} did not succeed")
    elapsed = now - t0
    enqueued.clear if enqueued.size > 1000
    elapsed
  end
end

def conn = ActiveRecord::Base.connection

# Commits since the last reading (see bench_core.c: WAL commit frames on SQLite, the
# database's xact_commit on PostgreSQL after flushing this backend's statistics).
def commits_now(bench_core)
  if SQLITE_PATH
    Integer(IO.popen([bench_core, "walcommits", "#{SQLITE_PATH}-wal"], &:read))
  else
    conn.execute("SELECT pg_stat_force_next_flush()")
    Integer(conn.select_value("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))
  end
end

def count_commits(job, n, bench_core)
  before = commits_now(bench_core)
  perform(job, n)
  delta = commits_now(bench_core) - before
  delta -= 2 unless SQLITE_PATH # the reading's own flush request and query
  delta.to_f / n
end

def measure_workflow(rounds, runs, bench_core)
  plain_rate = []
  acidic_rate = []
  hand_rate = []
  core_rate = []
  plain_lat = []
  acidic_lat = []
  sides = [[BenchPlainJob, plain_rate, plain_lat], [BenchWorkflowJob, acidic_rate, acidic_lat],
           [BenchByHandJob, hand_rate, []], [BenchCoreOnlyJob, core_rate, []]]
  sides.each { |job, _, _| perform(job, runs / 4 + 5) }
  rounds.times do |r|
    # rotate which side goes first, so drift hits all alike
    sides.rotate(r % sides.size).each do |job, rates, lat|
      times = perform(job, runs)
      rates << runs / times.sum
      lat.concat(times)
    end
  end
  ratios = acidic_rate.zip(plain_rate).map { |a, b| a / b }
  emit("workflow ratio", figure: median(acidic_rate), baseline: median(plain_rate),
                         unit: "workflows/s", ratio: median(ratios), goal: 0.8,
                         note: format("ratio %.2f to %.2f over %d rounds of %d", ratios.min, ratios.max,
                                      rounds, runs))
  emit_rates("workflow vs the same by hand", acidic_rate, hand_rate,
             "baseline: each step also sets a progress row, the last writes an outbox row (ActiveRecord, JSON)")
  emit_rates("the same by hand vs plain", hand_rate, plain_rate,
             "the application's own hand-written workflow (its progress and outbox rows as ActiveRecord " \
             "models) vs the plain job")
  emit_rates("the core alone vs plain", core_rate, plain_rate,
             "the workflow's core calls on AcidicJob::Native directly, with no concern around them: " \
             "the most a Ruby layer over this core can read")
  emit_rates("workflow vs the core alone", acidic_rate, core_rate, "what the concern costs")
  [[0.5, "p50"], [0.99, "p99"]].each do |q, name|
    a = 1e3 * quantile(acidic_lat, q)
    b = 1e3 * quantile(plain_lat, q)
    emit("job latency #{name}", figure: a, baseline: b, unit: "ms", ratio: b / a,
                                note: "a whole 3-step job vs the plain job")
  end

  if SQLITE_PATH
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
  end
  plain = count_commits(BenchPlainJob, 100, bench_core)
  acidic = count_commits(BenchWorkflowJob, 100, bench_core)
  conn.execute("PRAGMA wal_autocheckpoint=1000") if SQLITE_PATH
  emit("commits per workflow", figure: acidic, baseline: plain, unit: "commits",
                               ratio: plain / acidic, goal: 1.0,
                               note: "over 100 runs; goal: commits = steps (3)")
end

def rss_mb = File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i / 1024.0

# What the interpreter loses per job whatever the job is: ActiveRecord 6.1 makes an
# ObjectSpace::WeakMap for each transaction that creates a record (Transaction#add_record),
# and heaptrack shows the 24-byte struct Ruby 3.1 allocates with each WeakMap never freed.
# Counted over a few jobs, and the RSS of 100,000 discarded one-entry WeakMaps measured in
# this process (after 100,000 more, so that the object heap has its size).
def weakmap_leak(job)
  maps = 0
  counter = TracePoint.new(:c_return) do |t|
    maps += 1 if t.method_id == :new && ObjectSpace::WeakMap === t.return_value
  end
  counter.enable { perform(job, 100) }
  discard = -> { 100_000.times { ObjectSpace::WeakMap.new[key = Object.new] = key } }
  discard.call # the object heap grows to what discarding them takes, once
  GC.start
  before = rss_mb
  discard.call
  GC.start
  { weakmaps_per_job: maps / 100.0, weakmap_bytes: (rss_mb - before) * 1024 * 1024 / 100_000 }
end

# fsync does not change a process's memory: SQLite runs with synchronous=OFF here. Each
# side runs in a process of its own (they run concurrently, in the background).
def measure_memory(runs, warm, side)
  job = side == "acidic" ? BenchWorkflowJob : BenchPlainJob
  perform(job, warm)
  GC.start
  before = rss_mb
  (runs - warm).times { perform(job, 1) }
  GC.start
  puts "MEMORY #{JSON.generate(from: 'Ruby', db: DB, side: side, growth_mb: rss_mb - before,
                               rss_mb: rss_mb, runs: runs - warm, warm: warm,
                               **weakmap_leak(job))}"
end

# The library's own frames and the encoders, by the share of samples they are on the stack of.
def print_library_frames(report)
  total = report[:samples].to_f
  frames = report[:frames].values.select { |f| f[:name] =~ /\A(AcidicJob|Psych\.|ActiveJob::Base\.deserialize|GlobalID)/ }
  puts "--- acidic_job and encoder frames, by samples on the stack (inclusive) ---"
  frames.sort_by { |f| -f[:total_samples] }.first(30).each do |f|
    printf("%6.1f%%  %6.1f%% own  %s\n", 100 * f[:total_samples] / total, 100 * f[:samples] / total, f[:name])
  end
end

# Where the time of a workflow goes, next to the plain job's (stackprof, wall clock).
def profile(runs)
  require "stackprof"
  perform(BenchWorkflowJob, runs / 10)
  perform(BenchPlainJob, runs / 10)
  [[BenchWorkflowJob, "workflow"], [BenchPlainJob, "plain job"]].each do |job, name|
    t0 = now
    report = StackProf.run(mode: :wall, interval: 100, raw: true) { perform(job, runs) }
    puts "=== #{name}: #{runs} runs on #{DB}, #{format('%.3f', (now - t0) * 1e3 / runs)} ms each " \
         "(stackprof wall, sorted by total) ==="
    StackProf::Report.new(report).print_text(true, 60, nil, nil, nil, nil, $stdout)
    print_library_frames(report)
  end
end

if $PROGRAM_NAME == __FILE__ # (a profiler may load this file for its jobs)
  case mode
  when "workflow"
    rounds, runs, bench_core = ARGV
    measure_workflow(Integer(rounds), Integer(runs), bench_core)
  when "memory"
    measure_memory(Integer(ARGV.fetch(0)), Integer(ARGV.fetch(1)), ARGV.fetch(2))
  when "profile"
    profile(Integer(ARGV.fetch(0)))
  end
end
