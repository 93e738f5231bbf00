# frozen_string_literal: true

require_relative "test_helper"

class RideCreateJobTest < ActiveSupport::TestCase
  setup do
    @user = User.create!(email: "user@example.com", stripe_customer_id: "cus_123")
    @params = { "origin" => "Alexanderplatz", "target" => "BER" }
  end

  def create_key(recovery_point:, **attributes)
    AcidicJob::Key.create!(
      {
        idempotency_key: "XXXX_IDEMPOTENCY_KEY",
        locked_at: nil,
        last_run_at: Time.current,
        recovery_point: recovery_point,
        job_name: "RideCreateJob",
        job_args: [@user.id, @params]
      }.merge(attributes)
    )
  end

  def run_with_key(key)
    AcidicJob::Key.stub(:find_by, ->(*) { key }) do
      RideCreateJob.perform_now(@user.id, @params)
    end
  end

  test "a new job runs every step once and records its key" do
    result = RideCreateJob.perform_now(@user.id, @params)

    assert_equal true, result
    assert_equal 1, Ride.count
    assert_equal ["created"], Audit.pluck(:verb)
    assert_equal 1, Stripe.charges.size
    key = AcidicJob::Key.last
    assert key.finished?
    assert key.succeeded?
    assert_nil key.locked_at
    assert_equal [@user.id, @params], key.job_args
    assert_equal Ride.last, key.attr_accessors["ride"]
    assert_equal %w[create_ride_and_audit_record create_stripe_charge send_receipt], key.workflow.keys
    assert_equal "FINISHED", key.workflow["send_receipt"]["then"]
    assert_enqueued_jobs 2
    assert_equal 2, AcidicJob::Staged.count
  end

  test "a key at the first step runs the whole workflow" do
    key = create_key(recovery_point: :create_ride_and_audit_record)

    assert_equal true, run_with_key(key)

    key.reload
    assert key.succeeded?
    assert_equal 1, Ride.count
    assert_equal 1, Stripe.charges.size
    assert_equal Ride.last, key.attr_accessors["ride"]
    assert_equal 1, AcidicJob::Key.count
  end

  test "a key at the charge step resumes there with its stored attributes" do
    ride = @user.rides.create!(origin: "Alexanderplatz", target: "BER")
    key = create_key(recovery_point: :create_stripe_charge,
                     attr_accessors: { "user" => @user, "params" => @params, "ride" => ride })

    assert_equal true, run_with_key(key)

    assert_equal 1, Ride.count, "create_ride_and_audit_record did not run again"
    assert_equal [], Audit.where(verb: "created").to_a
    assert_equal "ch_1", ride.reload.stripe_charge_id
    assert key.reload.succeeded?
    assert_equal 2, AcidicJob::Staged.count
  end

  test "a key at the last step only sends the receipt" do
    ride = @user.rides.create!(origin: "Alexanderplatz", target: "BER", stripe_charge_id: "ch_earlier")
    key = create_key(recovery_point: "send_receipt",
                     attr_accessors: { "user" => @user, "params" => @params, "ride" => ride })

    assert_equal true, run_with_key(key)

    assert_empty Stripe.charges
    assert key.reload.succeeded?
    assert_enqueued_with(job: SendRideReceiptJob)
    assert_enqueued_with(job: ActionMailer::MailDeliveryJob)
  end

  test "a key with a 0.7.0 workflow (YAML, symbol values) resumes by its recovery point" do
    ride = @user.rides.create!(origin: "Alexanderplatz", target: "BER")
    workflow = {
      "create_ride_and_audit_record" => { "does" => :create_ride_and_audit_record, "awaits" => [], "then" => :create_stripe_charge },
      "create_stripe_charge" => { "does" => :create_stripe_charge, "awaits" => [], "then" => :send_receipt },
      "send_receipt" => { "does" => :send_receipt, "awaits" => [], "then" => "FINISHED" }
    }
    key = create_key(recovery_point: :create_stripe_charge, workflow: workflow,
                     attr_accessors: { "user" => @user, "params" => @params, "ride" => ride })

    assert_equal true, run_with_key(key)

    assert_equal 1, Stripe.charges.size
    assert key.reload.succeeded?
  end

  test "a finished key returns its result and runs nothing" do
    key = create_key(recovery_point: AcidicJob::Key::RECOVERY_POINT_FINISHED)

    assert_equal true, run_with_key(key)

    assert_equal 0, Ride.count
    assert_empty Stripe.charges
    assert_no_enqueued_jobs
  end

  test "a finished key with an error returns false and runs nothing" do
    key = create_key(recovery_point: "FINISHED", error_object: Stripe::CardError.new("earlier"))

    assert_equal false, run_with_key(key)

    assert_equal 0, Ride.count
    assert key.reload.failed?
    assert_kind_of Stripe::CardError, key.error_object
  end

  test "a locked key raises LockedIdempotencyKey" do
    key = create_key(recovery_point: :create_stripe_charge, locked_at: Time.current)

    assert_raises(AcidicJob::LockedIdempotencyKey) { run_with_key(key) }

    assert_empty Stripe.charges
    assert key.reload.locked_at
  end

  test "a key locked longer ago than the lock timeout is taken over" do
    key = create_key(recovery_point: :create_ride_and_audit_record, locked_at: 2.minutes.ago)

    assert_equal true, run_with_key(key)

    assert key.reload.succeeded?
  end

  test "a key with other job arguments raises MismatchedIdempotencyKeyAndJobArguments" do
    key = create_key(recovery_point: :create_ride_and_audit_record, job_args: [@user.id, { "origin" => "Tegel" }])

    assert_raises(AcidicJob::MismatchedIdempotencyKeyAndJobArguments) { run_with_key(key) }

    assert_equal 0, Ride.count
    assert_equal "create_ride_and_audit_record", key.reload.recovery_point
  end

  test "a key at a step the workflow does not have raises UnknownRecoveryPoint" do
    key = create_key(recovery_point: :charge_the_card_twice)

    assert_raises(AcidicJob::UnknownRecoveryPoint) { run_with_key(key) }

    assert_equal 0, Ride.count
    assert_equal "charge_the_card_twice", key.reload.recovery_point
  end

  test "a declined card rolls the step back, records the error and resumes at the charge" do
    Stripe.declines = 1

    error = assert_raises(Stripe::CardError) { RideCreateJob.perform_now(@user.id, @params) }
    assert_equal "Your card was declined.", error.message

    key = AcidicJob::Key.last
    assert_equal "create_stripe_charge", key.recovery_point
    assert_nil key.locked_at
    assert_kind_of Stripe::CardError, key.error_object
    assert_equal 1, Ride.count

    AcidicJob::Key.stub(:find_by, ->(*) { key }) do
      assert_equal true, RideCreateJob.perform_now(@user.id, @params)
    end
    assert_equal 1, Ride.count
    assert_equal 1, Stripe.charges.size
    assert key.reload.finished?
  end

  test "job arguments holding a record match a key whose record changed since" do
    key = create_key(recovery_point: :create_ride, job_name: "RideCreateByRecordJob", job_args: [@user, @params])
    @user.update!(email: "changed@example.com")

    result = AcidicJob::Key.stub(:find_by, ->(*) { key }) do
      RideCreateByRecordJob.perform_now(@user, @params)
    end

    assert_equal true, result
    assert key.reload.succeeded?
  end
end

class RideCreateByRecordJob < ActiveJob::Base
  include AcidicJob

  def perform(user, ride_params)
    idempotently with: { ride_params: ride_params } do
      step :create_ride
    end
  end

  def create_ride
    Ride.create!(user: User.first, origin: @ride_params["origin"])
  end
end
