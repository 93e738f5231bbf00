# frozen_string_literal: true

require "active_record"

module AcidicJob
  # What a run's row says about its outcome, shared by Key (ActiveRecord) and OwnedKey
  # (acidic_job's own connection).
  module KeyStatus
    def finished?
      recovery_point.to_s == Key::RECOVERY_POINT_FINISHED
    end

    def succeeded?
      finished? && !failed?
    end

    def failed?
      error_object.present?
    end
  end

  # The run of a workflow under an idempotency key (table acidic_job_keys, as in 0.7.0).
  # The core writes these rows; the model reads them (and 0.7.0's rows) back.
  class Key < ActiveRecord::Base
    RECOVERY_POINT_FINISHED = "FINISHED"

    self.table_name = "acidic_job_keys"

    serialize :error_object, AcidicJob::YAMLCoder
    serialize :job_args, AcidicJob::YAMLCoder
    serialize :workflow, AcidicJob::WorkflowCoder
    store :attr_accessors, coder: AcidicJob::YAMLCoder

    validates :idempotency_key, presence: true, uniqueness: { scope: %i[job_name job_args] }
    validates :job_name, presence: true
    validates :last_run_at, presence: true
    validates :recovery_point, presence: true

    include KeyStatus
  end
end
