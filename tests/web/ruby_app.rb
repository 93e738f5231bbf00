# frozen_string_literal: true

# The Ruby application the dashboard tests drive (tests/web/test_dashboard.py): ActiveJob
# jobs with acidic_job on ActiveRecord, a minimal Rails application that mounts
# AcidicJob::Web, and a plain Rack application that runs it.
#
#   ruby ruby_app.rb seed DATABASE              the seeded runs (see seed!)
#   ruby ruby_app.rb die DATABASE KEY           a worker that dies in a step (stranded)
#   ruby ruby_app.rb rails DATABASE PORT        Rails, AcidicJob::Web mounted at /acidic_job
#   ruby ruby_app.rb rack DATABASE PORT         plain Rack: AcidicJob::Web.new, no hook
#
# DATABASE: a SQLite file path or a postgresql:// URL. Served, ActiveJob runs jobs on
# its :async adapter, in this process: the worker that a retry or a reset enqueues to.
# Every step writes a row to step_log in its own transaction, so the tests count which
# steps ran, and how often. AJ_WEB_FLAG (seed): a file whose existence fixes the failing
# runs ride-fail-2 to -5 (ride-fail-1 never succeeds).
require "logger"
require "rack"
require "active_job"
require "globalid"
require "acidic_job"

mode, database, port = ARGV
LOCK_TIMEOUT = 2 # seconds: a killed worker's run is stranded this long after its last step

if database.start_with?("postgres")
  require "pg"
  ActiveRecord::Base.establish_connection(url: database, pool: 20)
else
  require "sqlite3"
  ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: database, pool: 20,
                                          timeout: 10_000)
  # The server's worker thread and its request threads write to one file. The sqlite3
  # gem's busy_timeout waits for the write lock holding the GVL, so the thread holding the
  # lock cannot run to release it; the timeout as Rails 7.1 applies it (a busy handler
  # that sleeps, releasing the GVL) is what a threaded application on SQLite needs.
  require "active_record/connection_adapters/sqlite3_adapter"
  ActiveRecord::ConnectionAdapters::SQLite3Adapter.prepend(Module.new do
    private def configure_connection
      super
      timeout_s = @config.fetch(:timeout, 10_000) / 1000.0
      started = nil
      @connection.busy_handler do |count|
        started = Process.clock_gettime(Process::CLOCK_MONOTONIC) if count.zero?
        next false if Process.clock_gettime(Process::CLOCK_MONOTONIC) - started > timeout_s

        sleep 0.001
        true
      end
    end
  end)
end
ActiveRecord::Base.logger = nil
ActiveJob::Base.logger = Logger.new(nil)
GlobalID.app = "dashboard-test"
ActiveRecord::Base.include GlobalID::Identification
AcidicJob.configure do |c|
  c.lock_timeout = LOCK_TIMEOUT
  c.logger = Logger.new($stderr, level: :warn)
end
ActiveRecord::Schema.verbose = false
ActiveRecord::Schema.define do
  create_table(:step_log, if_not_exists: true) do |t|
    t.string :run_key
    t.string :step
  end
end

class StepLog < ActiveRecord::Base
  self.table_name = "step_log"
end

# Three steps; the arguments say where it fails or dies.
class RideCreateJob < ActiveJob::Base
  include AcidicJob

  def perform(rider, params)
    idempotently with: { rider: rider, params: params, note: nil } do
      step :create_ride
      step :charge
      step :send_receipt
    end
  end

  def create_ride
    log(:create_ride)
    self.note = @params["note"]
  end

  def charge
    log(:charge)
    raise ArgumentError, @params["error"] if @params["error"] && !File.exist?(@params["fixed_flag"].to_s)
  end

  def send_receipt
    log(:send_receipt)
    Process.kill(:KILL, Process.pid) if @params["die"] # the worker dies mid-step
  end

  private

  def log(step)
    StepLog.create!(run_key: job_id, step: step.to_s)
  end
end

