# frozen_string_literal: true

# Makes the database of README.md's "Ruby and Rails" operator examples with real
# workflows (a declined card, a fan-out awaiting its jobs, a worker SIGKILLed in the middle
# of a step, a row as acidic_job 0.7.0 left it) and prints what the installed acidic-job
# and the Ruby API show of it:
#
#   GEM_HOME=build/ruby/gems ruby tests/ruby/readme_cli.rb DIR
#
# (tests/ruby/run.sh installs the gem there). DIR/shop.db is left for trying the commands.
require "fileutils"
require "logger"
require "open3"
require "active_job"
require "acidic_job"

dir = File.expand_path(ARGV.fetch(0) { abort "usage: ruby tests/ruby/readme_cli.rb DIR" })
FileUtils.mkdir_p(dir)
db = File.join(dir, "shop.db")
Dir["#{db}*"].each { |f| File.delete(f) }

ActiveJob::Base.queue_adapter = :test
ActiveJob::Base.logger = Logger.new(nil)
AcidicJob.config.logger = Logger.new(nil)
AcidicJob.config.lock_timeout = 2
ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: db)
ActiveRecord::Base.logger = nil
require "rails/generators"
require "generators/acidic_job_generator"
$stdout = File.open(File::NULL, "w")
AcidicJobGenerator.start([], destination_root: File.join(dir, "app"))
$stdout = STDOUT
ActiveRecord::Migration.verbose = false
ActiveRecord::MigrationContext.new(File.join(dir, "app", "db", "migrate"), ActiveRecord::SchemaMigration).migrate
ActiveRecord::Base.connection.create_table(:rides) { |t| t.string :rider; t.string :charge_id; t.timestamps }
ActiveRecord::Base.connection.create_table(:audits) { |t| t.string :event; t.timestamps }

class Ride < ActiveRecord::Base; end

module Stripe
  class CardError < StandardError; end
end

class RideCreateJob < ActiveJob::Base
  include AcidicJob

  def perform(rider)
    idempotently with: { rider: rider, ride_id: nil } do
      step :create_ride
      step :charge
      step :send_receipt
    end
  end

  def create_ride
    self.ride_id = Ride.create!(rider: @rider).id
  end

  def charge
    raise Stripe::CardError, "Your card was declined." if @rider.start_with?("declined")

    Ride.find(@ride_id).update!(charge_id: "ch_#{@ride_id}")
  end

  def send_receipt; end
end

class ReceiptJob < ActiveJob::Base
  def perform(*); end
end

class FanOutJob < ActiveJob::Base
  include AcidicJob

  def perform(batch)
    idempotently with: { batch: batch } do
      step :notify_drivers, awaits: [ReceiptJob]
      step :close
    end
  end

  def notify_drivers; end
  def close; end
end

def job_with_id(klass, id, *args)
  klass.new(*args).tap { |j| j.job_id = id }
end

job_with_id(RideCreateJob, "ride-1", "ada").perform_now
job_with_id(RideCreateJob, "ride-2", "grace").perform_now
begin
  job_with_id(RideCreateJob, "ride-3", "declined-linus").perform_now
rescue Stripe::CardError
  nil
end
job_with_id(FanOutJob, "fan-out-4", "north").perform_now

# a worker (tests/ruby/support/admin_worker.rb) SIGKILLed inside its second step
ready = File.join(dir, "ready")
File.delete(ready) if File.exist?(ready)
worker = File.expand_path("support/admin_worker.rb", __dir__)
pid = Process.spawn({ "AJ_ADMIN_DB" => "sqlite:#{db}", "AJ_ADMIN_KEY" => "hold-5", "AJ_ADMIN_READY" => ready,
                      "AJ_ADMIN_LOCK_TIMEOUT" => "2" }, RbConfig.ruby, worker, out: File::NULL, err: File::NULL)
sleep 0.05 until File.exist?(ready)
Process.kill("KILL", pid)
Process.wait(pid)

# a row as acidic_job 0.7.0 left it: its error's class is not loaded in the console
ActiveRecord::Base.connection.exec_insert(<<~SQL, "seed", [])
  INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, recovery_point,
    error_object, attr_accessors, workflow, created_at, updated_at)
  VALUES ('ride-request-0.7.0', 'LegacyRideJob', '---\n- 42\n', '2026-11-30 08:15:00', 'charge_card',
    '--- !ruby/exception:Billing::GatewayError\nmessage: gateway timeout after 30s\nbacktrace:\n- app/jobs/legacy_ride_job.rb:18:in `charge_card''\n',
    '--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess\nride_id: 42\n',
    '---\nbook_ride:\n  does: book_ride\n  awaits: []\n  then: charge_card\ncharge_card:\n  does: charge_card\n  awaits: []\n  then: FINISHED\n',
    '2026-11-30 08:10:00', '2026-11-30 08:15:00')
SQL
sleep 2.2 # the killed worker's lock expires: its run is stranded

# the Ruby API, in a console that defines neither Stripe:: nor Billing::
Object.send(:remove_const, :Stripe)
console = {
  "AcidicJob::Key.failed.pluck(:idempotency_key)" => -> { AcidicJob::Key.failed.pluck(:idempotency_key) },
  "AcidicJob::Key.stranded.or(AcidicJob::Key.awaiting).count" => -> { AcidicJob::Key.stranded.or(AcidicJob::Key.awaiting).count },
  "key = AcidicJob::Key.failed.find_by(idempotency_key: \"ride-3\")" => -> { AcidicJob::Key.failed.find_by(idempotency_key: "ride-3") },
  "key.error_summary.summary" => -> { AcidicJob::Key.find_by(idempotency_key: "ride-3").error_summary.summary },
  "key.error_summary.backtrace.first" => -> { AcidicJob::Key.find_by(idempotency_key: "ride-3").error_summary.backtrace.first },
  "key.error_object" => lambda do
    AcidicJob::Key.find_by(idempotency_key: "ride-3").error_object
  rescue StandardError => e
    "#{e.class}: #{e.message} (what a console without the class meets)"
  end,
  "AcidicJob::Admin.stats.count_of(:failed)" => -> { AcidicJob::Admin.stats.count_of(:failed) }
}
console.each do |code, value|
  puts ">> #{code}"
  puts "=> #{value.call.inspect}"
end
puts

exe = File.join(File.expand_path(ENV.fetch("GEM_HOME")), "bin", "acidic-job")
env = { "ACIDIC_JOB_DATABASE_URL" => db, "ACIDIC_JOB_LOCK_TIMEOUT" => "2" }
Dir.chdir(dir) do
  [%w[list], %w[show ride-3], %w[show ride-request-0.7.0], %w[stats], %w[retry ride-2], %w[retry ride-3],
   %w[reset ride-1 --to-step charge], %w[unlock hold-5], %w[retry hold-5], %w[list --state failed --json],
   %w[prune --finished-before 7d], %w[show no-such-run]].each do |args|
    out, err, status = Open3.capture3(env, exe, *args)
    puts "$ acidic-job #{args.join(' ')}"
    print out, err
    puts "(exit #{status.exitstatus})"
    puts
  end
end

