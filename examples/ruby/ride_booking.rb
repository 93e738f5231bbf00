# frozen_string_literal: true

# The ride-booking job of acidic_job's README, as an ActiveJob job on an embedded SQLite
# file; examples/c and examples/python tell the same story with the same data, line for
# line. Run it twice (examples/ruby/run.sh does):
#
#   ruby ride_booking.rb --db build/demo/ruby-rides.db --stripe-fails   # Stripe is down
#   ruby ride_booking.rb --db build/demo/ruby-rides.db                  # the retry
#
# The first run creates the ride, then the Stripe call fails: the job raises, the ride
# stays (its step committed), the charge step's writes roll back and the run records
# where to resume. The second run is the queue delivering the job again (same job_id, so
# the same idempotency key): it resumes at the charge step and creates no second ride.
require "optparse"
require "logger"
require "active_job"
require "action_mailer"
require "globalid"
require "acidic_job"

options = { stripe_fails: false }
OptionParser.new do |o|
  o.on("--db PATH") { |v| options[:db] = v }
  o.on("--stripe-fails") { options[:stripe_fails] = true }
end.parse!
abort "usage: ride_booking.rb --db PATH [--stripe-fails]" unless options[:db]
STRIPE_DOWN = options[:stripe_fails]
KEY = "ride-request-42"

ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: options[:db])
ActiveRecord::Base.logger = nil
ActiveJob::Base.logger = Logger.new(nil)
ActiveJob::Base.queue_adapter = :inline # the queue performs a job as soon as it gets it
ActionMailer::Base.logger = nil
AcidicJob.configure { |c| c.logger = Logger.new(nil) } # this demo tells its own story
ActionMailer::Base.delivery_method = :test
ActionMailer::Base.delivery_job = ActionMailer::MailDeliveryJob # Rails' default since 6.0
ActiveRecord::Schema.verbose = false
ActiveRecord::Schema.define do
  create_table(:users, if_not_exists: true) { |t| t.string :name }
  create_table(:rides, if_not_exists: true) do |t|
    t.references :user
    t.string :origin
    t.string :target
    t.string :stripe_charge_id
  end
  create_table(:audit_records, if_not_exists: true) do |t|
    t.string :action
    t.references :ride
  end
end
# acidic_job's own tables are created by the core on first use (or by the generator's
# migrations in a Rails application).

# What Rails does at boot: records travel to jobs (the mailer's ride) as GlobalIDs.
GlobalID.app = "ride-booking"
ActiveRecord::Base.include GlobalID::Identification

class User < ActiveRecord::Base; end
class Ride < ActiveRecord::Base; end
class AuditRecord < ActiveRecord::Base; end
User.find_or_create_by!(id: 42) { |u| u.name = "Ada" }

# A stand-in for the Stripe API: a foreign state mutation that can fail.
module Stripe
  class APIConnectionError < StandardError; end

  def self.charge(amount:, ride:)
    if STRIPE_DOWN
      puts "        Stripe: could not connect to api.stripe.com"
      raise APIConnectionError, "could not connect to api.stripe.com"
    end
    "ch_#{ride.id}_#{amount}".tap { |id| puts "        Stripe: charged, #{id}" }
  end
end

class RideMailer < ActionMailer::Base
  default from: "rides@example.com"

  def confirm_charge
    ride = params[:ride]
    puts "        queue: RideMailer.confirm_charge for ride ##{ride.id} performed, receipt sent"
    mail(to: "ada@example.com", subject: "Your ride ##{ride.id}", body: "Charged: #{ride.stripe_charge_id}")
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
    puts %(  [1/3] create_ride_and_audit_record: ride ##{@ride.id} created, audit record "ride.created")
  end

  def create_stripe_charge
    AuditRecord.create!(action: "charge.attempted", ride_id: @ride.id)
    puts %(  [2/3] create_stripe_charge: audit record "charge.attempted", charging 20.00 EUR)
    @ride.update!(stripe_charge_id: Stripe.charge(amount: 20_00, ride: @ride))
  end

  def send_receipt
    RideMailer.with(ride: @ride).confirm_charge.deliver_transactionally
    puts "  [3/3] send_receipt: RideMailer.confirm_charge staged, handed to the queue after this step commits"
  end
end

def run_record
  AcidicJob::Key.find_by(idempotency_key: KEY) if ActiveRecord::Base.connection.table_exists?(:acidic_job_keys)
end

def report
  ride = Ride.first
  run = run_record
  error = run.error_object ? %("#{run.error_object.message}" (#{run.error_object.class.name.split('::').last})) : "none"
  puts "  database now:"
  puts "    rides:          ##{ride.id} #{ride.origin} -> #{ride.target}, charge #{ride.stripe_charge_id || 'none'}"
  puts "    audit records:  #{AuditRecord.order(:id).pluck(:action).join(', ')}"
  puts "    run:            recovery point #{run.recovery_point}, #{run.locked_at ? 'locked' : 'unlocked'}, error #{error}"
  puts "    staged jobs:    #{AcidicJob::Staged.count}"
end

user = User.find(42)
puts "Booking a ride for #{user.name} (user #{user.id}): Alexanderplatz -> BER Airport, 20.00 EUR"
point = run_record&.recovery_point
puts point ? %(  run "#{KEY}": resumes at #{point}) : %(  run "#{KEY}": new)

job = RideCreateJob.new(user.id, { "origin" => "Alexanderplatz", "target" => "BER Airport" })
job.job_id = KEY # a queue delivers a retry with the same job_id: the run's idempotency key
as_told =
  begin
    job.perform_now
    puts "  the run succeeded"
    !STRIPE_DOWN
  rescue Stripe::APIConnectionError
    puts "  failed at #{run_record.recovery_point}: the step rolled back, the run recorded the error and was unlocked"
    STRIPE_DOWN
  end
report

if as_told && !STRIPE_DOWN
  as_told = Ride.count == 1 && Ride.where.not(stripe_charge_id: nil).count == 1
  puts "OK: one ride, charged once; the retry resumed at create_stripe_charge." if as_told
end
abort "UNEXPECTED: the run did not go as the story says" unless as_told
