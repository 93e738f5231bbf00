# frozen_string_literal: true

# A worker process of the operator tests: performs one AdminHoldJob (job_id AJ_ADMIN_KEY)
# on the test database (AJ_ADMIN_DB, a core URL) and prints how it ended.
require "logger"
require "active_job"
require "acidic_job"
require_relative "admin_hold_job"

ActiveJob::Base.queue_adapter = :test
ActiveJob::Base.logger = Logger.new(nil)
AcidicJob.config.logger = Logger.new(nil)
AcidicJob.config.lock_timeout = Float(ENV.fetch("AJ_ADMIN_LOCK_TIMEOUT"))
AcidicJob.config.database_url = ENV.fetch("AJ_ADMIN_DB")

job = AdminHoldJob.new(ENV.fetch("AJ_ADMIN_LABEL", "held"))
job.job_id = ENV.fetch("AJ_ADMIN_KEY")
begin
  job.perform_now
  puts "finished"
rescue StandardError => e
  puts "raised #{e.class}: #{e.message}"
end
