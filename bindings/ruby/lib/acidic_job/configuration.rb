# frozen_string_literal: true

module AcidicJob
  # Settings, set with AcidicJob.configure { |c| ... }.
  class Configuration
    # nil (default): runs live on the application's ActiveRecord connection, so a step's
    # own writes commit together with the run's bookkeeping. A URL ("sqlite:db/acidic.db",
    # "postgres://...") gives acidic_job its own connection instead (applications without
    # ActiveRecord); steps then write through AcidicJob.exec.
    attr_accessor :database_url

    # How the application's connection is shared with the core:
    #   :auto    the native handle when the pg / sqlite3 gem links the same library as
    #            acidic_job, else through ActiveRecord's own API
    #   :native  the native handle, or an error
    #   :host    always through ActiveRecord's API (exec_query)
    attr_accessor :connection_sharing

    # A run locked more recently than this (seconds) is LockedIdempotencyKey (0.7.0: 90).
    attr_accessor :lock_timeout

    # SQLite busy timeout of owned stores (milliseconds), their synchronous mode
    # (:full, :normal, :off), and how often serialization failures are retried.
    attr_accessor :busy_timeout_ms, :synchronous, :conflict_retries

    # Create or upgrade the acidic_job tables on first use (once per process and
    # database). Applications that manage the schema with the generator's migrations
    # can turn it off.
    attr_accessor :auto_migrate

    # AcidicJob.drain delivers staged jobs that have waited longer than this (seconds).
    attr_accessor :drain_older_than

    # A step whose method does not exist is skipped with a warning (false, as 0.7.0
    # skipped it); true raises AcidicJob::MissingStepMethod before the run starts.
    attr_accessor :strict_steps

    attr_writer :logger

    def initialize
      @database_url = nil
      @connection_sharing = :auto
      @lock_timeout = 90
      @busy_timeout_ms = 5000
      @synchronous = :full
      @conflict_retries = 5
      @auto_migrate = true
      @drain_older_than = 300
      @logger = nil
      @strict_steps = false
    end

    def logger
      @logger || (defined?(::Rails) && ::Rails.respond_to?(:logger) && ::Rails.logger) ||
        (defined?(::ActiveRecord::Base) && ::ActiveRecord::Base.logger) || Logger.new($stderr)
    end

    # The aj_options of the core.
    def store_options
      {
        lock_timeout_ms: (lock_timeout.to_f * 1000).round,
        busy_timeout_ms: Integer(busy_timeout_ms),
        synchronous: { full: 0, normal: 1, off: 2 }.fetch(synchronous.to_sym) do
          raise InvalidArgument, "synchronous must be :full, :normal or :off"
        end,
        conflict_retries: Integer(conflict_retries)
      }
    end
  end
end
