# frozen_string_literal: true

# Setup of the Ruby reliability suite: the installed gem, ActiveJob (test adapter) on
# ActiveRecord, on a fresh SQLite file or a fresh PostgreSQL database.
#   AJ_REL_DB  sqlite (default) | postgres (AJ_TEST_PG_URL)
# Prints "SUMMARY reliability ruby-<db> <passed> <failed>".
require "minitest"
require "minitest/autorun"
require "fileutils"
require "tmpdir"
require "logger"
require "open3"
require "securerandom"
require "active_job"
require "sqlite3"
require "acidic_job"

module RelDb
  module_function

  def kind
    ENV.fetch("AJ_REL_DB", "sqlite")
  end

  def postgres?
    kind == "postgres"
  end

  def dir
    @dir ||= Dir.mktmpdir("aj-rel-ruby").tap do |made|
      Minitest.after_run { FileUtils.remove_entry(made, true) }
    end
  end

  def pg_url
    @pg_url ||= begin
      require "pg"
      base = ENV.fetch("AJ_TEST_PG_URL") { abort "AJ_TEST_PG_URL is not set" }
      name = "acidic_rel_ruby_#{Process.pid}"
      admin = PG.connect(base)
      admin.exec("CREATE DATABASE #{admin.quote_ident(name)}")
      admin.close
      Minitest.after_run do
        ActiveRecord::Base.connection_pool.disconnect!
        AcidicJob::Stores.reset_owned!
        admin = PG.connect(base)
        admin.exec("DROP DATABASE IF EXISTS #{admin.quote_ident(name)} WITH (FORCE)")
        admin.close
      end
      base.sub(%r{/[^/?]*(\?|\z)}) { "/#{name}#{Regexp.last_match(1)}" }
    end
  end

  def sqlite_path
    File.join(dir, "rel.db")
  end

  def core_url
    postgres? ? pg_url : "sqlite:#{sqlite_path}"
  end

  def connect!
    config = postgres? ? { url: pg_url, pool: 5 } : { adapter: "sqlite3", database: sqlite_path, timeout: 10_000 }
    ActiveRecord::Base.establish_connection(config)
    ActiveRecord::Base.logger = nil
    c = ActiveRecord::Base.connection
    c.create_table(:app_log, force: true) { |t| t.string :tag }
  end

  def sql(text, *binds)
    ActiveRecord::Base.connection.exec_query(
      ActiveRecord::Base.sanitize_sql_array([text, *binds])
    ).rows
  end

  # Now, as the core writes locked_at (UTC, microseconds).
  def now_text
    Time.now.utc.strftime("%Y-%m-%d %H:%M:%S.%6N")
  end
end

ActiveJob::Base.queue_adapter = :test
ActiveJob::Base.logger = Logger.new(nil)
AcidicJob.config.logger = Logger.new(nil)
GlobalID.app = "acidic-rel"
ActiveRecord::Base.include GlobalID::Identification
RelDb.connect!

class AppLog < ActiveRecord::Base
  self.table_name = "app_log"
end

module Minitest
  class RelSummaryReporter < StatisticsReporter
    def record(result)
      super
      # the bad inputs tried, for the figures of a run
      @bad_inputs = (@bad_inputs || 0) + 1 if result.klass == "BadInputTest" && result.passed?
    end

    def report
      super
      io.puts "BAD-INPUTS ruby-#{RelDb.kind} #{@bad_inputs}" if @bad_inputs
      io.puts "SUMMARY reliability ruby-#{RelDb.kind} #{count - failures - errors - skips} #{failures + errors}"
    end
  end

  def self.plugin_rel_summary_init(options)
    reporter << RelSummaryReporter.new(options[:io], options)
  end
end
Minitest.extensions << "rel_summary"

class RelTest < Minitest::Test
  def setup
    AcidicJob.config.database_url = nil
    AcidicJob.config.lock_timeout = 90
    AcidicJob::Stores.reset_owned!
    %w[app_log staged_acidic_jobs acidic_job_keys acidic_job_batches].each do |t|
      ActiveRecord::Base.connection.execute("DELETE FROM #{t}") if ActiveRecord::Base.connection.table_exists?(t)
    end
    ActiveJob::Base.queue_adapter.enqueued_jobs.clear
  end

  def enqueued
    ActiveJob::Base.queue_adapter.enqueued_jobs
  end

  def key_row(key)
    RelDb.sql("SELECT locked_at, recovery_point, error_object FROM acidic_job_keys WHERE idempotency_key = ?", key).first
  end

  # Run Ruby code in a child (a crash there is a failed assertion here).
  def ruby_child(code)
    Open3.capture3(RbConfig.ruby, "-e", code)
  end
end
