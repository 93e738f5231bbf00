# frozen_string_literal: true

require_relative "test_helper"

class StagingTest < ActiveSupport::TestCase
  setup do
    @user = User.create!(email: "rider@example.com", stripe_customer_id: "cus_42")
    @params = { "origin" => "Mitte", "target" => "Kreuzberg" }
  end

  test "jobs staged in a step are enqueued after the step commits" do
    RideCreateJob.perform_now(@user.id, @params)

    ride = Ride.last
    assert_enqueued_jobs 2
    assert_enqueued_with(job: SendRideReceiptJob)
    job = enqueued_jobs.find { |j| j[:job] == SendRideReceiptJob }
    assert_equal ride.id, job[:args].first
    assert_equal 2, AcidicJob::Staged.count
  end

  test "perform_enqueued_jobs performs the staged jobs and they delete their staged rows" do
    perform_enqueued_jobs do
      RideCreateJob.perform_later(@user.id, @params)
    end

    ride = Ride.last
    assert_performed_jobs 3
    assert_performed_with(job: SendRideReceiptJob)
    assert_performed_with(job: ActionMailer::MailDeliveryJob)
    assert_equal ["created", "receipt_sent"], Audit.order(:id).pluck(:verb)
    assert_equal 1, ActionMailer::Base.deliveries.size
    assert_equal ["rider@example.com"], ActionMailer::Base.deliveries.last.to
    assert_equal "Ride #{ride.id} from Mitte", ActionMailer::Base.deliveries.last.body.to_s
    assert_equal 0, AcidicJob::Staged.count
    assert AcidicJob::Key.last.succeeded?
  end

  test "deliver_transactionally stages the mail delivery job" do
    RideCreateJob.perform_now(@user.id, @params)

    assert_enqueued_with(job: ActionMailer::MailDeliveryJob)
    assert_equal 0, ActionMailer::Base.deliveries.size
    perform_enqueued_jobs
    assert_equal 1, ActionMailer::Base.deliveries.size
    assert_equal 0, AcidicJob::Staged.count
  end

  test "assert_enqueued_with sees a job staged outside a job once its transaction commits" do
    ride = @user.rides.create!(origin: "Mitte")

    assert_enqueued_with(job: SendRideReceiptJob) do
      ActiveRecord::Base.transaction do
        SendRideReceiptJob.perform_transactionally(ride.id)
        assert_no_enqueued_jobs only: SendRideReceiptJob
      end
    end
    assert_equal 1, AcidicJob::Staged.count
  end

  test "a job staged in a transaction that rolls back is never enqueued" do
    ride = @user.rides.create!(origin: "Mitte")

    ActiveRecord::Base.transaction do
      SendRideReceiptJob.perform_transactionally(ride.id)
      raise ActiveRecord::Rollback
    end

    assert_no_enqueued_jobs
    assert_equal 0, AcidicJob::Staged.count
  end

  test "a step that fails after staging enqueues nothing" do
    Stripe.declines = 1

    assert_raises(Stripe::CardError) { StageThenChargeJob.perform_now(@user.id) }

    assert_no_enqueued_jobs
    assert_equal 0, AcidicJob::Staged.count
  end

  test "perform_transactionally works for plain ActiveJob jobs too" do
    assert_enqueued_with(job: PlainAuditJob, args: ->(args) { args.first == "plain" }) do
      PlainAuditJob.perform_transactionally("plain")
    end
    perform_enqueued_jobs
    assert_equal ["plain"], Audit.pluck(:verb)
    assert_equal 0, AcidicJob::Staged.count
  end
end

class PlainAuditJob < ActiveJob::Base
  def perform(verb)
    Audit.create!(verb: verb)
  end
end

class StageThenChargeJob < ActiveJob::Base
  include AcidicJob

  def perform(user_id)
    @user = User.find(user_id)
    idempotently do
      step :stage_and_charge
    end
  end

  def stage_and_charge
    PlainAuditJob.perform_transactionally("charged")
    Stripe.charge(amount: 1, customer: @user.stripe_customer_id)
  end
end

