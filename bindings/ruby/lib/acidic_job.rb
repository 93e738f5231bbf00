# frozen_string_literal: true

require "active_support"
require "active_support/concern"
require "active_support/core_ext"
require "active_record"
require "global_id"
require "digest/sha1"

require_relative "acidic_job/version"
require_relative "acidic_job/errors"
require_relative "acidic_job/inputs"
begin
  # Installed gems (RubyGems, Bundler `git:`) and `rake compile` put the extension next to
  # this file; RubyGems may also keep it only in the gem's extension dir on the load path.
  require_relative "acidic_job/acidic_job_ext"
rescue LoadError
  begin
    require "acidic_job/acidic_job_ext"
  rescue LoadError
    # One line: no chain of causes, and the backtrace only names the application's require.
    error = LoadError.new("acidic_job: the native extension is not built; run `rake compile` in " \
                          "#{File.expand_path('../../..', __dir__)}")
    error.set_backtrace(caller.reject { |line| line.start_with?(__FILE__, "<internal:") || line.include?("/rubygems/") }.first(1))
    raise error, cause: nil
  end
end
require_relative "acidic_job/coders"
require_relative "acidic_job/configuration"
require_relative "acidic_job/key"
require_relative "acidic_job/key_lookup"
require_relative "acidic_job/missing_steps"
require_relative "acidic_job/staged"
require_relative "acidic_job/owned_key"
require_relative "acidic_job/outbox"
require_relative "acidic_job/events"
require_relative "acidic_job/stores"
require_relative "acidic_job/recovery"
require_relative "acidic_job/response"
require_relative "acidic_job/perform_wrapper"
require_relative "acidic_job/perform_transactionally_extension"
require_relative "acidic_job/deliver_transactionally_extension"
require_relative "acidic_job/sidekiq_callbacks"
require_relative "acidic_job/runner"
require_relative "acidic_job/integrations"
require_relative "acidic_job/admin"
require_relative "acidic_job/key_operations"

