# frozen_string_literal: true

# Loaded by the `sidekiq` processes of test_sidekiq_process.rb (sidekiq -r this file):
# the same database as the test process, acidic_job, the workers.
ENV["AJ_TEST_KEEP_DB"] = "1"
require "logger"
require "sidekiq"
require "active_job"
require "acidic_job"
require_relative "database"

TestDatabase.connect!
AcidicJob.config.lock_timeout = Float(ENV.fetch("AJ_TEST_LOCK_TIMEOUT", "90"))
AcidicJob.config.logger = Logger.new($stdout)

class Ride < ActiveRecord::Base; end
class Audit < ActiveRecord::Base; end
class StripeError < StandardError; end

Sidekiq.configure_server do |config|
  config.redis = { url: ENV.fetch("AJ_TEST_SIDEKIQ_REDIS") }
  config.options[:average_scheduled_poll_interval] = 1
end
Sidekiq.configure_client do |config|
  config.redis = { url: ENV.fetch("AJ_TEST_SIDEKIQ_REDIS") }
end

require_relative "sidekiq_workers"
