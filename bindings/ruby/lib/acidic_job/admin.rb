# frozen_string_literal: true

require "json"
require "time"

module AcidicJob
  # The operator's view of acidic_job (docs/decisions/013-operator-operations.md): list,
  # show, retry, reset, unlock, discard, bulk actions, prune, stats, drain and recover,
  # each one call into the core's aj_admin_* functions (ext/acidic_job/rb_aj_admin.c).
  # Results are plain Ruby objects whose #as_json is the JSON of the dashboard's API.
  #
  #   AcidicJob::Admin.list(state: "failed,stranded", job: "RideCreateJob").each { |run| ... }
  #   AcidicJob::Admin.show("job-42").error.summary
  #   AcidicJob::Admin.retry("job-42")
  #   AcidicJob::Admin.bulk(:retry, filter: { state: :failed, job: "RideCreateJob" })
  #   AcidicJob::Admin.prune(finished_before: 7.days)
  #
  # The class methods work on the application's connection (the store a job uses:
  # ActiveRecord's, or config.database_url); AcidicJob::Admin.connect(url) opens a store
  # of its own (the acidic-job command). Nothing here loads a stored error or attribute
  # document: a console without the application's classes lists and shows every row.
  class Admin
    # Serialization to the dashboard's JSON (times as ISO 8601 UTC with microseconds).
    module Serializable
      def as_json(*)
        to_h.transform_keys(&:to_s).transform_values { |v| Serializable.json_value(v) }
      end

      def to_json(*args)
        as_json.to_json(*args)
      end

      def self.json_value(value)
        case value
        when Time then value.utc.strftime("%Y-%m-%dT%H:%M:%S.%6NZ")
        when Serializable then value.as_json
        when Array then value.map { |v| json_value(v) }
        when String then value.valid_encoding? ? value : value.scrub
        else value
        end
      end

      def self.time(microseconds)
        microseconds && Time.at(microseconds / 1_000_000, microseconds % 1_000_000, :usec).utc
      end
    end

    RUN_TIMES = %i[locked_at updated_at created_at last_run_at recover_at dead_at].freeze

    # A run as a list shows it. state: "running", "stranded", "failed", "dead",
    # "awaiting", "queued", "succeeded" or "discarded".
    Run = Struct.new(:id, :key, :job_name, :state, :recovery_point, :attempts, :locked_at,
                     :locked_by, :error_class, :error_message, :updated_at, :created_at,
                     :last_run_at, :recover_at, :dead_at, :awaiting_batch_id, keyword_init: true) do
      include Serializable

      def self.from_native(hash)
        new(**hash.merge(RUN_TIMES.to_h { |t| [t, Serializable.time(hash[t])] }))
      end
    end

    Staged = Struct.new(:id, :adapter, :job_name, :payload, :run_id, :batch_id, :created_at,
                        :delivered_at, keyword_init: true) do
      include Serializable

      def self.from_native(hash)
        hash && new(**hash, created_at: Serializable.time(hash[:created_at]),
                            delivered_at: Serializable.time(hash[:delivered_at]))
      end
    end

    Batch = Struct.new(:id, :run_id, :step, :remaining, :continuation_adapter,
                       :continuation_job_name, :created_at, :updated_at, keyword_init: true) do
      include Serializable

      def self.from_native(hash)
        hash && new(**hash, created_at: Serializable.time(hash[:created_at]),
                            updated_at: Serializable.time(hash[:updated_at]))
      end
    end

    # A step of a run's recorded workflow: state "done", "current" or "pending".
    Step = Struct.new(:name, :state, :awaits, keyword_init: true) { include Serializable }

    # A stored error read as text (format "yaml", "json" or "text"): never instantiated.
    ErrorSummary = Struct.new(:format, :class_name, :message, :summary, :backtrace, keyword_init: true) do
      include Serializable

      def to_s
        summary
      end
    end

    # How retries and recovery enqueue a run (nil on rows written by acidic_job 0.7.0).
    Resume = Struct.new(:adapter, :job_name, :payload, keyword_init: true) { include Serializable }

    # One run in full. Documents are the stored text: job_args and attributes as written
    # (attributes pretty-printed when JSON), the workflow as recorded.
    Detail = Struct.new(:run, :job_args, :attributes, :attributes_format, :workflow, :steps,
                        :error, :staged, :batch, :resume, keyword_init: true) do
      include Serializable

      def as_json(*)
        super.except("workflow")
      end
    end

    # A page of runs (Enumerable); pass next_cursor as `cursor:` for the next one.
    Page = Struct.new(:runs, :next_cursor, keyword_init: true) do
      include Serializable
      include Enumerable

      def each(&block)
        runs.each(&block)
      end
    end

    Count = Struct.new(:job_name, :state, :count, keyword_init: true) do
      include Serializable

      def as_json(*)
        job_name.nil? ? super.except("job_name") : super
      end
    end

    Stats = Struct.new(:total, :states, :jobs, :oldest_stranded, :staged_backlog,
                       :oldest_staged, :open_batches, :oldest_batch, keyword_init: true) do
      include Serializable

      # How many runs are in `state` (a name).
      def count_of(state)
        states.find { |c| c.state == state.to_s }&.count || 0
      end
    end

    # A page of the staged backlog (Enumerable); pass next_cursor as `cursor:` for the next.
    StagedPage = Struct.new(:staged, :next_cursor, keyword_init: true) do
      include Serializable
      include Enumerable

      def each(&block)
        staged.each(&block)
      end
    end

    BulkResult = Struct.new(:changed, :skipped, keyword_init: true) { include Serializable }
    PruneResult = Struct.new(:deleted, keyword_init: true) { include Serializable }
    DrainResult = Struct.new(:delivered, keyword_init: true) { include Serializable }
    RecoverResult = Struct.new(:requeued, :dead, keyword_init: true) { include Serializable }

    ACTIONS = Native::Admin::ACTIONS
    STATES = Native::Admin::STATES.keys.freeze
    DURATION_UNITS = { "s" => 1, "m" => 60, "h" => 3600, "d" => 86_400, "w" => 604_800 }.freeze

    class << self
      # The Admin of the application's connection.
      def current
        new
      end

      # An Admin on a store of its own (SQLite path or URL, PostgreSQL URL). Open it with
      # the workers' lock timeout (seconds): it decides which locks are live. Staged jobs
      # (retries, resets) go through the application's queue when its job classes and
      # adapters are loaded; otherwise they wait for a drain.
      def connect(url, lock_timeout: AcidicJob.config.lock_timeout)
        options = AcidicJob.config.store_options
        options[:lock_timeout_ms] = Inputs.milliseconds(lock_timeout, "lock_timeout") if lock_timeout
        new(Stores.attach(Native::Store.open(url, options)))
      end

      %i[list show retry reset unlock discard bulk prune stats staged drain recover].each do |name|
        define_method(name) { |*args, **kwargs, &block| current.public_send(name, *args, **kwargs, &block) }
      end

      # "7d", "36h", "90m", "45s", "2w" or a number of seconds (also an
      # ActiveSupport::Duration) -> seconds.
      def seconds(value)
        case value
        when nil then nil
        when Numeric, ActiveSupport::Duration then value.to_f
        when /\A\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*\z/i
          Float(Regexp.last_match(1)) * DURATION_UNITS.fetch(Regexp.last_match(2).downcase, 1)
        else raise InvalidArgument, "#{value.inspect} is not a duration (use e.g. 45s, 90m, 36h, 7d, 2w)"
        end
      end

      # A Time, Date, or an ISO 8601 date or time ("2026-12-01", "2026-12-01T10:00:00Z";
      # without a zone: UTC).
      def time(value)
        case value
        when nil then nil
        when Time then value
        when DateTime then value.to_time
        when Date then Time.utc(value.year, value.month, value.day)
        when String
          text = value.strip
          text += "T00:00:00" if text.match?(/\A\d{4}-\d{2}-\d{2}\z/)
          text += "Z" unless text.match?(/(Z|[+-]\d{2}:?\d{2})\z/i)
          Time.iso8601(text)
        else raise InvalidArgument, "#{value.inspect} is not a time"
        end
      rescue ArgumentError
        raise InvalidArgument, "#{value.inspect} is not a date or time (use e.g. 2026-12-01 or 2026-12-01T10:00:00Z)"
      end

      # The aj_admin_state bits of one name, a list of them ("failed,stranded",
      # [:failed, :dead]) or nil (every state).
      def states(value)
        names = Array(value).flat_map { |v| v.to_s.split(",") }.map(&:strip).reject(&:empty?)
        names.reduce(0) { |bits, name| bits | Native::Admin.state_parse(name) }
      end

      # "json", "yaml" or "text": how a stored document is written.
      def document_format(text)
        return nil if text.nil?
        return "yaml" if text.start_with?("---")
        return "json" if text.lstrip.start_with?("{", "[") && parse_json(text)

        "text"
      end

      # A stored attribute document for reading: JSON pretty-printed, YAML as written.
      def document_text(text)
        return nil if text.nil?

        document_format(text) == "json" ? JSON.pretty_generate(parse_json(text)) : text.dup
      end

      def error_summary(document)
        return nil if document.nil? || document.empty?

        ErrorSummary.new(**Native::Admin.error_parse(document))
      end

      private

      def parse_json(text)
        JSON.parse(text)
      rescue JSON::ParserError
        nil
      end
    end

    # store: a Native::Store, or nil for the application's current one (looked up at each
    # call: ActiveRecord hands each thread its own connection).
    def initialize(store = nil)
      @store = store
    end

    def store
      @store || Stores.current
    end

    # What pushing the job of the last retry or reset raised (the job then waits, staged,
    # for a drain: this process lacks the application's job classes or queue), or nil.
    attr_reader :last_enqueue_error

    # Runs, newest first (order: :asc for oldest first), one page of `limit` (default 50,
    # at most 1000). Filters: state (names, see .states), job (a job class or name),
    # key_prefix, older_than (not updated for that long: seconds or "1h"), since (updated
    # at or after: a Time or ISO 8601 date), cursor (next_cursor of the previous page).
    def list(state: nil, job: nil, key_prefix: nil, older_than: nil, since: nil, cursor: nil,
             limit: nil, order: :desc)
      filter = filter_for(state: state, job: job, key_prefix: key_prefix, older_than: older_than,
                          since: since, cursor: cursor, limit: limit)
      filter[:descending] = order_descending?(order)
      runs, next_cursor = Native::Admin.list(store, filter)
      Page.new(runs: runs.map { |r| Run.from_native(r) }, next_cursor: next_cursor)
    end

    # Every run the filters select, page by page (see #list).
    def each_run(**filters, &block)
      return enum_for(:each_run, **filters) unless block

      cursor = filters.delete(:cursor)
      loop do
        page = list(**filters, cursor: cursor)
        page.each(&block)
        break unless (cursor = page.next_cursor)
      end
    end

    # One run in full, by id (an Integer, a Key, a Run) or by key (a String). A key that
    # names two runs (acidic_job 0.7.0 keyed runs by key and arguments) raises
    # InvalidArgument listing their ids; NotFound when nothing matches.
    def show(run)
      key, id = target(run)
      d = Native::Admin.show(store, key, id)
      Detail.new(
        run: Run.from_native(d[:run]), job_args: d[:job_args],
        attributes: self.class.document_text(d[:attributes]),
        attributes_format: self.class.document_format(d[:attributes]),
        workflow: d[:workflow],
        steps: d[:steps].map { |s| Step.new(**s) },
        error: d[:error] && ErrorSummary.new(**d[:error]),
        staged: d[:staged].map { |s| Staged.from_native(s) },
        batch: Batch.from_native(d[:batch]),
        resume: d[:resume] && Resume.new(**d[:resume])
      )
    end

    # Clear a failed, dead or stranded run's error and enqueue it again through its
    # queue: it resumes at its recovery point. force: also when its lock is live (its
    # worker is known to be dead). Returns the run as it is now.
    # enqueue: false stages nothing (the caller enqueues the run itself).
    def retry(run, force: false, enqueue: true)
      act(:retry, run, force: force, enqueue: enqueue) { |key, id, flags| Native::Admin.retry(store, key, id, flags) }
    end

    # Move a run's recovery point to `step` (back or forward) and enqueue it: the steps
    # from there run again, with their writes.
    def reset(run, step:, force: false, enqueue: true)
      raise InvalidArgument, "reset needs the step to restart at" if step.nil? || step.to_s.empty?

      act(:reset, run, force: force, enqueue: enqueue, step: step.to_s) do |key, id, flags|
        Native::Admin.reset(store, key, id, step.to_s, flags)
      end
    end

    # Release the lock of a run whose worker died: recovery hands it back to its queue.
    def unlock(run, force: false)
      act(:unlock, run, force: force) { |key, id, flags| Native::Admin.unlock(store, key, id, flags) }
    end

    # Mark a run finished and failed so that it never runs again (its row stays).
    def discard(run, force: false)
      act(:discard, run, force: force) { |key, id, flags| Native::Admin.discard(store, key, id, flags) }
    end

    # Apply :retry, :discard, :unlock or :reset (with step:) to the runs named by `ids` or
    # selected by `filter` (the keys of #list; state defaults to failed and dead runs,
    # stranded ones for :unlock). Runs the action refuses are counted as skipped. With a
    # filter the core walks the runs in transactions of `batch_size` (default 100); the
    # block gets (done, total) after each. 0.7.0 rows without a resume description are
    # skipped by a filtered retry or reset: retry them by id.
    def bulk(action, ids: nil, filter: nil, step: nil, force: false, batch_size: nil, &progress)
      code = ACTIONS.fetch(action.to_sym) { raise InvalidArgument, "unknown bulk action #{action.inspect} (#{ACTIONS.keys.join(', ')})" }
      raise InvalidArgument, "bulk needs ids: or filter:, not both" if ids.nil? == filter.nil?

      payload = { action: action.to_sym, force: force, step: step }
      ActiveSupport::Notifications.instrument("bulk.acidic_job", payload) do
        result = ids ? bulk_by_ids(action.to_sym, ids, step, force, &progress) : bulk_by_filter(code, filter, step, force, batch_size, &progress)
        payload.merge!(changed: result.changed, skipped: result.skipped)
        result
      end
    end

    # Delete the rows of runs finished before `finished_before` ago (seconds, "7d", an
    # ActiveSupport::Duration), in transactions of `batch_size` rows; the block gets
    # (done, total). Staged jobs are kept.
    def prune(finished_before:, state: nil, job: nil, key_prefix: nil, batch_size: nil, &progress)
      age = self.class.seconds(finished_before)
      raise InvalidArgument, "prune needs finished_before: (e.g. 7d)" if age.nil?

      filter = filter_for(state: state, job: job, key_prefix: key_prefix, older_than: age, limit: batch_size)
      payload = { finished_before: age }
      ActiveSupport::Notifications.instrument("prune.acidic_job", payload) do
        payload[:deleted] = Native::Admin.prune(store, filter, &progress)
        PruneResult.new(deleted: payload[:deleted])
      end
    end

    # Counts by state and job, the oldest stranded run, the staged backlog and open batches.
    def stats
      s = Native::Admin.stats(store)
      Stats.new(
        total: s[:total], states: s[:states].map { |c| Count.new(job_name: nil, **c) },
        jobs: s[:jobs].map { |c| Count.new(**c) },
        oldest_stranded: s[:oldest_stranded] && Run.from_native(s[:oldest_stranded]),
        staged_backlog: s[:staged_backlog], oldest_staged: Staged.from_native(s[:oldest_staged]),
        open_batches: s[:open_batches], oldest_batch: Batch.from_native(s[:oldest_batch])
      )
    end

    # The staged jobs not acknowledged yet, oldest first, one page of `limit` (default
    # 50, at most 1000) past `cursor` (next_cursor of the previous page).
    def staged(cursor: nil, limit: nil)
      list, next_cursor = Native::Admin.staged_list(store, cursor && Integer(cursor), limit && Integer(limit))
      StagedPage.new(staged: list.map { |s| Staged.from_native(s) }, next_cursor: next_cursor)
    rescue TypeError, ArgumentError => e
      raise InvalidArgument, e.message
    end

    # Hand staged jobs committed more than `older_than` seconds ago and never
    # acknowledged to their queue (AcidicJob.drain).
    def drain(older_than: AcidicJob.config.drain_older_than)
      target = store
      Events.refresh(target)
      DrainResult.new(delivered: target.drain((self.class.seconds(older_than) * 1000).round))
    end

    # Hand stranded runs and failed runs whose retry is due back to their queue
    # (AcidicJob.recover).
    def recover(limit: 0)
      target = store
      Events.refresh(target)
      requeued, dead = target.recover(Integer(limit))
      RecoverResult.new(requeued: requeued, dead: dead)
    end

    private

    def filter_for(state: nil, job: nil, key_prefix: nil, older_than: nil, since: nil, cursor: nil, limit: nil)
      now_us = (Time.now.to_r * 1_000_000).to_i
      filter = {}
      filter[:states] = self.class.states(state) unless state.nil?
      filter[:job_name] = job.is_a?(Module) ? job.name : job.to_s unless job.nil?
      filter[:key_prefix] = key_prefix.to_s unless key_prefix.nil?
      age = self.class.seconds(older_than)
      filter[:updated_before_us] = now_us - (age * 1_000_000).round if age
      since_time = self.class.time(since)
      filter[:updated_since_us] = (since_time.to_r * 1_000_000).to_i if since_time
      filter[:after_id] = Integer(cursor) unless cursor.nil?
      filter[:limit] = Integer(limit) unless limit.nil?
      filter
    rescue TypeError, ArgumentError => e
      raise InvalidArgument, e.message
    end

    def order_descending?(order)
      case order.to_s
      when "desc", "" then true
      when "asc" then false
      else raise InvalidArgument, "order must be :desc or :asc, not #{order.inspect}"
      end
    end

    # [key, id] naming a run for the core.
    def target(run)
      case run
      when Integer then [nil, run]
      when Run then [nil, run.id]
      when ActiveRecord::Base then [nil, run.id]
      when String, Symbol then [run.to_s, 0]
      else raise InvalidArgument, "name a run by its id (Integer) or key (String), not #{run.class}"
      end
    end

    def flags_for(force)
      force ? Native::Admin::FORCE : 0
    end

    # One action on one run, published as <action>.acidic_job (run_id, key, job_name,
    # force, step for reset, enqueued_by: :core, :ruby or nil). A 0.7.0 row (no resume
    # description) is retried or reset without staging, and its job enqueued here.
    def act(action, run, force:, enqueue: true, step: nil)
      key, id = target(run)
      flags = flags_for(force)
      flags |= Native::Admin::NO_ENQUEUE unless enqueue
      payload = { action: action, force: force }
      payload[:step] = step if step
      ActiveSupport::Notifications.instrument("#{action}.acidic_job", payload) do
        begin
          yield key, id, flags
          if %i[retry reset].include?(action)
            payload[:enqueued_by] = enqueue ? :core : nil
            # the core handed the resume job to the queue after commit; a push that raised
            # leaves it staged for a drain
            @last_enqueue_error = enqueue ? store.last_enqueue_error : nil
            payload[:enqueue_error] = @last_enqueue_error if @last_enqueue_error
          end
        rescue StateError
          enqueuer = enqueue && %i[retry reset].include?(action) && legacy_enqueue(key, id, action)
          raise unless enqueuer

          yield key, id, flags | Native::Admin::NO_ENQUEUE
          enqueuer.call
          payload[:enqueued_by] = :ruby
        end
        current = Run.from_native(Native::Admin.show(store, key, id)[:run])
        payload.merge!(run_id: current.id, key: current.key, job_name: current.job_name, state: current.state)
        current
      end
    end

    # For a run that the core cannot enqueue (no resume description) but this process
    # can: a callable that enqueues its job (the job class and arguments are known), or
    # nil when the refusal has another reason.
    def legacy_enqueue(key, id, action)
      detail = Native::Admin.show(store, key, id)
      return nil if detail[:resume]
      return nil if action == :retry && %w[succeeded discarded awaiting].include?(detail[:run][:state])

      LegacyJob.new(detail[:run][:job_name], detail[:run][:key], detail[:job_args]).enqueuer
    end

    # The job of a run written by acidic_job 0.7.0: its class, its arguments and its
    # idempotency key (the job_id of an ActiveJob, the jid of a Sidekiq worker).
    class LegacyJob
      def initialize(job_name, key, job_args)
        @job_name = job_name
        @key = key
        @job_args = job_args
      end

      def enqueuer
        klass = @job_name.to_s.safe_constantize
        unless klass
          raise Error, "cannot enqueue #{@job_name}: the class is not loaded here (this run was written " \
                       "by acidic_job 0.7.0 and has no resume description; retry it from the application, " \
                       "e.g. bin/rails acidic_job:retry KEY=#{@key}, or acidic-job --require config/environment.rb)"
        end
        args = Array(YAMLCoder.load(@job_args))
        key = @key
        if defined?(::ActiveJob::Base) && klass <= ::ActiveJob::Base
          -> { klass.new(*args).tap { |job| job.job_id = key }.enqueue }
        elsif defined?(::Sidekiq::Worker) && klass.include?(::Sidekiq::Worker)
          -> { ::Sidekiq::Client.push("class" => klass, "args" => args, "jid" => key) }
        else
          raise UnknownJobAdapter, "cannot enqueue #{@job_name}: neither an ActiveJob job nor a Sidekiq worker"
        end
      end
    end

    def bulk_by_ids(action, ids, step, force)
      changed = skipped = 0
      Array(ids).each_with_index do |id, index|
        begin
          action == :reset ? reset(id, step: step, force: force) : public_send(action, id, force: force)
          changed += 1
        rescue StateError, LockedIdempotencyKey, NotFound, UnknownRecoveryPoint
          skipped += 1
        end
        yield index + 1, ids.size if block_given?
      end
      BulkResult.new(changed: changed, skipped: skipped)
    end

    def bulk_by_filter(code, filter, step, force, batch_size, &progress)
      filter = filter.to_h.transform_keys(&:to_sym)
      unknown = filter.keys - %i[state job key_prefix older_than since cursor]
      raise InvalidArgument, "unknown filter #{unknown.map(&:to_s).join(', ')}" unless unknown.empty?

      native = filter_for(**filter, limit: batch_size)
      changed, skipped = Native::Admin.bulk(store, code, step&.to_s, native, flags_for(force), &progress)
      BulkResult.new(changed: changed, skipped: skipped)
    end
  end
