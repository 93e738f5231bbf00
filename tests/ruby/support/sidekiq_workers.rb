# frozen_string_literal: true

# Workers of the Sidekiq process tests. They record what they do in the database (the
# audits table), which the test process reads.

module SqFlags
  module_function

  def dir
    ENV.fetch("AJ_TEST_FLAGS")
  end

  def path(name)
    File.join(dir, name)
  end

  def set?(name)
    File.exist?(path(name))
  end

  def audit(event)
    Audit.create!(event: event)
  end
end

class SqRideWorker
  include Sidekiq::Worker
  include AcidicJob
  sidekiq_options queue: ENV.fetch("AJ_TEST_QUEUE", "acidic"), retry: 5
  sidekiq_retry_in { 1 }

  def perform(user)
    idempotently with: { user: user, ride: nil } do
      step :create_ride
      step :charge
      step :send_receipt
    end
  end

  def create_ride
    self.ride = Ride.create!(user: @user, amount: 1)
    SqFlags.audit("ride #{@user}")
  end

  def charge
    SqFlags.audit("charge attempt #{@user}") # rolled back when the charge fails
    if SqFlags.set?("fail-charge-#{@user}")
      File.delete(SqFlags.path("fail-charge-#{@user}"))
      raise StripeError, "declined"
    end
    @ride.update!(stripe_charge_id: "ch_#{@ride.id}")
  end

  def send_receipt
    SqReceiptWorker.perform_transactionally(@ride.id)
  end
end

class SqReceiptWorker
  include Sidekiq::Worker
  include AcidicJob
  sidekiq_options queue: ENV.fetch("AJ_TEST_QUEUE", "acidic")

  def perform(ride_id)
    SqFlags.audit("receipt #{ride_id}")
  end
end

# Plain workers (no AcidicJob), awaited.
class SqChildA
  include Sidekiq::Worker
  sidekiq_options queue: ENV.fetch("AJ_TEST_QUEUE", "acidic")

  def perform
    SqFlags.audit("child a")
  end
end

class SqChildB
  include Sidekiq::Worker
  sidekiq_options queue: ENV.fetch("AJ_TEST_QUEUE", "acidic")

  def perform(key_id)
    SqFlags.audit("child b #{key_id}")
  end
end

class SqAwaitingWorker
  include Sidekiq::Worker
  include AcidicJob
  sidekiq_options queue: ENV.fetch("AJ_TEST_QUEUE", "acidic")

  def perform(label)
    idempotently with: { label: label } do
      step :fan_out, awaits: [SqChildA, "SqChildB"]
      step :fan_in
    end
  end

  def fan_out
    SqFlags.audit("fan out #{@label}")
  end

  def fan_in
    SqFlags.audit("fan in #{@label}")
  end
end

# Writes in its second step, then hangs there (uncommitted) while the hang flag exists.
class SqHangWorker
  include Sidekiq::Worker
  include AcidicJob
  sidekiq_options queue: ENV.fetch("AJ_TEST_QUEUE", "acidic"), retry: false

  def perform(label)
    idempotently do
      step :first
      step :second
    end
  end

  def first
    SqFlags.audit("first #{arguments_for_perform.first}")
  end

  def second
    Ride.create!(user: arguments_for_perform.first, amount: 2)
    return unless SqFlags.set?("hang")

    File.write(SqFlags.path("inside-second"), Process.pid.to_s)
    sleep
  end
end

class SqCallbacksWorker
  include Sidekiq::Worker
  include AcidicJob
  sidekiq_options queue: ENV.fetch("AJ_TEST_QUEUE", "acidic")

  before_perform { SqFlags.audit("before") }
  after_perform { SqFlags.audit("after") }

  def perform
    idempotently { step :work }
  end

  def work
    SqFlags.audit("work")
  end
end
