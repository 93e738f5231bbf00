# frozen_string_literal: true

module AcidicJob
  # Which run a job works on. acidic_job 0.7.0 ran a job on the record that
  # `AcidicJob::Key.find_by(idempotency_key: value)` returned, and applications' test
  # suites rely on it: they stub find_by to start a job from a key they made by hand (with
  # its own idempotency_key, recovery point, lock and arguments). That record's id goes to
  # the core (aj_run_params.run_id), which then runs the job on that row.
  #
  # While find_by is ActiveRecord's own, the record it would return is the row the core
  # finds by the key itself, in the step's transaction: the lookup is left to the core
  # (no query of its own per job).
  module KeyLookup
    module_function

    # [idempotency key, run id or nil] for `job`. The key is remembered on the job when it
    # differs, so that its continuation and its `key` reader name the same run.
    def run_for(job)
      value = job.idempotency_key_value.to_s
      return [value, nil] if AcidicJob.config.database_url || !find_by_redefined?

      record = AcidicJob::Key.find_by(idempotency_key: value)
      return [value, nil] unless record.respond_to?(:id) && record.id

      found = record.respond_to?(:idempotency_key) ? record.idempotency_key.to_s : ""
      return [value, record.id] if found.empty? || found == value

      job.instance_variable_set(:@acidic_key_override, found)
      [found, record.id]
    end

    # find_by replaced on AcidicJob::Key (a test's stub, an application's override).
    # A stub that was removed leaves ActiveRecord's own method aliased on the model's
    # singleton class (Minitest's and RSpec's restore do): still ActiveRecord's, by its source.
    def find_by_redefined?
      method = AcidicJob::Key.method(:find_by)
      return false if method.owner.name.to_s.start_with?("ActiveRecord::")

      !method.source_location&.first.to_s.include?("/active_record/")
    end
  end
end
