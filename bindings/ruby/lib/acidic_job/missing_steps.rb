# frozen_string_literal: true

module AcidicJob
  # A step whose method does not exist: acidic_job 0.7.0 skipped it silently, and so do
  # we, with one warning per job class naming the steps (a misspelt name is the usual
  # cause). `config.strict_steps = true` raises MissingStepMethod instead, before the run
  # is acquired.
  module MissingSteps
    @warned = {}
    @lock = Mutex.new

    class << self
      def check(job, step_names)
        missing = step_names.map(&:to_s).uniq.reject { |name| job.respond_to?(name, true) }
        return if missing.empty?

        job_class = job.class.name || job.class.inspect
        described = missing.map { |name| ":#{name}" }.join(", ")
        if AcidicJob.config.strict_steps
          raise MissingStepMethod, "#{job_class} has no method for step #{described} (strict_steps is on)"
        end

        warn_once(job_class, described)
      end

      private

      def warn_once(job_class, described)
        first = @lock.synchronize { @warned[job_class] ? false : (@warned[job_class] = true) }
        return unless first

        AcidicJob.config.logger.warn(
          "[acidic_job] #{job_class} has no method for step #{described}: it is skipped, as in " \
          "acidic_job 0.7.0 (a misspelt name?). Set AcidicJob.config.strict_steps = true to raise instead."
        )
      end
    end
  end
end
