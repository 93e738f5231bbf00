# frozen_string_literal: true

module AcidicJob
  # Runs one `idempotently` block: describes the run to the core (Native::Run.new) and lets
  # the core execute it (Native::Run#execute), which acquires it inside the first step's
  # transaction and runs each step in one transaction with the run's progress. This class
  # only translates: the steps' Ruby methods, the attributes, staging and awaits.
  class Runner
    SUCCEEDED = Native::Run::SUCCEEDED
    AWAITING = Native::Run::AWAITING
    DEAD = Native::Run::DEAD

    # What a step list becomes, once per distinct list (shared by every run of a job
    # class): the core's workflow and each step's awaited jobs by step name.
    Plan = Struct.new(:workflow, :awaits)

    @plans = {}
    @workflows = {}
    @lock = Mutex.new
    class << self
      # Looked up by the job's own step list (its Hashes compare by value), so that a run
      # builds nothing when its class has run the same steps before.
      def plan(steps)
        @plans[steps] || @lock.synchronize { @plans[frozen_copy(steps)] ||= build_plan(steps) }
      end

      private

      def build_plan(steps)
        described = steps.map do |s|
          [s["does"].to_s.freeze, Array(s["awaits"]).map { |w| job_name_of(w).freeze }.freeze].freeze
        end.freeze
        awaits = steps.each_with_object({}) { |s, h| h[s["does"].to_s] ||= Array(s["awaits"]).freeze }
        Plan.new(@workflows[described] ||= Native::Workflow.new(described), awaits.freeze).freeze
      end

      # The key is a copy the job cannot change later.
      def frozen_copy(steps)
        steps.map { |s| s.to_h { |k, v| [k.dup.freeze, v.is_a?(Array) ? v.dup.freeze : v] }.freeze }.freeze
      end

      def job_name_of(worker)
        worker.is_a?(Module) ? worker.name : worker.to_s
      end
    end

    def initialize(job, with, steps)
      @job = job
      @with = (with || {}).to_h.transform_keys(&:to_s)
      plan = self.class.plan(steps)
      @workflow = plan.workflow
      @awaits = plan.awaits
    end

    def call
      @connection = Stores.shared_connection
      store = Stores.current
      Events.refresh(store)
      run = Native::Run.new(store, @workflow, describe_run)
      status = begin
        run.execute { |name| execute_step(run, name) }
      rescue ActiveRecord::Rollback
        return false # the step rolled itself back: recorded and unlocked, a retry runs it
      ensure
        @job.instance_variable_set(:@key, nil)
        report_enqueue_error(store)
        @run_summary = [run.id, run.key, run.attempts]
        run.close
      end
      return push_pro_batch(run) if @pro_awaits

      finished(status)
    ensure
      Recovery.after_job(@job)
    end

    private

    def describe_run
      key, run_id = KeyLookup.run_for(@job)
      args = @job.arguments_for_perform
      @attributes_doc = encoded("the attributes (with:)") { Documents.attributes(@with) }
      {
        key: Inputs.text(key, "the idempotency key"),
        job_name: @job.class.name.to_s,
        args: encoded("the job's arguments") { Documents.job_args(args) },
        attributes: @attributes_doc,
        run_id: run_id,
        # 0.7.0 compared job arguments with ==: ActiveRecord records are equal by id, while
        # their YAML holds every attribute. Called only when the documents differ.
        args_equal: ->(stored) { same_arguments?(stored, args) },
        resume: encoded("the job (to resume it)") { @job.__send__(:acidic_resume_description) }
      }
    end

    # A document of the run: text the encoders cannot write (bytes invalid in their
    # encoding) is the caller's input error.
    def encoded(what)
      yield
    rescue JSON::GeneratorError, EncodingError, ArgumentError => e
      raise InvalidArgument, "#{what} cannot be stored (#{e.class}: #{e.message})"
    end

    def same_arguments?(stored, args)
      YAMLCoder.load(stored) == args
    rescue StandardError, ScriptError # an unreadable stored document is a mismatch
      false
    end

    # true when the run has succeeded (now or before), or when this job ran the step that
    # awaits jobs; false when it found the run awaiting, failed or dead.
    def finished(status)
      return true if status == SUCCEEDED || (status == AWAITING && @begun)

      if status == DEAD
        id, key, attempts = @run_summary
        AcidicJob.config.logger.warn(
          "[acidic_job] run #{id} (#{@job.class.name}, key #{key}) is dead after #{attempts} " \
          "attempts (config.max_attempts): it does not run again until an operator retries it"
        )
      end
      false
    end

    # Inside the step's transaction, on the run's first step: the run's stored attributes
    # (those of an earlier attempt win over the `with:` defaults).
    def begin_run(run)
      @begun = true
      doc = run.attributes
      stored = doc.nil? || doc == @attributes_doc ? @with : decode_attributes(run, doc)
      current = @with.merge(stored)
      @job.__send__(:acidic_define_attributes, current)
      @job.instance_variable_set(:@acidic_attributes_dirty, current != stored)
    end

    def decode_attributes(run, doc)
      Documents.load_attributes(doc)
    rescue Psych::Exception, ArgumentError, NameError => e
      raise UndecodableAttributes,
            "run #{run.id} (key #{run.key}) of #{@job.class.name}: its attr_accessors column " \
            "cannot be decoded (#{e.class}: #{e.message.lines.first.to_s.strip}); fix or clear the " \
            "column, then retry the run"
    end

    def execute_step(run, name)
      Thread.current[:acidic_job_step_error] = nil
      begin_run(run) unless @begun
      awaits = @awaits.fetch(name)
      result = AcidicJob.with_current_run(run) { call_step_method(name) }
      if awaits.any?
        await(run, awaits)
      elsif result.is_a?(Response)
        run.finish
      end
      save_attributes(run)
      LibpqTransactions.before_commit(@connection) if @connection
    rescue Exception => e # rubocop:disable Lint/RescueException
      Thread.current[:acidic_job_step_error] = e
      run.error = Documents.error(e) if e.is_a?(StandardError)
      raise
    end

    def call_step_method(name)
      @job.instance_variable_set(:@key, nil)
      @job.instance_variable_set(:@acidic_current_step, name)
      @job.__send__(:acidic_call_step, name)
    ensure
      @job.instance_variable_set(:@acidic_current_step, nil)
      @job.instance_variable_set(:@key, nil)
    end

    # Attributes set during the step are encoded once, with the step.
    def save_attributes(run)
      return unless @job.instance_variable_get(:@acidic_attributes_dirty)

      run.attributes = Documents.attributes(@job.instance_variable_get(:@acidic_attributes))
      @job.instance_variable_set(:@acidic_attributes_dirty, false)
    end

    def await(run, awaits)
      if defined?(::Sidekiq::Batch)
        # Sidekiq Pro (as 0.7.0): the step commits with the run unlocked at the next step;
        # the awaited workers are pushed as a batch whose success callback resumes it.
        @pro_awaits = awaits
        run.release
      else
        stage_awaits(run, awaits)
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
      run.set_continuation(*@job.__send__(:acidic_resume_description))
    end

    def push_pro_batch(_run)
      awaits = @pro_awaits
      @pro_awaits = nil
      @job.__send__(:acidic_push_pro_batch, awaits, @run_summary[0])
      true
    end

    def report_enqueue_error(store)
      err = store.last_enqueue_error
      return unless err.is_a?(Exception)

      AcidicJob.config.logger.warn(
        "[acidic_job] pushing a staged job failed (#{err.class}: #{err.message}); " \
        "AcidicJob.drain delivers it later"
      )
    end
  end
end
