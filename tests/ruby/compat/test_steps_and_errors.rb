# frozen_string_literal: true

require_relative "test_helper"

class ResumeError < StandardError; end

class StepsAndErrorsTest < ActiveSupport::TestCase
  setup do
    @original_second_step = ConfigurableJob.instance_method(:second_step)
  end

  teardown do
    # put back the step a test redefined or removed
    ConfigurableJob.send(:remove_method, :second_step) if ConfigurableJob.instance_methods(false).include?(:second_step)
    ConfigurableJob.define_method(:second_step, @original_second_step)
  end

  def verbs
    Audit.order(:id).pluck(:verb)
  end

  test "a step that raises a custom error keeps the run at that step with the error recorded" do
    ConfigurableJob.define_method(:second_step) { raise ResumeError, "try again later" }

    error = assert_raises(ResumeError) { ConfigurableJob.perform_now("custom") }
    assert_equal "try again later", error.message

    key = AcidicJob::Key.last
    assert_equal "second_step", key.recovery_point
    assert_nil key.locked_at
    assert_kind_of ResumeError, key.error_object
    assert_equal "try again later", key.error_object.message
    assert key.failed?
    assert_equal ["custom: first"], verbs
  end

  test "a step that raises NoMethodError is recorded like any error, and the retry resumes at it" do
    ConfigurableJob.define_method(:second_step) { nil.charge! }

    assert_raises(NoMethodError) { ConfigurableJob.perform_now("nomethod") }
    key = AcidicJob::Key.last
    assert_kind_of NoMethodError, key.error_object
    assert_equal "second_step", key.recovery_point

    ConfigurableJob.send(:remove_method, :second_step)
    ConfigurableJob.define_method(:second_step) { Audit.create!(verb: "#{@label}: second, fixed") }

    AcidicJob::Key.stub(:find_by, ->(*) { key }) do
      assert_equal true, ConfigurableJob.perform_now("nomethod")
    end
    assert_equal ["nomethod: first", "nomethod: second, fixed", "nomethod: third"], verbs
    assert key.reload.finished?
  end

  test "a step method removed at run time is skipped, as in 0.7.0" do
    ConfigurableJob.send(:remove_method, :second_step)

    assert_equal true, ConfigurableJob.perform_now("removed")

    assert_equal ["removed: first", "removed: third"], verbs
    assert AcidicJob::Key.last.succeeded?
  end

  test "a step stubbed with Minitest on the job instance runs instead of the method" do
    job = ConfigurableJob.new("stubbed")
    calls = 0
    job.stub(:second_step, -> { calls += 1 }) do
      assert_equal true, job.perform_now
    end

    assert_equal 1, calls
    assert_equal ["stubbed: first", "stubbed: third"], verbs
  end

  test "a payment gateway stubbed with a Minitest::Mock is called once, in its step" do
    user = User.create!(email: "mock@example.com", stripe_customer_id: "cus_mock")
    gateway = Minitest::Mock.new
    gateway.expect(:call, Stripe::Charge.new(id: "ch_mocked"), [], amount: 20_00, customer: "cus_mock")

    Stripe.stub(:charge, gateway) do
      assert_equal true, RideCreateJob.perform_now(user.id, { "origin" => "A", "target" => "B" })
    end

    gateway.verify
    assert_equal "ch_mocked", Ride.last.stripe_charge_id
  end

  test "a stubbed step that raises rolls back what it wrote" do
    job = ConfigurableJob.new("rollback")
    boom = lambda do
      Audit.create!(verb: "rollback: half-done")
      raise ResumeError, "boom"
    end
    job.stub(:second_step, boom) do
      assert_raises(ResumeError) { job.perform_now }
    end

    assert_equal ["rollback: first"], verbs
  end

  test "safely_finish_acidic_job ends the workflow early" do
    assert_equal true, FinishEarlyJob.perform_now

    assert_equal ["checked"], verbs
    assert AcidicJob::Key.last.succeeded?
  end

  test "an empty workflow raises NoDefinedSteps before writing anything" do
    job_class = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "EmptyWorkflowJob"
      def perform = idempotently { [] }
    end

    assert_raises(AcidicJob::NoDefinedSteps) { job_class.perform_now }
    assert_equal 0, AcidicJob::Key.count
  end

  test "the error classes of 0.7.0 are AcidicJob::Error subclasses" do
    [AcidicJob::MismatchedIdempotencyKeyAndJobArguments, AcidicJob::LockedIdempotencyKey,
     AcidicJob::UnknownRecoveryPoint, AcidicJob::UnknownAtomicPhaseType,
     AcidicJob::SerializedTransactionConflict, AcidicJob::UnknownJobAdapter,
     AcidicJob::NoDefinedSteps].each do |error_class|
      assert_operator error_class, :<, AcidicJob::Error
    end
    assert_operator AcidicJob::Error, :<, StandardError
  end
end
