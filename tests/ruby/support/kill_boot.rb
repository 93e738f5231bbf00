# frozen_string_literal: true

# Loaded by the Sidekiq processes of test_kill_sidekiq.rb (`sidekiq -r` this file): an
# application on a SQLite file whose tables came from acidic_job 0.7.0's generator, with
# workflow workers whose steps write application rows and stage a receipt.
require "logger"
$stdout.sync = true # a SIGKILLed process keeps its log
require "sidekiq"
require "acidic_job"

ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: ENV.fetch("AJ_KILL_DB"),
                                        timeout: 20_000, pool: 10)
ActiveRecord::Base.logger = nil
AcidicJob.config.lock_timeout = Float(ENV.fetch("AJ_KILL_LOCK_TIMEOUT"))
AcidicJob.config.logger = Logger.new($stdout)
# Workers recover stranded runs themselves too (a Sidekiq startup hook), often here.
AcidicJob.config.recover_interval = Float(ENV.fetch("AJ_KILL_LOCK_TIMEOUT"))

Sidekiq.configure_server do |config|
  config.redis = { url: ENV.fetch("AJ_KILL_REDIS") }
  config.options[:average_scheduled_poll_interval] = 1
end
Sidekiq.configure_client { |config| config.redis = { url: ENV.fetch("AJ_KILL_REDIS") } }

require_relative "kill_workers"
