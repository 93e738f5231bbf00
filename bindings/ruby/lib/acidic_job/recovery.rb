# frozen_string_literal: true

module AcidicJob
  # Recovery (docs/decisions/012-recovery.md): the core hands stranded and due failed runs
  # back to their queue through the same enqueue path as staged jobs. Workers sweep every
  # `config.recover_interval` seconds (default 60; nil or 0: never):
  #   - Sidekiq servers (Sidekiq workers and ActiveJob on Sidekiq): a thread started by a
  #     startup hook and stopped at shutdown;
  #   - other ActiveJob backends: the process that performs an acidic job sweeps after it
  #     once the interval has passed since its last sweep (not under ActiveJob's test and
  #     inline adapters, whose jobs a sweep would perform in the middle of a test).
  # Many processes sweeping at once is safe: the core hands a run out once per lock timeout.
  module Recovery
    Result = Struct.new(:requeued, :dead)

    @lock = Mutex.new
    @last = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    @thread = nil

    class << self
      def sweep(limit: 0)
        store = Stores.current
        Events.refresh(store)
        requeued, dead = store.recover(limit)
        Result.new(requeued, dead)
      end

      def interval
        value = AcidicJob.config.recover_interval
        value && value.to_f.positive? ? value.to_f : nil
      end

      # Sidekiq server startup: sweep every interval in a thread of its own.
      def start
        return unless interval

        @lock.synchronize do
          next if @thread&.alive?

          @thread = Thread.new do
            Thread.current.name = "acidic_job recovery"
            loop do
              sleep(interval || 60)
              sweep_safely if interval
            end
          end
        end
      end

      def stop
        @lock.synchronize do
          @thread&.kill
          @thread = nil
        end
      end

      def running?
        @thread&.alive? || false
      end

      # After an ActiveJob run: sweep when the interval has passed (see above).
      def after_job(job)
        return unless interval && !running? && defined?(::ActiveJob::Base) && job.is_a?(::ActiveJob::Base)
        return if in_process_adapter?(job.class.queue_adapter)

        now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        due = @lock.synchronize { now - @last >= interval && (@last = now) }
        sweep_safely if due
      end

      private

      # Asked after every job: the answer is kept per adapter class (a test suite makes a
      # new adapter for each test, an application has a few classes).
      def in_process_adapter?(adapter)
        known = (@in_process ||= {})
        known.fetch(adapter.class) do
          names = %w[ActiveJob::QueueAdapters::TestAdapter ActiveJob::QueueAdapters::InlineAdapter]
          known[adapter.class] = names.any? { |name| (klass = name.safe_constantize) && adapter.is_a?(klass) }
        end
      end

      def sweep_safely
        result = if AcidicJob.config.database_url || !defined?(::ActiveRecord::Base)
                   sweep
                 else
                   ::ActiveRecord::Base.connection_pool.with_connection { sweep }
                 end
        if result.requeued.positive? || result.dead.positive?
          AcidicJob.config.logger.info(
            "[acidic_job] recovery: #{result.requeued} run(s) handed back to their queue, #{result.dead} dead"
          )
        end
        result
      rescue StandardError => e
        AcidicJob.config.logger.error("[acidic_job] recovery failed: #{e.class}: #{e.message}")
        nil
      end
    end
  end
end
