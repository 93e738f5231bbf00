# frozen_string_literal: true

require_relative "test_helper"

# The models read rows written by acidic_job 0.7.0 (hand-crafted here with the YAML its
# `serialize` / `store` columns wrote) and the core's rows alike.
class ModelsTest < AcidicTest
  ROW_TIME = "2021-10-29 12:00:00"

  def insert_key(idempotency_key:, job_name:, job_args:, recovery_point:, error_object: nil,
                 attr_accessors: nil, workflow: nil, locked_at: nil)
    AcidicJob::Key.connection.exec_insert(<<~SQL, "test", [idempotency_key, job_name, job_args, ROW_TIME, locked_at, recovery_point, error_object, attr_accessors, workflow, ROW_TIME, ROW_TIME])
      INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, locked_at,
        recovery_point, error_object, attr_accessors, workflow, created_at, updated_at)
      VALUES (#{(['?'] * 11).join(', ').then { |q| postgres? ? (1..11).map { |i| "$#{i}" }.join(', ') : q }})
    SQL
    AcidicJob::Key.find_by(idempotency_key: idempotency_key)
  end

  # What 0.7.0 wrote for a RideCreateJob whose Stripe step failed.
  def seven_row(key_value = "job-070")
    insert_key(
      idempotency_key: key_value, job_name: "RideCreateJob",
      job_args: "---\n- ada\n- 2000\n",
      recovery_point: "create_stripe_charge",
      error_object: "--- !ruby/exception:StripeError\nmessage: card declined\nbacktrace:\n- app/jobs/ride_create_job.rb:30\n",
      attr_accessors: "--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess\nuser: ada\namount: 2000\nride: \n",
      workflow: "---\ncreate_ride_and_audit_record:\n  does: create_ride_and_audit_record\n  awaits: []\n  then: create_stripe_charge\n" \
                "create_stripe_charge:\n  does: create_stripe_charge\n  awaits: []\n  then: send_receipt\n" \
                "send_receipt:\n  does: send_receipt\n  awaits: []\n  then: FINISHED\n"
    )
  end

  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
    RideCreateJob.stripe_failures = 0 # test_events.rb leaves some behind
  end

  def test_columns_are_those_of_0_7_0_plus_the_core_additions
    AcidicJob::Stores.current.migrate # the core adds its columns on first use; this test may come first
    [AcidicJob::Key, AcidicJob::Staged].each(&:reset_column_information)
    assert_equal (%w[id idempotency_key job_name job_args last_run_at locked_at recovery_point
                     error_object attr_accessors workflow created_at updated_at] +
                  %w[attempts locked_by recover_at dead_at awaiting_batch_id resume_adapter
                     resume_job_name resume_args]).sort,
                 AcidicJob::Key.column_names.sort
    assert_equal %w[adapter batch_id created_at delivered_at id job_args job_name key_id updated_at],
                 AcidicJob::Staged.column_names.sort
    assert_equal "acidic_job_keys", AcidicJob::Key.table_name
    assert_equal "staged_acidic_jobs", AcidicJob::Staged.table_name
    assert_equal "FINISHED", AcidicJob::Key::RECOVERY_POINT_FINISHED
  end

  def test_a_0_7_0_row_reads_back_with_its_exception_class
    key = seven_row
    assert_instance_of StripeError, key.error_object
    assert_equal "card declined", key.error_object.message
    assert_equal ["app/jobs/ride_create_job.rb:30"], key.error_object.backtrace
    assert_equal ["ada", 2000], key.job_args
    assert_equal "ada", key.attr_accessors[:user]
    assert_equal "ada", key.attr_accessors["user"]
    assert_equal "send_receipt", key.workflow["create_stripe_charge"]["then"]
    assert key.failed?
    refute key.finished?
    refute key.succeeded?
  end

  def test_a_0_7_0_run_resumes_at_its_recovery_point
    key = seven_row
    ride = Ride.create!(user: "ada", amount: 2000)
    key.attr_accessors["ride"] = ride
    key.save!(validate: false)
    job = RideCreateJob.new("ada", 2000)
    job.job_id = "job-070"
    assert job.perform_now
    assert_equal %i[charge receipt], Trace.events
    assert_equal 1, Ride.count
    assert_equal "ch_#{ride.id}", ride.reload.stripe_charge_id
    assert key.reload.succeeded?
  end

  def test_symbol_recovery_points_and_workflows_behave_as_strings
    key = insert_key(idempotency_key: "sym", job_name: "X", job_args: "--- []\n",
                     recovery_point: "FINISHED",
                     workflow: "---\n:a:\n  :does: :a\n  :then: FINISHED\n")
    assert key.finished?
    assert key.succeeded?
    key.update_column(:recovery_point, :FINISHED)
    assert key.reload.finished?
  end

  def test_core_rows_read_back_through_the_models
    job = RideCreateJob.new("ada", 2000)
    job.perform_now
    key = key_for(job)
    raw = AcidicJob::Key.connection.select_value("SELECT workflow FROM acidic_job_keys")
    assert raw.start_with?("{"), "the core writes the workflow as JSON"
    assert_equal "create_stripe_charge", key.workflow["create_ride_and_audit_record"]["then"]
    assert_kind_of ActiveSupport::HashWithIndifferentAccess, key.attr_accessors
    assert_equal Ride.last, key.attr_accessors[:ride]
  end

  def test_saving_a_key_keeps_the_workflow_as_json
    job = RideCreateJob.new("ada", 2000)
    job.perform_now
    key = key_for(job)
    key.update!(last_run_at: Time.now)
    raw = AcidicJob::Key.connection.select_value("SELECT workflow FROM acidic_job_keys")
    assert_equal key.workflow, JSON.parse(raw)
  end

  def test_key_validations
    key = AcidicJob::Key.new
    refute key.valid?
    %i[idempotency_key job_name last_run_at recovery_point].each do |attr|
      assert key.errors[attr].any?, "#{attr} is validated"
    end
  end

  def test_staged_is_identified_by_global_id_and_validated
    staged = AcidicJob::Staged.new
    refute staged.valid?
    assert_equal %i[adapter job_args job_name], staged.errors.attribute_names.sort
    assert AcidicJob::Staged.include?(GlobalID::Identification)
    assert_equal "gid://#{GlobalID.app}/AcidicJob::Staged/12", AcidicJob::Staged.gid_for(12)
  end

  def test_exceptions_that_yaml_cannot_dump_are_stored_with_their_class
    error = StripeError.new("no card")
    error.instance_variable_set(:@callback, -> {})
    doc = AcidicJob::Documents.error(error)
    loaded = AcidicJob::YAMLCoder.load(doc)
    assert_instance_of StripeError, loaded
    assert_equal "no card", loaded.message
  end
end
