# frozen_string_literal: true

# Jobs of the in-process suites (ActiveJob with the test adapter, Sidekiq workers called
# directly). The same classes as an application written for acidic_job 0.7.0.

class StripeError < StandardError; end

class RideCreateJob < ActiveJob::Base
  include AcidicJob

  cattr_accessor :stripe_failures, default: 0

  def perform(user, amount)
    idempotently with: { user: user, amount: amount, ride: nil } do
      step :create_ride_and_audit_record
      step :create_stripe_charge
      step :send_receipt
    end
  end

  private

  def create_ride_and_audit_record
    Trace << :create_ride
    self.ride = Ride.create!(user: @user, amount: @amount)
    Audit.create!(event: "ride_created")
  end

  def create_stripe_charge
    Trace << :charge
    if self.class.stripe_failures.positive?
      self.class.stripe_failures -= 1
      Audit.create!(event: "charge_attempt") # rolled back with the step
      raise StripeError, "card declined"
    end
    @ride.update!(stripe_charge_id: "ch_#{@ride.id}")
  end

  def send_receipt
    Trace << :receipt
    ReceiptJob.perform_transactionally(@ride.id)
  end
end

class ReceiptJob < ActiveJob::Base
  include AcidicJob

  def perform(ride_id)
    Trace << [:receipt_sent, ride_id]
  end
end

# A plain ActiveJob job (no AcidicJob): awaited or staged all the same.
class PlainJob < ActiveJob::Base
  def perform(*args)
    Trace << [:plain, args]
  end
end

class KeyedChildJob < ActiveJob::Base
  def perform(key_id)
    Trace << [:child, key_id]
  end
end

class AwaitingJob < ActiveJob::Base
  include AcidicJob

  def perform(label)
    idempotently with: { label: label } do
      step :fan_out, awaits: [PlainJob, "KeyedChildJob"]
      step :fan_in
    end
  end

  def fan_out
    Trace << :fan_out
  end

  def fan_in
    Trace << :fan_in
    Audit.create!(event: "fan_in #{@label}")
  end
end

class WorkerWithSteps
  include Sidekiq::Worker
  include AcidicJob

  def perform(label)
    idempotently with: { label: label, counter: 0 } do
      step :first
      step :second
    end
  end

  def first
    Trace << :first
    self.counter = counter + 1
  end

  def second
    Trace << [:second, counter]
  end
end

class PlainWorker
  include Sidekiq::Worker

  def perform(*args)
    Trace << [:plain_worker, args]
  end
end

# Without ActiveRecord sharing: acidic_job's own connection (database_url), steps write
# with AcidicJob.exec and commit with the step.
class OwnedRideJob < ActiveJob::Base
  include AcidicJob

  cattr_accessor :failures, default: 0

  def perform(user)
    idempotently with: { user: user, ride_id: nil } do
      step :create_ride
      step :charge
      step :notify
    end
  end

  def create_ride
    Trace << :create_ride
    AcidicJob.exec("INSERT INTO rides (user, amount, created_at, updated_at) VALUES (?, 1, ?, ?)"
                     .sub("user", '"user"'), @user, now, now)
    self.ride_id = AcidicJob.exec("SELECT max(id) FROM rides")[0][0]
  end

  def charge
    Trace << :charge
    AcidicJob.exec("INSERT INTO audits (event, created_at, updated_at) VALUES ('charge', ?, ?)", now, now)
    if self.class.failures.positive?
      self.class.failures -= 1
      raise StripeError, "declined"
    end
  end

  def notify
    Trace << [:notify, @ride_id]
    ReceiptJob.perform_transactionally(@ride_id)
  end

  private

  def now
    Time.now.utc.strftime("%Y-%m-%d %H:%M:%S.%6N")
  end
end
