# frozen_string_literal: true

# Shared setup of the Ruby suite. The environment chooses what a run covers:
#   AJ_TEST_DB       sqlite (default) | postgres (needs AJ_TEST_PG_URL)
#   AJ_TEST_SHARING  auto (default) | host: how the core reaches ActiveRecord's connection
#   AJ_TEST_OWNED    1: acidic_job's own connection (database_url), no ActiveRecord
#                    connection sharing
#   AJ_TEST_PART     the name printed in the SUMMARY line
# Tables come from the generator's migrations (tests/ruby/support/schema.rb).
require "minitest"
require "minitest/autorun"
require "minitest/mock"
require "fileutils"
require "tmpdir"
require "logger"

require "active_job"
require "action_mailer"
require "sidekiq"
require "acidic_job"

require_relative "support/summary_plugin"
require_relative "support/database"

ActiveJob::Base.queue_adapter = :test
ActiveJob::Base.logger = Logger.new(nil)
ActionMailer::Base.delivery_method = :test
# What a Rails 6.1 application with load_defaults >= 6.0 uses.
ActionMailer::Base.delivery_job = ActionMailer::MailDeliveryJob
ActionMailer::Base.logger = Logger.new(nil)
AcidicJob.config.logger = Logger.new(nil)

# What the globalid railtie does in a Rails application.
GlobalID.app = "acidic-test"
ActiveRecord::Base.include GlobalID::Identification

TestDatabase.connect!
TestDatabase.migrate!

require_relative "support/models"
require_relative "support/jobs"

module AcidicTestHelpers
  def setup
    super
    TestDatabase.clean!
    ActiveJob::Base.queue_adapter.enqueued_jobs.clear
    ActiveJob::Base.queue_adapter.performed_jobs.clear
    ActionMailer::Base.deliveries.clear
    Trace.clear
  end

  def enqueued
    ActiveJob::Base.queue_adapter.enqueued_jobs
  end

  # Perform the jobs the test adapter has collected (and the ones they enqueue), in
  # order. Returns the job classes performed.
  def perform_enqueued!(limit: 100)
    done = []
    while (job = enqueued.shift)
      raise "runaway jobs" if (limit -= 1).negative?

      data = job.except(:job, :args, :queue, :at, :priority)
      ActiveJob::Base.execute(data)
      done << job[:job]
    end
    done
  end

  def key_for(job)
    AcidicJob::Key.find_by(idempotency_key: job.idempotency_key_value)
  end

  def owned?
    TestDatabase.owned?
  end

  def postgres?
    TestDatabase.postgres?
  end
end

class AcidicTest < Minitest::Test
  include AcidicTestHelpers
end

if ENV["AJ_TEST_REDIS_URL"]
  Sidekiq.configure_client { |c| c.redis = { url: ENV["AJ_TEST_REDIS_URL"] } }
  Sidekiq.logger.level = Logger::WARN
end
