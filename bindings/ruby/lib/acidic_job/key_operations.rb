# frozen_string_literal: true

module AcidicJob
  # What an operator does with AcidicJob::Key: scopes by state (chainable with every other
  # scope), actions (each one call into the core, which takes the row as a worker does)
  # and summaries that read the stored documents as text, never loading them, so that a
  # console without the application's classes (a Stripe::CardError recorded by a job)
  # lists, inspects and shows every row.
  #
  #   AcidicJob::Key.failed.where(job_name: "RideCreateJob").find_each(&:retry!)
  #   AcidicJob::Key.stranded.count
  #   key.reset_to!(:create_stripe_charge)
  #   key.error_summary.summary # => "Stripe::CardError: Your card was declined."
  module KeyOperations
    extend ActiveSupport::Concern

    # The states of decision 013, as SQL over the row: the same CASE as the core's
    # (core/src/sql.c ADMIN_STATE), written as one predicate per state so that a scope
    # selects in the database. "Live" locks are those taken within the lock timeout of
    # the application's store (config.lock_timeout).
    module StatePredicates
      module_function

      def sql(state, model, cutoff)
        t = ->(column) { "#{model.quoted_table_name}.#{model.connection.quote_column_name(column)}" }
        has = ->(column) { model.column_names.include?(column) }
        finished = "#{t['recovery_point']} = 'FINISHED'"
        unfinished = "(#{t['recovery_point']} IS NULL OR #{t['recovery_point']} <> 'FINISHED')"
        error = "(#{t['error_object']} IS NOT NULL AND #{t['error_object']} <> '')"
        no_error = "(#{t['error_object']} IS NULL OR #{t['error_object']} = '')"
        dead = has['dead_at'] ? "#{t['dead_at']} IS NOT NULL" : "1 = 0"
        alive = has['dead_at'] ? "#{t['dead_at']} IS NULL" : "1 = 1"
        awaiting = has['awaiting_batch_id'] ? "#{t['awaiting_batch_id']} IS NOT NULL" : "1 = 0"
        not_awaiting = has['awaiting_batch_id'] ? "#{t['awaiting_batch_id']} IS NULL" : "1 = 1"
        unlocked = "#{t['locked_at']} IS NULL"
        cut = model.connection.quote(cutoff)
        parts = case state.to_s
                when "succeeded" then [finished, no_error]
                when "discarded" then [finished, error]
                when "finished" then [finished]
                when "dead" then [unfinished, dead]
                when "running" then [unfinished, alive, "#{t['locked_at']} > #{cut}"]
                when "stranded" then [unfinished, alive, "#{t['locked_at']} <= #{cut}"]
                when "awaiting" then [unfinished, alive, unlocked, awaiting]
                when "failed" then [unfinished, alive, unlocked, not_awaiting, error]
                when "queued" then [unfinished, alive, unlocked, not_awaiting, no_error]
                else raise InvalidArgument, "unknown state #{state.inspect} (#{(Admin::STATES + ['finished']).join(', ')})"
                end
        "(#{parts.join(' AND ')})"
      end
    end

    STATE_SCOPES = %i[running stranded failed dead awaiting queued succeeded discarded finished].freeze

    included do
      STATE_SCOPES.each do |state|
        scope state, -> { in_state(state) }
      end
    end

    class_methods do
      # Runs in any of the states named (see AcidicJob::Admin::STATES, and "finished").
      def in_state(*states)
        names = states.flatten.flat_map { |s| s.to_s.split(",") }.map(&:strip)
        raise InvalidArgument, "in_state needs a state" if names.empty?

        cutoff = lock_cutoff
        where(names.map { |s| StatePredicates.sql(s, self, cutoff) }.join(" OR "))
      end

      # Locks taken after this time are live (the workers' lock timeout).
      def lock_cutoff
        lock_timeout_ms = Stores.current.options.fetch(:lock_timeout_ms)
        Time.now.utc - (lock_timeout_ms / 1000.0)
      end
    end

    # The state the core sees the run in: "running", "stranded", "failed", "dead",
    # "awaiting", "queued", "succeeded" or "discarded".
    def admin_state
      admin_run.state
    end

    # The run as AcidicJob::Admin lists it.
    def admin_run
      Admin.current.show(id).run
    end

    # AcidicJob::Admin#show of this run.
    def admin_detail
      Admin.current.show(id)
    end

    # Clear the error and enqueue the run again (see AcidicJob::Admin#retry). force: also
    # when its lock is live. Raises StateError (finished, awaiting) or
    # LockedIdempotencyKey (a live lock) when refused. Reloads the record.
    def retry!(force: false)
      operate { |admin| admin.retry(id, force: force) }
    end

    # Restart the run at `step` (its steps from there run again, with their writes).
    def reset_to!(step, force: false)
      operate { |admin| admin.reset(id, step: step.to_s, force: force) }
    end

    # Release the lock of a run whose worker died.
    def unlock!(force: false)
      operate { |admin| admin.unlock(id, force: force) }
    end

    # Mark the run finished and failed: it never runs again; the row stays.
    def discard!(force: false)
      operate { |admin| admin.discard(id, force: force) }
    end

    # The stored error read as text (AcidicJob::Admin::ErrorSummary: format, class_name,
    # message, summary, backtrace), or nil. The document is never loaded.
    def error_summary
      Admin.error_summary(read_attribute_before_type_cast("error_object"))
    end

    # The stored attributes as text: JSON pretty-printed, YAML as written (never loaded).
    def attributes_summary
      Admin.document_text(read_attribute_before_type_cast("attr_accessors"))
    end

    # `inspect` (a console listing rows) shows a document that cannot be loaded here
    # (its class is not defined) by its summary instead of raising.
    def attribute_for_inspect(attr_name)
      super
    rescue StandardError, ScriptError
      raw = read_attribute_before_type_cast(attr_name.to_s)
      text = attr_name.to_s == "error_object" ? Admin.error_summary(raw)&.summary : raw.to_s
      "#<not loaded: #{text.to_s.truncate(80)}>"
    end

    private

    def operate
      raise Misuse, "#{self.class.name} ##{id.inspect} is not saved" unless persisted?

      yield Admin.current
      reload
    end
  end

  Key.include(KeyOperations)
end
