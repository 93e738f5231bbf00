# frozen_string_literal: true

module AcidicJob
  # Settings, set with AcidicJob.configure { |c| ... }. Settings of the core (lock_timeout,
  # busy_timeout_ms, synchronous, conflict_retries, max_attempts, retry_base) are nil until
  # set: the core applies its own default and validates what is set (bad values raise
  # AcidicJob::InvalidArgument naming the option, at the first job).
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

    # Seconds. A run locked more recently than this is LockedIdempotencyKey; an older lock
    # marks its worker as dead, and recovery hands the run back to its queue (core: 90).
    attr_accessor :lock_timeout

    # Owned SQLite stores: busy timeout (milliseconds) and synchronous mode (:full,
    # :normal, :off). Serialization failures and busy databases retried (core: 5).
    attr_accessor :busy_timeout_ms, :synchronous, :conflict_retries

    # Attempts of a run before it is dead: recovery stops handing it out and a job for it
    # returns false without running a step (0: unlimited; core: 25).
    attr_accessor :max_attempts

    # Seconds recovery waits before retrying a failed run, doubling with each attempt up
    # to an hour (core: 15).
    attr_accessor :retry_base

    # false (default, as acidic_job 0.7.0): an idempotency key is looked up alone, so a key
    # recorded by another job class resumes that run. true: such a key raises
    # MismatchedIdempotencyKeyAndJobArguments naming both jobs. The default stays false
    # because 0.7.0 applications (and their tests, which stub Key.find_by with records of
    # any job_name) rely on the lookup by key alone.
    attr_accessor :match_job_name

    # Seconds between recovery sweeps in worker processes (AcidicJob.recover): Sidekiq
    # servers sweep from a thread started at startup, other ActiveJob backends after a
    # job once the interval has passed. nil or 0 turns automatic recovery off.
    attr_accessor :recover_interval

    # Ignored since 0.9: the core detects the tables on first use and heals them
    # (docs/decisions/010-tables-as-found.md). Kept so that settings written for 0.8 load.
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
      @lock_timeout = @busy_timeout_ms = @synchronous = @conflict_retries = nil
      @max_attempts = @retry_base = nil
      @match_job_name = false
      @recover_interval = 60
      @auto_migrate = true
      @drain_older_than = 300
      @logger = nil
      @strict_steps = false
    end

    def logger
      @logger || (defined?(::Rails) && ::Rails.respond_to?(:logger) && ::Rails.logger) ||
        (defined?(::ActiveRecord::Base) && ::ActiveRecord::Base.logger) || (@default_logger ||= Logger.new($stderr, level: Logger::INFO))
    end

    SYNCHRONOUS = { full: 0, normal: 1, off: 2 }.freeze

    # The aj_options of the core: only what is set; seconds become milliseconds.
    def store_options
      options = {
        lock_timeout_ms: Inputs.milliseconds(lock_timeout, "lock_timeout"),
        busy_timeout_ms: integer(busy_timeout_ms, :busy_timeout_ms),
        synchronous: synchronous && SYNCHRONOUS.fetch(synchronous.to_sym) do
          raise InvalidArgument, "synchronous must be :full, :normal or :off, not #{synchronous.inspect}"
        end,
        conflict_retries: integer(conflict_retries, :conflict_retries),
        max_attempts: integer(max_attempts, :max_attempts),
        retry_base_ms: Inputs.milliseconds(retry_base, "retry_base"),
        match_job_name: match_job_name ? 1 : 0
      }
      options.compact
    end

    private

    def integer(value, name)
      return nil if value.nil?

      Integer(value)
    rescue ArgumentError, TypeError
      raise InvalidArgument, "#{name} must be an integer, not #{value.inspect}"
    end
  end
end
