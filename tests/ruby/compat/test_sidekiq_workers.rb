# frozen_string_literal: true

require_relative "test_helper"

class SidekiqWorkersTest < ActiveSupport::TestCase
  setup do
    @user = User.create!(email: "sidekiq@example.com", stripe_customer_id: "cus_sq")
    @params = { "origin" => "Friedrichshain", "target" => "Wedding" }
  end

  test "fake!: perform_async queues the worker, drain runs it and its staged workers" do
    Sidekiq::Testing.fake! do
      RideCreateWorker.perform_async(@user.id, @params)
      assert_equal 1, RideCreateWorker.jobs.size
      assert_equal 0, Ride.count

      RideCreateWorker.drain
      ride = Ride.last
      assert_equal "ch_1", ride.stripe_charge_id
      assert_equal 1, RideReceiptWorker.jobs.size
      assert_equal 1, PlainNotifyWorker.jobs.size
      assert_equal [ride.id], RideReceiptWorker.jobs.first["args"].first(1)
      assert_equal 2, AcidicJob::Staged.count

      Sidekiq::Worker.drain_all
      assert_equal %w[notified sidekiq_receipt], Audit.order(:verb).pluck(:verb)
      assert_equal 0, AcidicJob::Staged.count
      assert AcidicJob::Key.last.succeeded?
    end
  end

  test "inline!: perform_async runs the worker and the workers it stages at once" do
    Sidekiq::Testing.inline! do
      RideCreateWorker.perform_async(@user.id, @params)
    end

    ride = Ride.last
    assert_equal "ch_1", ride.stripe_charge_id
    assert_equal %w[notified sidekiq_receipt], Audit.order(:verb).pluck(:verb)
    assert AcidicJob::Key.last.succeeded?
    assert_equal 0, AcidicJob::Staged.where(job_name: "RideReceiptWorker").count
  end

  test "inline!: a worker that fails in a step raises and resumes on the next run" do
    Stripe.declines = 1
    Sidekiq::Testing.inline! do
      assert_raises(Stripe::CardError) { RideCreateWorker.perform_async(@user.id, @params) }
    end
    key = AcidicJob::Key.last
    assert_equal "charge", key.recovery_point
    assert_kind_of Stripe::CardError, key.error_object

    AcidicJob::Key.stub(:find_by, ->(*) { key }) do
      Sidekiq::Testing.inline! { RideCreateWorker.perform_async(@user.id, @params) }
    end
    assert_equal 1, Ride.count
    assert key.reload.succeeded?
  end

  test "a worker called directly with new.perform runs like 0.7.0's test suite calls it" do
    result = RideCreateWorker.new.perform(@user.id, @params)

    assert_equal true, result
    assert_equal 1, RideReceiptWorker.jobs.size
    key = AcidicJob::Key.last
    assert key.succeeded?
    assert_equal [@user.id, @params], key.job_args
  end

  test "perform_transactionally of a Sidekiq worker outside a job is pushed after commit" do
    ride = @user.rides.create!(origin: "Mitte")
    ActiveRecord::Base.transaction do
      RideReceiptWorker.perform_transactionally(ride.id)
      assert_equal 0, RideReceiptWorker.jobs.size
    end
    assert_equal 1, RideReceiptWorker.jobs.size

    RideReceiptWorker.drain
    assert_equal 0, AcidicJob::Staged.count
    assert_equal ["sidekiq_receipt"], Audit.pluck(:verb)
  end
end