# Idempotent, resumable multi-step jobs for ActiveJob and Sidekiq: a drop-in for
# acidic_job 0.7.0 on the acidic_job C core. `include AcidicJob` in a job and describe
# its work with `idempotently(with: {...}) { step :a; step :b }`.
module AcidicJob
  extend ActiveSupport::Concern

  # The dashboard (a Rack application): loaded when first named, as in
  # `mount AcidicJob::Web => "/acidic_job"`.
  autoload :Web, "acidic_job/web"

  # acidic_job 0.7.0's lock timeout in seconds, also the core's default
  # (AcidicJob.config.lock_timeout sets it).
  IDEMPOTENCY_KEY_LOCK_TIMEOUT = 90

  # The GlobalID app name used for staged jobs when the application sets none.
  DEFAULT_GLOBALID_APP = "acidic-job"

  class << self
    def config
      @config ||= Configuration.new
    end

    def configure
      yield config
      Stores.reset_owned!
      config
    end

    # Deliver staged jobs that were committed but never pushed (the process died between
    # commit and push). Returns how many were pushed. Also: `rake acidic_job:drain`.
    def drain(older_than: config.drain_older_than)
      Outbox.drain(older_than: older_than)
    end

    # Hand runs whose worker died (locked longer than the lock timeout) and failed runs
    # whose retry is due back to their queue, under the same idempotency key (an
    # ActiveJob's job_id, a Sidekiq jid): they resume at their recovery point. A run that
    # has used config.max_attempts is marked dead instead. Safe from many processes at
    # once. Workers also run it every config.recover_interval seconds (see Recovery).
    # Returns AcidicJob::Recovery::Result (requeued, dead).
    def recover(limit: 0)
      Recovery.sweep(limit: limit)
    end

    # Execute SQL on acidic_job's own connection from inside a step (applications
    # without ActiveRecord, `database_url` configured): it commits with the step.
    def exec(sql, *params)
      run_store = current_store
      raise Misuse, "AcidicJob.exec is for steps of runs on acidic_job's own connection" unless run_store

      run_store.exec(sql, params)
    end

    # The run whose step is executing on this thread (nil outside steps).
    def current_run
      Thread.current.thread_variable_get(:acidic_job_current_run)
    end

    def current_store
      Thread.current.thread_variable_get(:acidic_job_current_store)
    end

    def with_current_run(run)
      previous = current_run
      previous_store = current_store
      Thread.current.thread_variable_set(:acidic_job_current_run, run)
      Thread.current.thread_variable_set(:acidic_job_current_store, Stores.owned) if config.database_url
      yield
    ensure
      Thread.current.thread_variable_set(:acidic_job_current_run, previous)
      Thread.current.thread_variable_set(:acidic_job_current_store, previous_store)
    end

    # How many arguments a job class's own perform requires (under acidic_job's
    # wrappers): 0 for perform() or perform(*args), 1 for perform(id) or perform(id, *rest).
    def perform_arity(klass)
      method = klass.instance_method(:perform)
      method = method.super_method while method && [PerformWrapper, SidekiqCallbacks].include?(method.owner)
      arity = method ? method.arity : 0
      arity.negative? ? -arity - 1 : arity
    end

    # The reader and writer of a persisted attribute, once per class and name, in a module
    # prepended to the class (so the writer persists even where the class has its own).
    def define_attribute(klass, accessor)
      accessors = klass.instance_variable_get(:@acidic_attribute_methods) ||
                  klass.instance_variable_set(:@acidic_attribute_methods, Module.new.tap { |m| klass.prepend(m) })
      writer = :"#{accessor}="
      return if accessors.method_defined?(writer)

      klass.attr_reader accessor unless klass.method_defined?(accessor) || klass.private_method_defined?(accessor)
      accessors.define_method(writer) { |value| acidic_attribute_set(accessor, value) }
    end

    def wire_everything_up(klass)
      # Sidekiq may have been required after acidic_job (Gemfile order).
      Integrations.install_sidekiq if defined?(::Sidekiq)

      klass.attr_reader :staged_job_gid
      klass.attr_reader :arguments_for_perform

      # `perform_transactionally` class method
      klass.include PerformTransactionallyExtension

      # Our `perform` runs first to gather the arguments.
      klass.prepend PerformWrapper

      # ActiveJob-style callbacks for Sidekiq workers.
      klass.prepend SidekiqCallbacks unless klass.respond_to?(:after_perform)

      klass.after_perform :delete_staged_job_record, if: :staged_job_gid
    end
  end

  included do
    AcidicJob.wire_everything_up(self)
  end

  class_methods do
    def inherited(subclass)
      AcidicJob.wire_everything_up(subclass)
      super
    end

    # Sidekiq Pro: perform this worker inside a batch whose success calls back the class.
    def initiate(*args)
      operation = ::Sidekiq::Batch.new
      operation.on(:success, self, *args)
      operation.jobs do
        perform_async
      end
    end
  end

  # Run the workflow the block describes. Returns true when the run has succeeded
  # (also when it had finished before) or waits for awaited jobs.
  def idempotently(with: {})
    @_steps = []
    steps = yield
    steps = @_steps unless steps.is_a?(Array)
    raise NoDefinedSteps, "idempotently: the block defines no steps" if steps.nil? || steps.empty?

    steps.each { |s| Inputs.text(s["does"], "the step name") }

    MissingSteps.check(self, steps.map { |s| s["does"] })

    Runner.new(self, with, steps).call
  end

  def step(method_name, awaits: [])
    @_steps ||= []
    @_steps << { "does" => method_name.to_s, "awaits" => awaits }
    @_steps
  end

  def safely_finish_acidic_job
    Response.new
  end

  # The run's record, looked up through the model (AcidicJob::Key.find_by).
  def key
    @key ||= acidic_as_seen_by_step(
      if AcidicJob.config.database_url
        OwnedKey.find_by(idempotency_key: idempotency_key_value)
      else
        AcidicJob::Key.find_by(idempotency_key: idempotency_key_value)
      end
    )
  end

  def idempotency_key_value
    return @acidic_key_override if @acidic_key_override
    return job_id if defined?(job_id) && !job_id.nil?
    return jid if defined?(jid) && !jid.nil?

    Digest::SHA1.hexdigest [self.class.name, arguments_for_perform].flatten.join
  end

  private

  def delete_staged_job_record
    return unless staged_job_gid

    Outbox.acknowledge(staged_job_gid)
    true
  end

  # The core moves the row to the next step as its step transaction begins; a step sees
  # its record as 0.7.0 showed it: at the step being run.
  def acidic_as_seen_by_step(record)
    step = @acidic_current_step
    return record unless step && record.respond_to?(:recovery_point=)

    record.recovery_point = step
    record.clear_attribute_changes([:recovery_point]) if record.respond_to?(:clear_attribute_changes)
    record
  end

  def acidic_call_step(name)
    callable = respond_to?(name, true) ? method(name) : proc {}
    case callable.arity
    when 0, -1 then callable.call
    when 1 then callable.call(key)
    else raise ArgumentError, "step method #{name} must take 0 or 1 argument"
    end
  end

  # Each attribute gets a reader and a writer (defined once per class); `self.name = value`
  # inside a step persists with that step.
  def acidic_define_attributes(values)
    @acidic_attributes = values.dup
    values.each do |accessor, value|
      AcidicJob.define_attribute(self.class, accessor)
      instance_variable_set("@#{accessor}", value)
    end
    true
  end

  def acidic_attribute_set(accessor, value)
    instance_variable_set("@#{accessor}", value)
    if @acidic_attributes
      @acidic_attributes[accessor] = value
      @acidic_attributes_dirty = true
    end
    value
  end

  # How this run is enqueued again (recovery, the continuation after awaited jobs): this
  # job again with its own id, which is its idempotency key.
  def acidic_resume_description
    if defined?(::ActiveJob::Base) && is_a?(::ActiveJob::Base)
      data = serialize
      data["arguments"] = Array(data["arguments"]).reject { |a| a.is_a?(Hash) && a.key?("staged_job_gid") }
      ["activejob", self.class.name, Documents.serialized_job(data)]
    elsif defined?(::Sidekiq::Worker) && is_a?(::Sidekiq::Worker)
      ["sidekiq", self.class.name,
       Documents.job_args({ "args" => Array(arguments_for_perform), "jid" => idempotency_key_value })]
    end
  end

  def acidic_push_pro_batch(awaits, key_id)
    step_batch = ::Sidekiq::Batch.new
    step_batch.on(:success, "#{self.class.name}#step_done", { "key_id" => key_id })
    step_batch.jobs do
      awaits.each do |worker_name|
        worker = worker_name.is_a?(String) ? worker_name.constantize : worker_name
        case AcidicJob.perform_arity(worker)
        when 0 then worker.perform_async
        when 1 then worker.perform_async(key_id)
        else raise ArgumentError, "awaited job #{worker} must perform with 0 or 1 argument"
        end
      end
    end
  end

  # Sidekiq Pro batch success callback: resume the run.
  def step_done(_status, options)
    record = AcidicJob::Key.find(options["key_id"])
    @acidic_key_override = record.idempotency_key
    perform(*Array(record.job_args))
  end
end

AcidicJob::Integrations.install
