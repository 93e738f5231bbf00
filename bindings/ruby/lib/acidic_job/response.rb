# frozen_string_literal: true

module AcidicJob
  # What a step returns to end the workflow early (safely_finish_acidic_job), as in 0.7.0.
  class Response
    def call(**)
      true
    end
  end

  # 0.7.0's "continue at this step" value, kept for applications that reference it.
  class RecoveryPoint
    attr_reader :name

    def initialize(name)
      @name = name
    end
  end
end
