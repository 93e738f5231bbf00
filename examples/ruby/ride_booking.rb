# frozen_string_literal: true

# The ride-booking job of acidic_job's README, as an ActiveJob job on an embedded SQLite
# file. Run it twice (examples/ruby/run.sh does):
#
#   ruby ride_booking.rb --db build/demo/ruby-rides.db --stripe-fails   # Stripe is down
#   ruby ride_booking.rb --db build/demo/ruby-rides.db                  # the retry
#
# The first run creates the ride, then the Stripe call fails: the job raises, the ride
# stays (its step committed), the charge step's writes roll back and the run records
# where to resume. The retry (the same job, as the queue would deliver it again) resumes
# at the charge step: no second ride.
require "optparse"
require "json"
require "logger"
require "active_job"
require "acidic_job"

options = { stripe_fails: false }
OptionParser.new do |o|
  o.on("--db PATH") { |v| options[:db] = v }
  o.on("--stripe-fails") { options[:stripe_fails] = true }
end.parse!
abort "usage: ride_booking.rb --db PATH [--stripe-fails]" unless options[:db]
RETRY_FILE = "#{options[:db]}.retry.json"
STRIPE_DOWN = options[:stripe_fails]

ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: options[:db])
ActiveRecord::Base.logger = nil
ActiveJob::Base.logger = Logger.new(nil)
ActiveJob::Base.queue_adapter = :inline
ActiveRecord::Schema.verbose = false
ActiveRecord::Schema.define do
  create_table(:users, if_not_exists: true) { |t| t.string :name }
  create_table(:rides, if_not_exists: true) do |t|
    t.references :user
    t.string :origin
    t.string :target
    t.string :stripe_charge_id
    t.timestamps
  end
  create_table(:audit_records, if_not_exists: true) do |t|
    t.string :action
    t.references :ride
    t.timestamps
  end
end
# acidic_job's own tables are created by the core on first use (or by the generator's
# migrations in a Rails application).

class User < ActiveRecord::Base; end
class Ride < ActiveRecord::Base; end
class AuditRecord < ActiveRecord::Base; end

# A stand-in for the Stripe API: a foreign state mutation that can fail.
module Stripe
  class APIConnectionError < StandardError; end

  def self.charge(amount:, ride:)
    raise APIConnectionError, "could not connect to api.stripe.com" if STRIPE_DOWN

    "ch_#{ride.id}_#{amount}"
  end
end

class SendReceiptJob < ActiveJob::Base
  def perform(ride_id)
    puts "    [SendReceiptJob] receipt for ride ##{ride_id} sent (enqueued after the step committed)"
  end
end

class RideCreateJob < ActiveJob::Base
  include AcidicJob

  def perform(user_id, ride_params)
    idempotently with: { user: User.find(user_id), params: ride_params, ride: nil } do
      step :create_ride_and_audit_record
      step :create_stripe_charge
      step :send_receipt
    end
  end

  private

  def create_ride_and_audit_record
    self.ride = Ride.create!(user_id: @user.id, origin: @params["origin"], target: @params["target"])
    AuditRecord.create!(action: "ride.created", ride_id: @ride.id)
    say "create_ride_and_audit_record: created ride ##{@ride.id} (#{@params['origin']} -> #{@params['target']})"
  end

  def create_stripe_charge
    AuditRecord.create!(action: "charge.attempted", ride_id: @ride.id)
    say "create_stripe_charge: charging ride ##{@ride.id}..."
    charge_id = Stripe.charge(amount: 20_00, ride: @ride)
    @ride.update!(stripe_charge_id: charge_id)
    say "create_stripe_charge: charged, #{charge_id}"
  end

  def send_receipt
    SendReceiptJob.perform_transactionally(@ride.id)
    say "send_receipt: receipt job staged in this step's transaction"
  end

  def say(text)
    puts "    [step] #{text}"
  end
end

def report
  key = AcidicJob::Key.last
  puts "  database now:"
  puts "    rides:          #{Ride.count} #{Ride.pluck(:id, :stripe_charge_id).inspect}"
  puts "    audit records:  #{AuditRecord.pluck(:action).inspect}"
  puts "    run (acidic_job_keys): recovery point #{key.recovery_point.inspect}, " \
       "locked: #{!key.locked_at.nil?}, error: #{key.error_object ? "#{key.error_object.class}: #{key.error_object.message}" : 'none'}"
  puts "    staged jobs waiting: #{AcidicJob::Staged.count}"
end

if File.exist?(RETRY_FILE)
  # The queue delivers the failed job again: same job_id, so the same idempotency key.
  job = ActiveJob::Base.deserialize(JSON.parse(File.read(RETRY_FILE)))
  puts "  retrying job #{job.job_id} (attempt 2)"
else
  user = User.create!(name: "Ada")
  job = RideCreateJob.new(user.id, { "origin" => "Kings Cross", "target" => "Heathrow" })
  puts "  performing job #{job.job_id}"
end

begin
  result = job.perform_now
  puts "  job returned #{result.inspect}"
  File.delete(RETRY_FILE) if File.exist?(RETRY_FILE)
rescue Stripe::APIConnectionError => e
  puts "  job raised #{e.class}: #{e.message}"
  File.write(RETRY_FILE, JSON.generate(job.serialize))
  puts "  (the queue would retry it later; saved for the next run)"
end
report
