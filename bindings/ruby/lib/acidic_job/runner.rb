# frozen_string_literal: true

module AcidicJob
  # Runs one `idempotently` block: acquires the run for the job's idempotency key, then
  # runs the steps from its recovery point, each in one transaction with the run's
  # bookkeeping (see Sessions).
  class Runner
    READY = Native::Run::READY
    AWAITING = Native::Run::AWAITING
    SUCCEEDED = Native::Run::SUCCEEDED

    def initialize(job, with, steps)
      @job = job
      @with = (with || {}).to_h.transform_keys(&:to_s)
      @steps = steps.each_with_object({}) { |s, h| h[s["does"].to_s] ||= s }
      @workflow = steps.map { |s| [s["does"].to_s, Array(s["awaits"]).map { |w| job_name_of(w) }] }
    end

    def call
      Sessions.open do |session|
        @session = session
        run = acquire
        begin
          define_attributes(run)
          process(run)
        ensure
          @job.instance_variable_set(:@key, nil)
          run.close
        end
      end
    end

    private

    def job_name_of(worker)
      worker.is_a?(Module) ? worker.name : worker.to_s
    end

    def acquire
      key = KeyLookup.idempotency_key_for(@job)
      args = job_args_document(key)
      attrs = Documents.attributes(@with)
      @session.atomically do |store|
        Native::Run.acquire(store, @workflow, key, @job.class.name.to_s, args, attrs)
      end
    end

    # The core compares job arguments byte for byte; 0.7.0 compared them with `==`. The two
    # differ for ActiveRecord records (equal by id, while their YAML holds every
    # attribute): when the arguments hold one, arguments equal to the stored ones reuse
    # the stored document, so a retry after the record changed is not a mismatch.
    def job_args_document(key)
      args = @job.arguments_for_perform
      doc = Documents.job_args(args)
      return doc if @session.owned? || !holds_record?(args)

      stored = @session.connection.select_value(
        AcidicJob::Key.where(idempotency_key: key).order(:id).limit(1).select(:job_args).to_sql
      )
      return doc if stored.nil? || stored == doc

      YAMLCoder.load(stored) == args ? stored : doc
    rescue StandardError # an unreadable stored document: let the core report the mismatch
      doc
    end

    def holds_record?(value)
      case value
      when ActiveRecord::Base then true
      when Hash then value.any? { |k, v| holds_record?(k) || holds_record?(v) }
      when Array then value.any? { |v| holds_record?(v) }
      else false
      end
    end

    # Each `with:` entry becomes an attribute; values stored by earlier runs win over the
    # defaults, and the merged set is written with the next step. `self.name = value`
    # persists with the step it is called in.
    def define_attributes(run)
      stored = Documents.load_attributes(run.attributes)
      current = @with.merge(stored)
      run.attributes = Documents.attributes(current) if run.status == READY && current != stored
      @job.__send__(:acidic_define_attributes, current, run)
    end

    def process(run)
      @job.instance_variable_set(:@key, nil)
      return finished_result(run) unless run.status == READY

      while run.status == READY
        run_step(run)
        @job.instance_variable_set(:@key, nil)
        return rolled_back(run) unless @session.last_committed?
        return pro_batch_pushed(run) if @pro_awaits
      end
      run.status == SUCCEEDED || run.status == AWAITING
    end

    # The step raised ActiveRecord::Rollback: its transaction rolled back silently. The run
    # stays at this step; release its lock so that a retry can run it, and report false.
    def rolled_back(run)
      record_failure(run, ActiveRecord::Rollback.new)
      false
    end

    def finished_result(run)
      run.status == SUCCEEDED
    end

    def run_step(run)
      raised = nil
      begin
        # No separate write lock: the core's first statement in a step is the claim (an
        # UPDATE of the run's row), which takes SQLite's write lock itself.
        @session.atomically(write_lock: false) do
          run.step do |name|
            AcidicJob.with_current_run(run) { execute_step(run, name) }
          rescue Exception => e # rubocop:disable Lint/RescueException
            raised = e
            run.error = Documents.error(e) if e.is_a?(StandardError)
            raise
          end
        end
      rescue Exception => e # rubocop:disable Lint/RescueException
        record_failure(run, e) if raised && !@session.owned?
        raise
      end
    end

    # After the step's transaction rolled back: record the error and release the lock in
    # a new transaction. A failure here is reported; the step's error still propagates.
    def record_failure(run, error)
      @session.atomically { run.fail }
    rescue StandardError => e
      AcidicJob.config.logger.error(
        "[acidic_job] failed to record the error of run #{run.id} (#{error.class}) " \
        "because of #{e.class}: #{e.message}; its lock expires after the lock timeout"
      )
    end

    def execute_step(run, name)
      step = @steps.fetch(name)
      @job.instance_variable_set(:@key, nil)
      @job.instance_variable_set(:@acidic_current_step, name)
      result = begin
        @job.__send__(:acidic_call_step, name)
      ensure
        @job.instance_variable_set(:@acidic_current_step, nil)
        @job.instance_variable_set(:@key, nil)
      end
      awaits = Array(step["awaits"])
      if awaits.any?
        if defined?(::Sidekiq::Batch)
          @pro_awaits = awaits
        else
          stage_awaits(run, awaits)
        end
      elsif result.is_a?(Response)
        run.finish
      end
    end

    # Fan out: stage every awaited job in this step's batch, and the job that resumes
    # this run once they have all performed (the job itself, same idempotency key).
    def stage_awaits(run, awaits)
      awaits.each do |worker|
        klass = worker.is_a?(String) ? worker.constantize : worker
        args = case AcidicJob.perform_arity(klass)
               when 0 then []
               when 1 then [run.id]
               else raise ArgumentError, "awaited job #{klass} must perform with 0 or 1 argument"
               end
        adapter, job_name, job_args = Outbox.describe(klass, args)
        run.await_job(adapter, job_name, Documents.job_args(job_args))
      end
      adapter, job_name, payload = @job.__send__(:acidic_continuation)
      run.set_continuation(adapter, job_name, Documents.job_args(payload))
    end

    # Sidekiq Pro (as 0.7.0): after the awaits step committed, release the run's lock and
    # push the awaited workers as a batch whose success callback resumes it (step_done).
    def pro_batch_pushed(run)
      awaits = @pro_awaits
      @pro_awaits = nil
      run_id = run.id
      @session.atomically do |store|
        store.exec("UPDATE acidic_job_keys SET locked_at = NULL WHERE id = ?", [run_id])
      end
      @job.__send__(:acidic_push_pro_batch, awaits, run_id)
      true
    end
  end
end
