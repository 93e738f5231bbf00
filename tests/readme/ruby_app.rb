# frozen_string_literal: true

# The application around the README's Ruby quick start (tests/readme/run.sh): the models,
# the Stripe client and the mailer it names, on a SQLite database. Loads the quick start as
# written, then performs its job the way a queue does, under one job_id (a redelivery
# has the same one). Run twice in two processes: the second must do nothing.
#
#   ruby ruby_app.rb QUICKSTART.rb DATABASE CALLS_LOG
#
# CALLS_LOG gets one line per call that leaves the process (Stripe, a delivered mail), so
# that calls can be counted across both runs. Exit status 0 when the job performed.
require "logger"
require "active_job"
require "action_mailer"
require "globalid"
require "acidic_job"

quickstart, database, calls_log = ARGV
ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: database)
ActiveRecord::Base.logger = nil
ActiveJob::Base.logger = Logger.new(nil)
ActiveJob::Base.queue_adapter = :inline
ActionMailer::Base.logger = nil
ActionMailer::Base.delivery_method = :test
ActionMailer::Base.delivery_job = ActionMailer::MailDeliveryJob
GlobalID.app = "readme"
ActiveRecord::Base.include GlobalID::Identification
ActiveRecord::Schema.verbose = false
ActiveRecord::Schema.define do
  create_table(:users, if_not_exists: true) { |t| t.string :stripe_id }
  create_table(:rides, if_not_exists: true) do |t|
    t.string :origin
    t.string :target
  end
end

CALLS = File.open(calls_log, "a")
CALLS.sync = true

class User < ActiveRecord::Base; end
class Ride < ActiveRecord::Base; end

module Stripe
  module Charge
    def self.create(amount:, customer:)
      CALLS.puts "Stripe::Charge.create #{amount} #{customer}"
    end
  end
end

class RideMailer < ActionMailer::Base
  def confirm_charge
    mail(to: "rider@example.com", from: "rides@example.com", subject: "Ride ##{params[:ride].id}",
         body: "charged")
  end
end

class DeliveriesLog
  def self.delivered_email(message)
    CALLS.puts "mail #{message.subject}"
  end
end
ActionMailer::Base.register_observer(DeliveriesLog)

before = ObjectSpace.each_object(Class).select { |c| c < ActiveJob::Base }
eval(File.read(quickstart), TOPLEVEL_BINDING, quickstart) # rubocop:disable Security/Eval
jobs = ObjectSpace.each_object(Class).select { |c| c < ActiveJob::Base && c.include?(AcidicJob) } - before
abort "the quick start defines #{jobs.size} AcidicJob classes, expected 1" unless jobs.size == 1

user = User.find_or_create_by!(id: 1) { |u| u.stripe_id = "cus_42" }
job = jobs.first.new(user.id, { "origin" => "Alexanderplatz", "target" => "BER Airport" })
job.job_id = "readme-ride-1"
job.perform_now
