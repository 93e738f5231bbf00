# frozen_string_literal: true

require "logger"

module AcidicJob
  # The core's store for the current unit of work. With ActiveRecord (the default), one
  # borrowed store per ActiveRecord connection, kept on the connection: the core drives
  # its transactions through a TransactionHost, so a step's own writes commit with the
  # run's progress. With `config.database_url`, acidic_job's own connection: one store per
  # thread and process.
  module Stores
    module_function

    def current
      connection = shared_connection
      connection ? for_connection(connection) : owned
    end

    # The ActiveRecord connection the core borrows (nil with `config.database_url`).
    def shared_connection
      AcidicJob.config.database_url ? nil : AcidicJob::Key.connection
    end

    # :native (the core uses the driver's handle), :host (through ActiveRecord's API) or
    # :owned (acidic_job's own connection).
    def sharing(store)
      return :owned unless store.borrowed?

      store.driver == "host" ? :host : :native
    end

    # The borrowed store of an ActiveRecord connection: made once, again only when the
    # connection was reconnected, the settings changed or the process forked.
    def for_connection(connection)
      entry = connection.instance_variable_get(:@acidic_job_store)
      raw = TransactionHost.raw_of(connection)
      settings = [AcidicJob.config.store_options, AcidicJob.config.connection_sharing]
      return entry[3] if entry && entry[0].equal?(raw) && entry[1] == settings && entry[2] == Process.pid

      store = borrow(connection, settings[0], settings[1].to_sym)
      connection.instance_variable_set(:@acidic_job_store, [TransactionHost.raw_of(connection), settings, Process.pid, store])
      store
    end

    def borrow(connection, options, sharing)
      raw = connection.raw_connection
      if sharing != :host
        if sqlite_handle?(raw)
          return attach(Native::Store.borrow_sqlite(raw, TransactionHost.new(connection, raw), options))
        elsif pg_handle?(raw)
          return attach(Native::Store.borrow_pg(raw, TransactionHost.new(connection, raw), options))
        elsif sharing == :native
          raise Misuse, "connection_sharing is :native but #{raw.class} does not link the " \
                        "same SQLite / libpq as acidic_job"
        end
      end
      attach(Native::Store.borrow_host(dialect(connection), TransactionHost.new(connection, nil), options))
    end

    # acidic_job's own connection (database_url): one store per thread and process (a
    # store opened before fork is never used by the child, which opens its own).
    def owned
      url = AcidicJob.config.database_url
      settings = [url, AcidicJob.config.store_options]
      entry = Thread.current.thread_variable_get(:acidic_job_owned_store)
      return entry[2] if entry && entry[0] == Process.pid && entry[1] == settings && !entry[2].closed?

      # The parent's store is dropped without touching its connection: the core's free
      # only releases memory in a forked child.
      begin
        entry[2].close if entry && !entry[2].closed?
      rescue Misuse
        nil # a run of it is still open somewhere; the garbage collector frees it later
      end
      store = attach(Native::Store.open(Inputs.text(url, "database_url"), settings[1]))
      Thread.current.thread_variable_set(:acidic_job_owned_store, [Process.pid, settings, store])
      store
    end

    def reset_owned!
      entry = Thread.current.thread_variable_get(:acidic_job_owned_store)
      entry[2].close if entry && entry[0] == Process.pid && !entry[2].closed?
      Thread.current.thread_variable_set(:acidic_job_owned_store, nil)
    end

    # The binding's callbacks: pushing staged jobs, error documents, events.
    def attach(store)
      store.enqueue = Outbox.method(:push_staged)
      store.error_encoder = Documents.method(:core_error)
      Events.attach(store)
      store
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

    def dialect(connection)
      case connection.adapter_name.downcase
      when /sqlite/ then :sqlite
      when /postg/ then :postgres
      else raise Misuse, "acidic_job supports SQLite and PostgreSQL, not #{connection.adapter_name}"
      end
    end
  end

  # Prepended to an ActiveRecord PostgreSQL adapter whose libpq handle the core borrows.
  # While the core runs a top-level transaction on it (TransactionHost#atomically), the
  # core sends BEGIN in the round trip of its first statement and COMMIT in that of its
  # last, and the adapter reads what happened from libpq instead of sending its own: it
  # sends no BEGIN (the core's is coming or out), and no COMMIT or ROLLBACK once the core
  # has ended the transaction. A 3-step run then costs the round trips of three plain
  # ActiveRecord transactions. Outside the core's transactions it changes nothing.
  #
  # ActiveRecord runs its records' before-commit work (before_commit callbacks, the
  # touches of `belongs_to touch: true`) after the transaction's block, before its COMMIT:
  # here the core's COMMIT has gone by then. So each step runs that work at its end,
  # inside its transaction (before_commit, called by the Runner), and ActiveRecord does not
  # run it again.
  module LibpqTransactions
    def self.install(connection)
      connection.class.prepend(self) unless connection.class <= self
      klass = ::ActiveRecord::ConnectionAdapters::Transaction
      klass.prepend(BeforeCommitOnce) unless klass <= BeforeCommitOnce
      true
    end

    # The before-commit work of the records of the core's transaction on `connection`, now.
    def self.before_commit(connection)
      return unless connection.instance_variable_get(:@acidic_job_core_transaction)

      transaction = connection.current_transaction
      transaction.before_commit_records
      transaction.instance_variable_set(:@acidic_job_before_commit_ran, true)
    end

    module BeforeCommitOnce
      def before_commit_records
        super unless @acidic_job_before_commit_ran
      end
    end

    # ActiveRecord begins when its transaction opens (lazy transactions off: raw_connection
    # turns them off) or before its first statement: the core's BEGIN is still to come in
    # the one case, out already in the other.
    def begin_db_transaction
      return if @acidic_job_core_transaction &&
                [::PG::PQTRANS_IDLE, ::PG::PQTRANS_INTRANS].include?(acidic_job_libpq_status)

      super
    end

    def commit_db_transaction
      return if @acidic_job_core_transaction && acidic_job_libpq_status == ::PG::PQTRANS_IDLE

      super
    end

    def exec_rollback_db_transaction
      return if @acidic_job_core_transaction && acidic_job_libpq_status == ::PG::PQTRANS_IDLE

      super
    end

    private

    def acidic_job_libpq_status
      TransactionHost.raw_of(self).transaction_status
    end
  end

  # Runs the core's transactions on an ActiveRecord connection (the aj_host_tx hook, see
  # ext/acidic_job/rb_aj_host.c), and for host stores its statements too.
  class TransactionHost
    CONFLICT = Native::CODES.fetch(:AJ_ECONFLICT)
    DATABASE = Native::CODES.fetch(:AJ_EDATABASE)

    # The driver connection of an ActiveRecord adapter, without raw_connection's side
    # effect (it turns lazy transactions off).
    def self.raw_of(connection)
      if connection.instance_variable_defined?(:@raw_connection)
        connection.instance_variable_get(:@raw_connection)
      else
        connection.instance_variable_get(:@connection)
      end
    end

    def initialize(connection, raw)
      @connection = connection
      @raw = raw
      @libpq = defined?(::PG::Connection) && raw.is_a?(::PG::Connection) ? LibpqTransactions.install(connection) : false
    end

    # The core may send BEGIN with its first statements and COMMIT with its last, in their
    # round trips (aj_host_tx's begin_in_body and commit_in_body): a PostgreSQL connection
    # whose adapter then defers to libpq's transaction state (LibpqTransactions).
    def libpq_state?
      @libpq
    end

    # One transaction of the core: a savepoint when the application has one open. The
    # block is the core's body; it returns false when the body failed, which rolls back.
    # On a PostgreSQL connection with no transaction open, the core begins and commits it
    # itself, and ActiveRecord's transaction sends neither (LibpqTransactions).
    def atomically
      committed = false
      core_ends = @libpq && !@connection.transaction_open?
      @connection.instance_variable_set(:@acidic_job_core_transaction, true) if core_ends
      begin
        @connection.transaction(requires_new: true) do
          check_connection!
          @connection.materialize_transactions unless core_ends
          raise ActiveRecord::Rollback unless yield

          committed = true
        end
      ensure
        @connection.instance_variable_set(:@acidic_job_core_transaction, false) if core_ends
      end
      committed
    end

    # The core retries conflicts: serialization failures, deadlocks, busy databases.
    def error_code(error)
      conflict?(error) ? CONFLICT : DATABASE
    end

    # What a step raised: a conflict is retried by the core (in a new transaction) only
    # when the step's transaction is the outermost one; inside the application's own
    # transaction a retry would meet the same snapshot, so the step fails.
    def step_error_code(error)
      conflict?(error) && @connection.open_transactions <= 1 ? CONFLICT : 0
    end

    def exec(sql, params)
      result = @connection.exec_query(sql, "AcidicJob", params, prepare: !params.empty?)
      result.rows.map { |row| row.map { |cell| cell_for_core(cell) } }
    end

    def in_transaction?
      @connection.transaction_open?
    end

    private

    def conflict?(error)
      while error
        return true if error.is_a?(ActiveRecord::SerializationFailure) || error.is_a?(ActiveRecord::Deadlocked)
        return true if defined?(::SQLite3::BusyException) && error.is_a?(::SQLite3::BusyException)
        return true if defined?(::PG::TRSerializationFailure) &&
                       (error.is_a?(::PG::TRSerializationFailure) || error.is_a?(::PG::TRDeadlockDetected))
        return true if error.message.to_s.match?(/database is locked|database table is locked/)

        error = error.cause
      end
      false
    end

    # The store holds the driver handle it was made with: a reconnect replaced it.
    def check_connection!
      return if @raw.nil? || TransactionHost.raw_of(@connection).equal?(@raw)

      raise Misuse, "the ActiveRecord connection was replaced during an acidic_job run"
    end

    def cell_for_core(cell)
      case cell
      when nil, Integer, String, true, false then cell
      when Time, DateTime then cell.utc.strftime("%Y-%m-%d %H:%M:%S.%6N")
      else cell.to_s
      end
    end
  end
end