class ChildJob < ActiveJob::Base
  def perform(label)
    StepLog.create!(run_key: "child", step: label.to_s)
  end
end

# Awaits two child jobs.
class FanOutJob < ActiveJob::Base
  include AcidicJob

  def perform(label)
    idempotently with: { label: label } do
      step :fan_out, awaits: [ChildJob, ChildJob]
      step :fan_in
    end
  end

  def fan_out
    StepLog.create!(run_key: job_id, step: "fan_out")
  end

  def fan_in
    StepLog.create!(run_key: job_id, step: "fan_in")
  end
end

XSS_MESSAGE = "card declined <script>window.__aj_xss_error = 1</script><img src=x onerror=\"window.__aj_xss_img = 1\">"
XSS_NOTE = "<script>window.__aj_xss_attr = 1</script><b>bold?</b>"

def perform(job_class, key, *args)
  job = job_class.new(*args)
  job.job_id = key
  job.perform_now
rescue StandardError => e
  warn "seed: #{key} raised #{e.class} (expected for failed runs)" unless e.is_a?(ArgumentError)
end

# The runs the tests expect (keys and states): see tests/web/test_dashboard.py SEEDED.
def seed!(database)
  ActiveJob::Base.queue_adapter = :test # awaited jobs stay queued: their batch stays open
  3.times { |i| perform(RideCreateJob, "ride-ok-#{i + 1}", "rider-#{i + 1}", { "note" => "ok #{i + 1}" }) }
  perform(RideCreateJob, "ride-fail-1", "rider-f1", { "note" => XSS_NOTE, "error" => XSS_MESSAGE })
  4.times do |i|
    perform(RideCreateJob, "ride-fail-#{i + 2}", "rider-f#{i + 2}",
            { "note" => "fails", "error" => "insufficient funds #{i + 2}",
              "fixed_flag" => ENV.fetch("AJ_WEB_FLAG") })
  end
  perform(FanOutJob, "fanout-1", "fan")
  # stranded: a worker process that dies in its last step
  pid = Process.spawn(RbConfig.ruby, __FILE__, "die", database, "ride-stranded-1")
  Process.wait(pid)
  raise "the dying worker did not die (#{$?.inspect})" unless $?.signaled?
end

def serve(app, port)
  # The worker: jobs a retry, a reset or a drain enqueues run here, one at a time (SQLite
  # has one writer; a thread waiting for it would hold up the others).
  ActiveJob::Base.queue_adapter = ActiveJob::QueueAdapters::AsyncAdapter.new(min_threads: 1, max_threads: 1)
  ActiveJob::Base.logger = Logger.new($stderr, level: :error)
  require "rack/handler/webrick"
  Rack::Handler::WEBrick.run(app, Host: "127.0.0.1", Port: Integer(port),
                                  Logger: WEBrick::Log.new($stderr, WEBrick::Log::WARN),
                                  AccessLog: [])
end

case mode
when "seed" then seed!(database)
when "die"
  ActiveJob::Base.queue_adapter = :test
  perform(RideCreateJob, port, "rider-s", { "note" => "dies", "die" => true })
when "rails"
  require "action_controller/railtie"
  AcidicJob::Web.configure { |c| c.poll_seconds = 1 }
  class DashboardApp < Rails::Application
    config.root = __dir__
    config.eager_load = false
    config.logger = Logger.new(nil)
    config.secret_key_base = "dashboard-test-#{'x' * 40}"
    config.hosts.clear
    config.session_store :cookie_store, key: "_dashboard_session"
    routes.append do
      mount AcidicJob::Web => "/acidic_job"
    end
  end
  DashboardApp.initialize!
  serve(DashboardApp, port)
when "rack"
  # outside Rails, no authorize hook: read-only, with a warning
  serve(Rack::Builder.new { map("/acidic_job") { run AcidicJob::Web.new(poll_seconds: 1) } }.to_app, port)
else
  abort "usage: ruby_app.rb seed|die|rails|rack DATABASE [PORT|KEY]"
end
