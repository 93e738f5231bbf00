# frozen_string_literal: true

# The test helper of an application written for acidic_job 0.7.0, as such applications
# (and 0.7.0's own suite) write it: the schema defined here with `force: true`,
# DatabaseCleaner's deletion strategy between tests, no transactional tests, ActiveJob's
# test helpers, Sidekiq's testing modes. The environment picks the database:
#   COMPAT_DB=sqlite         config/database.yml (a default connection)
#   COMPAT_DB=sqlite-shared  0.7.0's own configuration: a hash with the shared-cache flags
#   COMPAT_DB=postgres       a URL (COMPAT_PG_URL)
# and COMPAT_SCHEMA=0.7.0-test recreates the tables in every test's setup, in the shape of
# 0.7.0's own test schema (staged_acidic_jobs without timestamps, last_run_at nullable).
require "minitest/autorun"
require "minitest/mock"
require "logger"
require "stringio"
require "erb"
require "yaml"

require "active_record"
require "active_record/fixtures"
require "active_job"
require "action_mailer"
require "sidekiq"
require "sidekiq/testing"
require "database_cleaner"
require "acidic_job"

ActiveJob::Base.queue_adapter = :test
ActiveJob::Base.logger = Logger.new(nil)
ActionMailer::Base.delivery_method = :test
ActionMailer::Base.delivery_job = ActionMailer::MailDeliveryJob
ActionMailer::Base.logger = Logger.new(nil)
Sidekiq.logger.level = Logger::WARN
GlobalID.app = "compat-app"
ActiveRecord::Base.include GlobalID::Identification

COMPAT_DB = ENV.fetch("COMPAT_DB", "sqlite")

case COMPAT_DB
when "sqlite"
  yml = ERB.new(File.read(File.expand_path("config/database.yml", __dir__))).result
  configurations = ActiveRecord::DatabaseConfigurations.new(YAML.safe_load(yml))
  ActiveRecord::Base.configurations = configurations
  ActiveRecord::Base.establish_connection(:test)
when "sqlite-shared"
  require "sqlite3"
  ActiveRecord::Base.establish_connection(
    adapter: "sqlite3",
    database: ENV.fetch("COMPAT_SQLITE_PATH"),
    flags: SQLite3::Constants::Open::READWRITE |
           SQLite3::Constants::Open::CREATE |
           SQLite3::Constants::Open::SHAREDCACHE
  )
when "postgres"
  require "pg"
  ActiveRecord::Base.establish_connection(ENV.fetch("COMPAT_PG_URL"))
else
  abort "COMPAT_DB must be sqlite, sqlite-shared or postgres"
end
ActiveRecord::Base.logger = nil
ActiveRecord::Migration.verbose = false

# The tables, as 0.7.0's generator writes them, plus the application's own.
def define_schema(staged_timestamps: true, last_run_at_null: false)
  ActiveRecord::Schema.define do
    create_table :acidic_job_keys, force: true do |t|
      t.string :idempotency_key, null: false
      t.string :job_name, null: false
      t.text :job_args, null: true
      if last_run_at_null
        t.datetime :last_run_at, null: true
      else
        t.datetime :last_run_at, null: false, default: -> { "CURRENT_TIMESTAMP" }
      end
      t.datetime :locked_at, null: true
      t.string :recovery_point, null: false
      t.text :error_object
      t.text :attr_accessors
      t.text :workflow
      t.timestamps

      t.index %i[idempotency_key job_name job_args],
              unique: true,
              name: "idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"
    end

    create_table :staged_acidic_jobs, force: true do |t|
      t.string :adapter, null: false
      t.string :job_name, null: false
      t.text :job_args, null: true
      t.timestamps if staged_timestamps
    end

    create_table :users, force: true do |t|
      t.string :email
      t.string :stripe_customer_id
      t.timestamps
    end

    create_table :rides, force: true do |t|
      t.references :user
      t.string :origin
      t.string :target
      t.string :stripe_charge_id
      t.timestamps
    end

    create_table :audits, force: true do |t|
      t.references :auditable, polymorphic: true
      t.string :verb
      t.timestamps
    end
  end
  ActiveRecord::Base.descendants.each(&:reset_column_information)
end

# 0.7.0's own test suite: recreated before every test, staged jobs without timestamps.
SCHEMA_IN_EVERY_SETUP = ENV["COMPAT_SCHEMA"] == "0.7.0-test"

define_schema

DatabaseCleaner.strategy = :deletion
DatabaseCleaner.clean_with(:deletion)

require_relative "support/app"

module ActiveSupport
  class TestCase
    include ActiveRecord::TestFixtures
    include ActiveJob::TestHelper

    self.use_transactional_tests = false

    setup do
      if SCHEMA_IN_EVERY_SETUP
        define_schema(staged_timestamps: false, last_run_at_null: true)
      end
      DatabaseCleaner.start
      Sidekiq::Testing.fake!
      Sidekiq::Worker.clear_all
      ActionMailer::Base.deliveries.clear
      Stripe.reset!
      @log = StringIO.new
      AcidicJob.config.logger = Logger.new(@log)
    end

    teardown do
      DatabaseCleaner.clean
    end

    def sqlite?
      COMPAT_DB.start_with?("sqlite")
    end

    def postgres?
      COMPAT_DB == "postgres"
    end
  end
end
