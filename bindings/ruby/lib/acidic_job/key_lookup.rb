# frozen_string_literal: true

module AcidicJob
  # Which run a job works on. acidic_job 0.7.0 ran a job on the record that
  # `AcidicJob::Key.find_by(idempotency_key: value)` returned, and applications' test
  # suites rely on it: they stub find_by to start a job from a key they made by hand
  # (with its own idempotency_key, recovery point, lock and arguments). The core acquires
  # a run by its idempotency key, so the run is named by the key of that record.
  #
  # Interim: once the core acquires by row id (aj_run_params.run_id), the record's id is
  # handed to the core instead and this lookup's result is passed through unchanged.
  module KeyLookup
    module_function

    # The idempotency key to acquire for `job`; remembered on the job, so that its
    # continuation and its `key` reader name the same run.
    def idempotency_key_for(job)
      value = job.idempotency_key_value.to_s
      return value if AcidicJob.config.database_url # no ActiveRecord model to ask

      record = AcidicJob::Key.find_by(idempotency_key: value)
      found = record.respond_to?(:idempotency_key) ? record.idempotency_key.to_s : ""
      return value if found.empty? || found == value

      job.instance_variable_set(:@acidic_key_override, found)
      found
    end
  end
end
