# frozen_string_literal: true

# The workers of the kill test: three steps, each writing one application row (and
# pausing, so that kills land inside steps), the last staging a receipt worker.
class StepRow < ActiveRecord::Base; end
class ReceiptRow < ActiveRecord::Base; end

class KillWorkflowWorker
  include Sidekiq::Worker
  include AcidicJob
  sidekiq_options queue: "kill", retry: 25
  sidekiq_retry_in { 1 }

  def perform(label)
    idempotently with: { label: label } do
      step :reserve
      step :charge
      step :confirm
    end
  end

  def reserve
    write_row("reserve")
  end

  def charge
    write_row("charge")
  end

  def confirm
    write_row("confirm")
    KillReceiptWorker.perform_transactionally(@label)
  end

  private

  def write_row(step)
    StepRow.create!(label: @label, step: step)
    sleep(rand * 0.05)
  end
end

class KillReceiptWorker
  include Sidekiq::Worker
  sidekiq_options queue: "kill", retry: 25
  sidekiq_retry_in { 1 }

  def perform(label)
    ReceiptRow.create!(label: label)
  end
end
