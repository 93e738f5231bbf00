# frozen_string_literal: true

module AcidicJob
  # `perform_transactionally(*args)`: stage this job in the current transaction (the
  # step's, inside a step); it is pushed to the queue after commit.
  module PerformTransactionallyExtension
    extend ActiveSupport::Concern

    class_methods do
      def perform_transactionally(*args)
        adapter, job_name, job_args = Outbox.describe(self, args)
        Outbox.stage(adapter, job_name, job_args)
      end
    end
  end
end
