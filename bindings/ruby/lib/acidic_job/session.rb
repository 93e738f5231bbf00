# frozen_string_literal: true

require "logger"

module AcidicJob
  # A store for the duration of one unit of work (a workflow run, an acknowledgement, a
  # drain) plus the transactions around its calls.
  #
  # ActiveRecordSession borrows the application's ActiveRecord connection: each
  # `atomically` block is an ActiveRecord transaction (a savepoint inside an outer one),
  # and the core is told afterwards whether it committed. OwnedSession uses the core's
  # own connection (AcidicJob.config.database_url), which runs its own transactions.
  module Sessions
    module_function

    def open
      session = AcidicJob.config.database_url ? OwnedSession.new : ActiveRecordSession.new
      begin
        yield session
      ensure
        session.close
      end
    end
  end

  # A session on the application's ActiveRecord connection.
  class ActiveRecordSession
    attr_reader :store, :connection

    @migrated = {}
    @migrated_lock = Mutex.new
    class << self
      attr_reader :migrated, :migrated_lock
    end

    def initialize(connection = AcidicJob::Key.connection)
      @connection = connection
      @dialect = dialect
      @store, @raw = borrow
      @store.enqueue = Outbox.method(:push_staged)
      migrate_once
    rescue Exception # rubocop:disable Lint/RescueException
      close
      raise
    end

    def owned?
      false
    end

    def sharing
      @store.driver == "host" ? :host : :native
    end

    # Run the block in a transaction on the application's connection; commit it with
    # everything the block and the core wrote; then settle the core.
    def atomically(write_lock: true)
      done = false
      value = nil
      begin
        @connection.transaction(requires_new: true) do
          check_connection!
          @connection.materialize_transactions
          take_sqlite_write_lock if write_lock
          value = yield @store
          done = true
        end
      rescue Exception # rubocop:disable Lint/RescueException
        begin
          settle(false)
        rescue StandardError
          nil # the original error matters more
        end
        raise
      end
      settle(done) # not done: the block raised ActiveRecord::Rollback
      @last_committed = done
      value
    end

    # Whether the last `atomically` committed (false after ActiveRecord::Rollback).
    def last_committed?
      @last_committed
    end

    def close
      @store&.close
      @store = nil
    end

    private

    def settle(committed)
      @store.settle(committed)
      report_enqueue_error
    end

    def report_enqueue_error
      err = @store.last_enqueue_error
      return unless err.is_a?(Exception)

      AcidicJob.config.logger.warn(
        "[acidic_job] pushing a staged job failed (#{err.class}: #{err.message}); " \
        "AcidicJob.drain delivers it later"
      )
    end

    # ActiveRecord 6.1 opens SQLite transactions DEFERRED: two of them that read and then
    # write deadlock, and SQLite fails one at once with "database is locked" instead of
    # waiting. Taking the write lock first (a write that matches no row) makes the step
    # wait its turn under the busy timeout, like BEGIN IMMEDIATE. Only for an outermost
    # transaction: inside the application's own, its snapshot may already be older.
    # The native store waits for the lock without the GVL. Not through ActiveRecord (the
    # host path): the sqlite3 gem holds the GVL while it waits, so a thread waiting there
    # would stop the thread holding the lock from ever committing.
    def take_sqlite_write_lock
      return unless @raw && @dialect == :sqlite && @connection.open_transactions == 1

      @store.exec(WRITE_LOCK_SQL)
    end

    WRITE_LOCK_SQL = "UPDATE acidic_job_keys SET id = id WHERE 0 = 1"

    def check_connection!
      return if @raw.nil? || @connection.raw_connection.equal?(@raw)

      raise Misuse, "the ActiveRecord connection was replaced during an acidic_job run"
    end

    def borrow
      sharing = AcidicJob.config.connection_sharing.to_sym
      raw = @connection.raw_connection
      opts = AcidicJob.config.store_options
      if sharing != :host
        if sqlite_handle?(raw)
          return [Native::Store.borrow_sqlite(raw, opts), raw]
        elsif pg_handle?(raw)
          return [Native::Store.borrow_pg(raw, opts), raw]
        elsif sharing == :native
          raise Misuse, "connection_sharing is :native but #{raw.class} does not link the " \
                        "same SQLite / libpq as acidic_job"
        end
      end
      [Native::Store.borrow_host(@dialect, HostConnection.new(@connection), opts), nil]
    end

    # The sqlite3 gem's handle is usable only when the gem links the system libsqlite3
    # that acidic_job links (sqlite3 >= 1.5 may bundle its own copy).
    def sqlite_handle?(raw)
      return false unless defined?(::SQLite3::Database) && raw.is_a?(::SQLite3::Database)
      return false if defined?(::SQLite3::SQLITE_PACKAGED_LIBRARIES) && ::SQLite3::SQLITE_PACKAGED_LIBRARIES
      return false unless ::SQLite3.respond_to?(:libversion)

      ::SQLite3.libversion == Native.sqlite_libversion_number
    end

    def pg_handle?(raw)
      return false unless defined?(::PG::Connection) && raw.is_a?(::PG::Connection)
      return false unless ::PG.respond_to?(:library_version)

      ::PG.library_version == Native.libpq_version
    end

    def dialect
      case @connection.adapter_name.downcase
      when /sqlite/ then :sqlite
      when /postg/ then :postgres
      else raise Misuse, "acidic_job supports SQLite and PostgreSQL, not #{@connection.adapter_name}"
      end
    end

    # The schema is created or upgraded once per process and database, by one thread at
    # a time (concurrent first migrations on one SQLite file would deadlock).
    def migrate_once
      return unless AcidicJob.config.auto_migrate

      id = [Process.pid, @connection.pool.db_config.configuration_hash.hash]
      self.class.migrated_lock.synchronize do
        next if self.class.migrated[id]

        # (no write lock first: the statement that takes it needs the tables)
        atomically(write_lock: false, &:migrate)
        self.class.migrated[id] = true
      end
    end
  end

  # The core's statements executed through ActiveRecord (exec_query with binds), for
  # drivers whose native handle cannot be shared.
  class HostConnection
    def initialize(connection)
      @connection = connection
    end

    def exec(sql, params)
      result = @connection.exec_query(sql, "AcidicJob", params, prepare: !params.empty?)
      result.rows.map { |row| row.map { |cell| cell_for_core(cell) } }
    end

    def in_transaction?
      @connection.transaction_open?
    end

    private

    def cell_for_core(cell)
      case cell
      when nil, Integer, String, true, false then cell
      when Time, DateTime then cell.utc.strftime("%Y-%m-%d %H:%M:%S.%6N")
      else cell.to_s
      end
    end
  end

  # A session on acidic_job's own connection: one store per thread and process (a store
  # opened before fork is never used by the child: the child opens its own).
  class OwnedSession
    def self.store
      key = :acidic_job_owned_store
      url = AcidicJob.config.database_url
      options = AcidicJob.config.store_options
      entry = Thread.current.thread_variable_get(key)
      if entry.nil? || entry[0] != Process.pid || entry[1] != [url, options] || entry[2].closed?
        # The parent's store is dropped without touching its connection: the core's
        # free only releases memory in a forked child.
        begin
          entry[2].close if entry && !entry[2].closed?
        rescue Misuse
          nil # a run of it is still open somewhere; the garbage collector frees it later
        end
        store = Native::Store.open(url, options)
        store.enqueue = Outbox.method(:push_staged)
        entry = [Process.pid, [url, options], store]
        Thread.current.thread_variable_set(key, entry)
      end
      entry[2]
    end

    def self.reset!
      entry = Thread.current.thread_variable_get(:acidic_job_owned_store)
      entry[2].close if entry && entry[0] == Process.pid && !entry[2].closed?
      Thread.current.thread_variable_set(:acidic_job_owned_store, nil)
    end

    attr_reader :store

    def initialize
      @store = self.class.store
    end

    def owned?
      true
    end

    def sharing
      :owned
    end

    # Owned stores commit their own transactions (and push staged jobs on commit).
    def atomically(write_lock: true) # rubocop:disable Lint/UnusedMethodArgument
      value = yield @store
      err = @store.last_enqueue_error
      if err.is_a?(Exception)
        AcidicJob.config.logger.warn(
          "[acidic_job] pushing a staged job failed (#{err.class}: #{err.message}); " \
          "AcidicJob.drain delivers it later"
        )
      end
      value
    end

    def last_committed?
      true
    end

    def close; end
  end
end
