# frozen_string_literal: true

module AcidicJob
  # Pushing staged jobs to their queue, acknowledging them once performed, and draining
  # the ones that were committed but never pushed.
  module Outbox
    module_function

    # The core's enqueue callback: the payload is the YAML document of job_args.
    def push_staged(id, adapter, job_name, payload)
      push(id, adapter, job_name, Documents.load_job(payload))
    end

    # Push staged row `id`: {"staged_job_gid" => gid} is appended to the job's arguments
    # so that the job deletes (acknowledges) the row after it has performed.
    def push(id, adapter, job_name, job_args)
      gid = { "staged_job_gid" => Staged.gid_for(id) }
      case adapter
      when "activejob"
        require "active_job" unless defined?(::ActiveJob::Base) # (require checks files: every push)
        data = job_args.dup
        data["arguments"] = Array(data["arguments"]) + [gid]
        ::ActiveJob::Base.deserialize(data).enqueue
      when "sidekiq"
        Integrations.install_sidekiq_testing # sidekiq/testing may come after the workers
        item = job_args.is_a?(Hash) ? job_args.dup : { "args" => job_args }
        item["args"] = Array(item["args"]) + [gid]
        klass = job_name.safe_constantize
        item["class"] = klass.respond_to?(:get_sidekiq_options) ? klass : job_name
        ::Sidekiq::Client.push(item) or return false
      else
        raise UnknownJobAdapter, "unknown job adapter #{adapter.inspect} for #{job_name}"
      end
      true
    end

    # Delete the staged row named by `gid` (a missing row is not an error). For an
    # awaited job this counts its batch down; the last one stages the parent's
    # continuation.
    def acknowledge(gid)
      parsed = GlobalID.parse(gid)
      if parsed.nil? || parsed.model_name != Staged.name
        # Not ours: 0.7.0 located and deleted whatever the GlobalID named.
        GlobalID::Locator.locate(gid)&.delete
        return true
      end
      Stores.current.ack(Integer(parsed.model_id))
      true
    rescue ActiveRecord::RecordNotFound
      true
    end

    # Hand every staged job committed more than `older_than` seconds ago and never
    # acknowledged to its queue. Returns how many were pushed.
    def drain(older_than: AcidicJob.config.drain_older_than)
      store = Stores.current
      Events.refresh(store)
      store.drain(Inputs.milliseconds(older_than, "older_than"))
    end

    # Describe the job that `klass.perform_transactionally(*args)` stages:
    # [adapter, job_name, job_args].
    def describe(klass, args)
      if defined?(::ActiveJob::Base) && klass <= ::ActiveJob::Base
        ["activejob", klass.name, klass.new(*args).serialize]
      elsif defined?(::Sidekiq::Worker) && klass.include?(::Sidekiq::Worker)
        ["sidekiq", klass.name, args]
      else
        raise UnknownJobAdapter, "#{klass} is neither an ActiveJob job nor a Sidekiq worker"
      end
    end

    # Stage a job: inside a step, in the step's transaction (through the core); outside
    # one, through the Staged model (pushed after the surrounding transaction commits).
    def stage(adapter, job_name, job_args)
      run = AcidicJob.current_run
      if run
        doc = adapter == "activejob" ? Documents.serialized_job(job_args) : Documents.job_args(job_args)
        run.stage(adapter, job_name, doc)
      elsif AcidicJob.config.database_url
        push_unstaged(adapter, job_name, job_args)
      else
        Staged.create!(adapter: adapter, job_name: job_name, job_args: job_args)
      end
    end

    # Without ActiveRecord and outside a step there is no transaction to wait for.
    def push_unstaged(adapter, job_name, job_args)
      case adapter
      when "activejob" then ::ActiveJob::Base.deserialize(job_args).enqueue
      when "sidekiq" then ::Sidekiq::Client.push("class" => job_name, "args" => job_args)
      else raise UnknownJobAdapter, "unknown job adapter #{adapter.inspect}"
      end
    end
  end
end
