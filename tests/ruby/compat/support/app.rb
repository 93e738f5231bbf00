# frozen_string_literal: true

# The application under test: the ride-booking example of acidic_job 0.7.0's README
# (models, a mailer, ActiveJob jobs and Sidekiq workers).

class User < ActiveRecord::Base
  has_many :rides
end

class Ride < ActiveRecord::Base
  belongs_to :user
end

class Audit < ActiveRecord::Base
  belongs_to :auditable, polymorphic: true
end

# The payment provider: an in-memory stand-in that records each charge and can be told
# to decline the next ones.
module Stripe
  class CardError < StandardError; end

  Charge = Struct.new(:id, :amount, :customer, keyword_init: true)

  class << self
    attr_accessor :charges, :declines

    def reset!
      self.charges = []
      self.declines = 0
    end

    def charge(amount:, customer:)
      if declines.positive?
        self.declines -= 1
        raise CardError, "Your card was declined."
      end
      Charge.new(id: "ch_#{charges.size + 1}", amount: amount, customer: customer).tap { |c| charges << c }
    end
  end
  reset!
end

class RideMailer < ActionMailer::Base
  default from: "rides@example.com"

  def confirm_charge
    @ride = params[:ride]
    mail(to: @ride.user.email, subject: "Your ride", body: "Ride #{@ride.id} from #{@ride.origin}")
  end
end

class SendRideReceiptJob < ActiveJob::Base
  include AcidicJob

  def perform(ride_id)
    Audit.create!(auditable: Ride.find(ride_id), verb: "receipt_sent")
  end
end

class RideCreateJob < ActiveJob::Base
  include AcidicJob

  def perform(user_id, ride_params)
    user = User.find(user_id)

    idempotently with: { user: user, params: ride_params, ride: nil } do
      step :create_ride_and_audit_record
      step :create_stripe_charge
      step :send_receipt
    end
  end

  private

  def create_ride_and_audit_record
    self.ride = @user.rides.create!(origin: @params["origin"], target: @params["target"])
    Audit.create!(auditable: @ride, verb: "created")
  end

  def create_stripe_charge
    charge = Stripe.charge(amount: 20_00, customer: @user.stripe_customer_id)
    @ride.update!(stripe_charge_id: charge.id)
  end

  def send_receipt
    RideMailer.with(ride: @ride).confirm_charge.deliver_transactionally
    SendRideReceiptJob.perform_transactionally(@ride.id)
  end
end

# A job whose steps the tests redefine at run time.
class ConfigurableJob < ActiveJob::Base
  include AcidicJob

  def perform(label)
    idempotently with: { label: label } do
      step :first_step
      step :second_step
      step :third_step
    end
  end

  def first_step
    Audit.create!(verb: "#{@label}: first")
  end

  def second_step
    Audit.create!(verb: "#{@label}: second")
  end

  def third_step
    Audit.create!(verb: "#{@label}: third")
  end
end

class FinishEarlyJob < ActiveJob::Base
  include AcidicJob

  def perform
    idempotently do
      step :check
      step :never_reached
    end
  end

  def check
    Audit.create!(verb: "checked")
    safely_finish_acidic_job
  end

  def never_reached
    Audit.create!(verb: "never")
  end
end

# --- Sidekiq workers ---------------------------------------------------------------

class RideReceiptWorker
  include Sidekiq::Worker
  include AcidicJob

  def perform(ride_id)
    Audit.create!(auditable: Ride.find(ride_id), verb: "sidekiq_receipt")
  end
end

class PlainNotifyWorker
  include Sidekiq::Worker

  def perform(ride_id)
    Audit.create!(auditable: Ride.find(ride_id), verb: "notified")
  end
end

class RideCreateWorker
  include Sidekiq::Worker
  include AcidicJob

  def perform(user_id, ride_params)
    @user = User.find(user_id)

    idempotently with: { ride_params: ride_params, ride_id: nil } do
      step :create_ride
      step :charge
      step :send_receipt
    end
  end

  private

  def create_ride
    ride = @user.rides.create!(origin: @ride_params["origin"], target: @ride_params["target"])
    self.ride_id = ride.id
  end

  def charge
    charge = Stripe.charge(amount: 10_00, customer: @user.stripe_customer_id)
    Ride.find(@ride_id).update!(stripe_charge_id: charge.id)
  end

  def send_receipt
    RideReceiptWorker.perform_transactionally(@ride_id)
    PlainNotifyWorker.perform_transactionally(@ride_id)
  end
end