end

module AcidicJob
  # The operator's actions in the log (info level, config.logger): what changed, or why
  # it was refused. Published by AcidicJob::Admin as retry/reset/unlock/discard/bulk/
  # prune.acidic_job (payloads: action, force, step, run_id, key, job_name, enqueued_by,
  # changed, skipped, deleted; `exception` when refused).
  class LogSubscriber
    %i[retry reset unlock discard].each do |action|
      define_method(action) do |event|
        info do
          p = event.payload
          forced = p[:force] ? " (forced)" : ""
          step = p[:step] ? " to step #{p[:step]}" : ""
          if p[:exception]
            "[acidic_job] operator #{action}#{step}#{forced} refused: #{p[:exception][0]}: #{p[:exception][1]}"
          else
            "[acidic_job] operator #{action}#{step}#{forced}: run #{p[:run_id]} #{p[:key]} (#{p[:job_name]}) is now #{Admin::Serializable.json_value(p[:state])}"
          end
        end
      end
    end

    def bulk(event)
      info do
        p = event.payload
        outcome = p[:exception] ? "stopped: #{p[:exception][0]}: #{p[:exception][1]}" : "#{p[:changed]} changed, #{p[:skipped]} skipped"
        "[acidic_job] operator bulk #{p[:action]}#{' (forced)' if p[:force]}: #{outcome}"
      end
    end

    def prune(event)
      info do
        p = event.payload
        outcome = p[:exception] ? "stopped: #{p[:exception][0]}: #{p[:exception][1]}" : "#{p[:deleted]} run(s) deleted"
        "[acidic_job] operator prune of runs finished more than #{format('%g', p[:finished_before])}s ago: #{outcome}"
      end
    end
  end
end
