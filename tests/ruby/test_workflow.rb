# frozen_string_literal: true

require_relative "test_helper"

# The workflow DSL on the application's ActiveRecord connection (ActiveJob, test adapter).
class WorkflowTest < AcidicTest
  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
    RideCreateJob.stripe_failures = 0
  end

  def test_runs_every_step_once_and_returns_true
    job = RideCreateJob.new("ada", 2000)
    assert_equal true, job.perform_now
    assert_equal %i[create_ride charge receipt], Trace.events
    key = key_for(job)
    assert key.finished?
    assert key.succeeded?
    refute key.failed?
    assert_nil key.locked_at
    assert_equal "ch_#{Ride.last.id}", Ride.last.stripe_charge_id
  end

  def test_a_finished_run_returns_true_without_running_again
    job = RideCreateJob.new("ada", 2000)
    job.perform_now
    Trace.clear
    assert_equal true, job.perform_now
    assert_empty Trace.events
    assert_equal 1, Ride.count
  end

  def test_a_failed_step_rolls_back_its_writes_and_the_retry_resumes_there
    RideCreateJob.stripe_failures = 1
    job = RideCreateJob.new("ada", 2000)
    error = assert_raises(StripeError) { job.perform_now }
    assert_equal "card declined", error.message
    key = key_for(job)
    assert_equal "create_stripe_charge", key.recovery_point
    assert_nil key.locked_at
    assert_instance_of StripeError, key.error_object
    assert_equal "card declined", key.error_object.message
    assert_equal 1, Ride.count
    assert_equal ["ride_created"], Audit.pluck(:event) # the charge attempt rolled back

    Trace.clear
    assert_equal true, job.perform_now
    assert_equal %i[charge receipt], Trace.events
    assert_equal 1, Ride.count
    assert key.reload.succeeded?
    assert_nil key.error_object
  end

  def test_the_error_is_stored_even_when_perform_rescues_it
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "RescuingJob"
      def perform
        idempotently { step :boom }
      rescue ArgumentError
        :rescued
      end

      def boom = raise(ArgumentError, "bad ride")
    end
    job = klass.new
    assert_equal :rescued, job.perform_now
    key = key_for(job)
    assert_instance_of ArgumentError, key.error_object
    assert key.failed?
    refute key.succeeded?
  end

  def test_attributes_persist_across_retries_and_stored_values_win_over_defaults
    RideCreateJob.stripe_failures = 1
    job = RideCreateJob.new("ada", 2000)
    assert_raises(StripeError) { job.perform_now }
    ride = Ride.last
    stored = key_for(job).attr_accessors
    assert_equal ride, stored["ride"]
    assert_equal "ada", stored["user"]

    # A new instance with the same job_id: the stored ride wins over `ride: nil`.
    again = RideCreateJob.deserialize(job.serialize)
    again.perform_now
    assert_equal ride.id, again.ride.id
    assert_equal 1, Ride.count
  end

  def test_only_the_setter_persists
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "SetterJob"
      def perform
        idempotently(with: { a: 1, b: 1 }) do
          step :change
          step :fail_once
        end
      end

      def change
        self.a = 2
        @b = 2
      end

      def fail_once
        raise "once" unless Trace.count(:failed) == 1

        Trace << [:seen, @a, @b]
      ensure
        Trace << :failed if Trace.count(:failed).zero?
      end
    end
    job = klass.new
    assert_raises(RuntimeError) { job.perform_now }
    assert_equal({ "a" => 2, "b" => 1 }, key_for(job).attr_accessors.to_h)
    klass.new.tap { |again| again.job_id = job.job_id }.perform_now
    assert_includes Trace.events, [:seen, 2, 1]
  end

  def test_private_steps_key_argument_and_steps_without_methods
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "ShapesJob"
      def perform
        idempotently do
          step :no_argument
          step :with_key
          step :not_a_method
        end
      end

      private

      def no_argument = Trace << :no_argument
      def with_key(key) = Trace << [:key, key.class, key.recovery_point]
    end
    job = klass.new
    assert job.perform_now
    assert_equal [:no_argument, [:key, AcidicJob::Key, "with_key"]], Trace.events
    assert key_for(job).succeeded?
  end

  def test_safely_finish_acidic_job_ends_the_workflow
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "FinishEarlyJob"
      def perform
        idempotently do
          step :decide
          step :never
        end
      end

      def decide = safely_finish_acidic_job
      def never = Trace << :never
    end
    job = klass.new
    assert_equal true, job.perform_now
    assert_empty Trace.events
    key = key_for(job)
    assert_equal "FINISHED", key.recovery_point
    assert_nil key.locked_at
  end

  def test_workflow_and_job_args_are_stored_like_0_7_0
    job = RideCreateJob.new("ada", 2000)
    job.perform_now
    key = key_for(job)
    assert_equal "RideCreateJob", key.job_name
    assert_equal ["ada", 2000], key.job_args
    assert_equal({ "does" => "create_ride_and_audit_record", "awaits" => [],
                   "then" => "create_stripe_charge" }, key.workflow["create_ride_and_audit_record"])
    assert_equal "FINISHED", key.workflow["send_receipt"]["then"]
    raw = Ride.connection.select_value("SELECT job_args FROM acidic_job_keys")
    assert_equal YAML.dump(["ada", 2000]), raw
  end

  def test_the_key_is_the_job_id
    job = RideCreateJob.new("ada", 2000)
    job.perform_now
    assert_equal job.job_id, job.idempotency_key_value
    assert_equal 1, AcidicJob::Key.where(idempotency_key: job.job_id).count
  end

  def test_key_reader_goes_through_the_model_and_can_be_stubbed
    job = RideCreateJob.new("ada", 2000)
    job.perform_now
    assert_equal key_for(job), job.key
    fake = Object.new
    job.instance_variable_set(:@key, nil)
    AcidicJob::Key.stub(:find_by, fake) { assert_same fake, job.key }
  end

  def test_key_reload_shows_what_the_core_wrote
    RideCreateJob.stripe_failures = 1
    job = RideCreateJob.new("ada", 2000)
    assert_raises(StripeError) { job.perform_now }
    key = key_for(job)
    assert_equal "create_stripe_charge", key.recovery_point
    RideCreateJob.deserialize(job.serialize).perform_now
    assert_equal "FINISHED", key.reload.recovery_point
  end

  def test_subclasses_are_wired_up
    parent = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "ParentJob"
      def perform(x)
        idempotently { step :one }
      end

      def one = Trace << [:one, self.class.name]
    end
    child = Class.new(parent) { def self.name = "ChildOfParentJob" }
    job = child.new(7)
    assert job.perform_now
    assert_equal [[:one, "ChildOfParentJob"]], Trace.events
    assert_equal [7], job.arguments_for_perform
    assert_respond_to child, :perform_transactionally
  end

  # The step list is the job's at each run: runs of one class with different lists (and
  # lists equal by value, made again) run their own steps.
  def test_each_run_runs_the_step_list_it_describes
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "ChoosingStepsJob"
      def perform(last)
        idempotently do
          step :one
          step last.to_sym
        end
      end

      def one = Trace << :one
      def two = Trace << :two
      def three = Trace << :three
    end
    %w[two three two].each do |last|
      Trace.clear
      assert klass.new(last).perform_now
      assert_equal [:one, last.to_sym], Trace.events
    end
    assert_equal %w[FINISHED] * 3, AcidicJob::Key.where(job_name: "ChoosingStepsJob").pluck(:recovery_point)
  end

  def test_a_step_raising_a_non_standard_error_still_rolls_back_and_unlocks
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "InterruptedJob"
      def perform
        idempotently { step :write_then_exit }
      end

      def write_then_exit
        Audit.create!(event: "half")
        raise Interrupt
      end
    end
    job = klass.new
    assert_raises(Interrupt) { job.perform_now }
    assert_equal 0, Audit.count
    assert_nil key_for(job).locked_at
  end

  def test_the_lock_timeout_lets_another_worker_take_over_an_abandoned_run
    job = RideCreateJob.new("ada", 2000)
    ActiveRecord::Base.connection.execute(<<~SQL)
      INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, locked_at,
        recovery_point, created_at, updated_at)
      VALUES ('#{job.job_id}', 'RideCreateJob', '#{YAML.dump(%w[ada].push(2000)).gsub("'", "''")}',
        '2020-01-01 00:00:00', '2020-01-01 00:00:00', 'create_stripe_charge',
        '2020-01-01 00:00:00', '2020-01-01 00:00:00')
    SQL
    Ride.create!(user: "ada", amount: 2000)
    job.instance_variable_set(:@ride, nil)
    AcidicJob::Key.last.tap { |k| k.attr_accessors["ride"] = Ride.last; k.save!(validate: false) }
    assert job.perform_now
    assert_equal %i[charge receipt], Trace.events
  end
end

# Job arguments that are ActiveRecord records compare by id, as in 0.7.0.
class RecordArgumentsTest < AcidicTest
  class RecordJob < ActiveJob::Base
    include AcidicJob
    def perform(ride, note)
      idempotently do
        step :first
        step :second
      end
    end

    def first = Trace << :first
    def second
      raise "not yet" if Trace.count(:first) == 1 && Trace.count(:second_failed).zero? && (Trace << :second_failed)

      Trace << :second
    end
  end

  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
  end

  def test_a_retry_after_the_record_changed_is_not_a_mismatch
    ride = Ride.create!(user: "ada", amount: 1)
    job = RecordJob.new(ride, "n")
    assert_raises(RuntimeError) { job.perform_now }
    ride.update!(amount: 2, updated_at: Time.now + 60)
    assert RecordJob.deserialize(job.serialize).perform_now
    assert_equal %i[first second_failed second], Trace.events
    other = Ride.create!(user: "bob", amount: 1)
    twin = RecordJob.new(other, "n")
    twin.job_id = job.job_id
    assert_raises(AcidicJob::MismatchedIdempotencyKeyAndJobArguments) { twin.perform_now }
  end
end
