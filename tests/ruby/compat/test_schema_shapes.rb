# frozen_string_literal: true

require_relative "test_helper"

# The tables as applications have them: recreated in a test's setup with `force: true`,
# in the shapes 0.7.0 applications use, or loaded from a schema.rb.
class SchemaShapesTest < ActiveSupport::TestCase
  SCHEMA_BEFORE_THE_UPGRADE = <<~RUBY
    ActiveRecord::Schema.define(version: 2022_03_28_000000) do
      create_table "acidic_job_keys", force: :cascade do |t|
        t.string "idempotency_key", null: false
        t.string "job_name", null: false
        t.text "job_args"
        t.datetime "last_run_at", default: -> { "CURRENT_TIMESTAMP" }, null: false
        t.datetime "locked_at"
        t.string "recovery_point", null: false
        t.text "error_object"
        t.text "attr_accessors"
        t.text "workflow"
        t.datetime "created_at", precision: 6, null: false
        t.datetime "updated_at", precision: 6, null: false
        t.index ["idempotency_key", "job_name", "job_args"], name: "idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args", unique: true
      end

      create_table "staged_acidic_jobs", force: :cascade do |t|
        t.string "adapter", null: false
        t.string "job_name", null: false
        t.text "job_args"
        t.datetime "created_at", precision: 6, null: false
        t.datetime "updated_at", precision: 6, null: false
      end
    end
  RUBY

  setup do
    @user = User.create!(email: "schema@example.com", stripe_customer_id: "cus_schema")
    @params = { "origin" => "Neukölln", "target" => "Pankow" }
  end

  teardown do
    define_schema
  end

  def ride_once
    assert_equal true, RideCreateJob.perform_now(@user.id, @params)
    perform_enqueued_jobs
    assert AcidicJob::Key.last.succeeded?
    assert_equal 0, AcidicJob::Staged.count
  end

  test "staged_acidic_jobs without timestamps, as in 0.7.0's own test schema" do
    define_schema(staged_timestamps: false, last_run_at_null: true)
    @user = User.create!(email: "schema@example.com", stripe_customer_id: "cus_schema")

    ride_once
    assert_equal ["created", "receipt_sent"], Audit.order(:id).pluck(:verb)
  end

  test "last_run_at without NOT NULL" do
    define_schema(last_run_at_null: true)
    @user = User.create!(email: "schema@example.com", stripe_customer_id: "cus_schema")

    ride_once
    assert AcidicJob::Key.last.last_run_at
  end

  test "tables dropped and recreated between two jobs" do
    ride_once
    define_schema
    @user = User.create!(email: "schema@example.com", stripe_customer_id: "cus_schema")
    ride_once
  end

  test "db:schema:load from a schema.rb dumped before the upgrade" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "schema.rb")
      File.write(path, SCHEMA_BEFORE_THE_UPGRADE)
      load path
    end
    ride_once
  end
end
