# frozen_string_literal: true

module AcidicJob
  # The base of every acidic_job error. Errors raised by the C core carry the core's
  # code name in #code (e.g. :AJ_ELOCKED); the others have nil.
  class Error < StandardError
    attr_reader :code
  end

  # --- the names of acidic_job 0.7.0 ---
  class MismatchedIdempotencyKeyAndJobArguments < Error; end # AJ_EMISMATCH
  class LockedIdempotencyKey < Error; end                    # AJ_ELOCKED
  class UnknownRecoveryPoint < Error; end                    # AJ_EUNKNOWN_RECOVERY_POINT
  class UnknownAtomicPhaseType < Error; end
  class SerializedTransactionConflict < Error; end           # AJ_ECONFLICT
  class UnknownJobAdapter < Error; end
  class NoDefinedSteps < Error; end                          # AJ_ENO_STEPS

  # --- added: one class per remaining core code ---
  class DuplicateStepName < Error; end                       # AJ_EDUPLICATE_STEP
  class InvalidArgument < Error; end                         # AJ_EINVALID
  class OutOfMemory < Error; end                             # AJ_ENOMEM
  class Misuse < Error; end                                  # AJ_EMISUSE
  class DatabaseError < Error; end                           # AJ_EDATABASE
  class StepFailed < Error; end                              # AJ_ESTEP
  class NotFound < Error; end                                # AJ_ENOTFOUND
  class SchemaError < Error; end                             # AJ_ESCHEMA
  class StateError < Error; end                              # AJ_ESTATE: the action does not apply to the run
  class MissingStepMethod < Error; end                       # config.strict_steps: a step without a method
  # A run's attr_accessors cannot be decoded (YAML syntax, a class that is not loaded):
  # the run is unlocked with this error recorded, and nothing of it runs.
  class UndecodableAttributes < Error; end
  # AJ_ERROR (unclassified) raises AcidicJob::Error itself.
end
