# frozen_string_literal: true

require "active_support/notifications"
require "active_support/log_subscriber"

module AcidicJob
  # ActiveSupport::Notifications events, fed from the core's event callback. Each is
  # published once the thing happened (the event itself takes no time; durations are in
  # the payload). Payloads (every key always present unless marked "when known"):
  #
  #   acquire.acidic_job     run_id, key, job_name, step (the recovery point the run starts
  #                          at), attempt, resumed (true when the run existed before)
  #   step.acidic_job        run_id, key, job_name, step, duration (ms, Float),
  #                          outcome (:committed or :failed)
  #   step_failed.acidic_job run_id, key, job_name, step, duration, code (:AJ_ESTEP for an
  #                          exception of the step, else the core's), message,
  #                          exception ([class name, message]) and exception_object when
  #                          the step raised
  #   staged.acidic_job      run_id, key, job_name, adapter, job (the staged payload)
  #   enqueued.acidic_job    staged_id, adapter, job, accepted (false: left to a drain)
  #   drained.acidic_job     count
  #   recovered.acidic_job   run_id, key, job_name, adapter, job, attempt, dead (true: the
  #                          run reached max_attempts and is dead, not requeued)
  module Events
    NAMES = {
      acquired: "acquire.acidic_job",
      step_committed: "step.acidic_job",
      step_failed: "step_failed.acidic_job",
      staged: "staged.acidic_job",
      enqueued: "enqueued.acidic_job",
      drained: "drained.acidic_job",
      recovered: "recovered.acidic_job"
    }.freeze
    TYPES = Native::Store::EVENT_TYPES
    # The events each type of the core's feeds (a failed step is also a step event).
    FEEDS = NAMES.to_h do |type, name|
      [type, (type == :step_failed ? [name, NAMES[:step_committed]] : [name]).freeze]
    end.freeze
    BITS = NAMES.to_h { |type, _| [type, 1 << TYPES.fetch(type)] }.freeze

    module_function

    def attach(store)
      store.events = method(:publish)
      refresh(store)
    end

    # Only the events someone listens to cross from the core (checked per unit of work:
    # subscribers come and go).
    def refresh(store)
      mask = 0
      BITS.each_pair { |type, bit| mask |= bit if wanted?(type) }
      store.event_mask = mask
    end

    # Someone listens: a subscriber other than the log subscriber, or the log subscriber
    # with a logger that writes its level.
    def wanted?(type)
      notifier = ActiveSupport::Notifications.notifier
      FEEDS.fetch(type).any? do |name|
        listeners = notifier.listeners_for(name)
        next false if listeners.empty?
        next true if listeners.size > LogSubscriber.subscriptions_to(name)

        logger = AcidicJob.config.logger
        type == :step_committed ? logger.debug? : logger.warn?
      end
    end

    def publish(event)
      type = event[:type]
      case type
      when :step_committed then instrument(NAMES[type], step_payload(event, :committed))
      when :step_failed
        payload = step_payload(event, :failed)
        instrument(NAMES[:step_committed], payload)
        instrument(NAMES[:step_failed], failure_payload(event, payload))
      when :acquired
        instrument(NAMES[type], run_payload(event).merge!(step: event[:step], attempt: event[:attempt],
                                                           resumed: event[:resumed]))
      when :staged
        instrument(NAMES[type], run_payload(event).merge!(adapter: event[:adapter], job: event[:staged_job]))
      when :enqueued
        instrument(NAMES[type], staged_id: event[:staged_id], adapter: event[:adapter],
                                job: event[:staged_job], accepted: event[:accepted])
      when :drained then instrument(NAMES[type], count: event[:count])
      when :recovered
        instrument(NAMES[type], run_payload(event).merge!(adapter: event[:adapter], job: event[:staged_job],
                                                           attempt: event[:attempt], dead: event[:dead]))
      end
    rescue StandardError => e
      AcidicJob.config.logger.error("[acidic_job] a subscriber of #{type} raised #{e.class}: #{e.message}")
    end

    def instrument(name, payload)
      ActiveSupport::Notifications.instrument(name, payload)
    end

    def run_payload(event)
      { run_id: event[:run_id], key: event[:key], job_name: event[:job_name] }
    end

    def step_payload(event, outcome)
      run_payload(event).merge!(step: event[:step], duration: event[:duration_us].to_i / 1000.0,
                                outcome: outcome)
    end

    def failure_payload(event, step_payload)
      payload = step_payload.except(:outcome).merge!(code: event[:code], message: event[:message])
      error = Thread.current[:acidic_job_step_error]
      if error
        payload[:exception] = [error.class.name, error.message]
        payload[:exception_object] = error
      end
      payload
    end
  end

  # One line per step at debug level, one per failed step at warn, through
  # AcidicJob.config.logger.
  class LogSubscriber < ActiveSupport::LogSubscriber
    def step(event)
      return unless event.payload[:outcome] == :committed

      debug do
        p = event.payload
        format("[acidic_job] %<job>s %<key>s step %<step>s committed in %<ms>.1fms",
               job: p[:job_name], key: p[:key], step: p[:step], ms: p[:duration])
      end
    end

    def step_failed(event)
      warn do
        p = event.payload
        cause = p[:exception] ? "#{p[:exception][0]}: #{p[:exception][1]}" : "#{p[:code]}: #{p[:message]}"
        format("[acidic_job] %<job>s %<key>s step %<step>s failed after %<ms>.1fms (%<cause>s)",
               job: p[:job_name], key: p[:key], step: p[:step], ms: p[:duration], cause: cause)
      end
    end

    def logger
      AcidicJob.config.logger
    end

    SUBSCRIBED = %w[step.acidic_job step_failed.acidic_job].freeze

    # How many of an event's listeners are this subscriber (0 or 1).
    def self.subscriptions_to(name)
      SUBSCRIBED.include?(name) ? 1 : 0
    end
  end
end

AcidicJob::LogSubscriber.attach_to :acidic_job
