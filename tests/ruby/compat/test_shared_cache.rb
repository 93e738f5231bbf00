# frozen_string_literal: true

require_relative "test_helper"

# acidic_job 0.7.0 asked for SQLite's shared-cache mode. There, a statement that has
# stepped but was not run to completion or reset keeps a table lock, and another
# connection's write to that table fails at once with "database table is locked"
# (DatabaseCleaner's DELETE, a fixture load). Jobs run here on one connection of the pool
# (a worker thread), the cleaning happens on another.
class SharedCacheTest < ActiveSupport::TestCase
  TABLES = %w[acidic_job_keys staged_acidic_jobs acidic_job_batches rides audits users].freeze

  setup do
    skip "shared-cache mode only (COMPAT_DB=sqlite-shared)" unless COMPAT_DB == "sqlite-shared"
    @user = User.create!(email: "shared@example.com", stripe_customer_id: "cus_shared")
    @params = { "origin" => "Moabit", "target" => "Spandau" }
  end

  def on_another_connection
    Thread.new do
      ActiveRecord::Base.connection_pool.with_connection do
        yield
      rescue StandardError => e
        e
      end
    end.value
  end

  # What DatabaseCleaner's deletion does, rolled back so that each check sees the data.
  def tables_locked_for_deletion
    conn = ActiveRecord::Base.connection
    (TABLES & conn.tables).select do |table|
      conn.transaction do
        conn.execute("DELETE FROM #{table}")
        raise ActiveRecord::Rollback
      end
      false
    rescue ActiveRecord::StatementInvalid => e
      raise unless e.cause.is_a?(SQLite3::LockedException)

      true
    end
  end

  test "the check sees a lock that an unfinished statement keeps" do
    statement = nil
    on_another_connection do
      statement = ActiveRecord::Base.connection.raw_connection.prepare("SELECT id FROM users")
      statement.step
    end
    assert_equal ["users"], tables_locked_for_deletion
  ensure
    statement&.close
  end

  def each_kind_of_run_leaves_no_lock
    runs = {
      "a job that succeeds" => -> { RideCreateJob.perform_now(@user.id, @params) },
      "its staged jobs, performed" => -> { perform_enqueued_jobs },
      "a job whose step raises" => lambda {
        Stripe.declines = 1
        RideCreateJob.perform_now(@user.id, @params)
      },
      "a rerun at the failed step" => lambda {
        key = AcidicJob::Key.where.not(error_object: nil).last
        AcidicJob::Key.stub(:find_by, ->(*) { key }) { RideCreateJob.perform_now(@user.id, @params) }
      },
      "a rerun of a finished key" => lambda {
        key = AcidicJob::Key.last
        AcidicJob::Key.stub(:find_by, ->(*) { key }) { RideCreateJob.perform_now(@user.id, @params) }
      },
      "a locked key" => lambda {
        key = AcidicJob::Key.create!(idempotency_key: "locked", job_name: "RideCreateJob",
                                     job_args: [@user.id, @params], recovery_point: "send_receipt",
                                     locked_at: Time.current, last_run_at: Time.current)
        AcidicJob::Key.stub(:find_by, ->(*) { key }) { RideCreateJob.perform_now(@user.id, @params) }
      },
      "a drain" => lambda {
        AcidicJob::Staged.update_all(updated_at: 1.hour.ago)
        AcidicJob.drain
      },
      "a Sidekiq worker inline" => -> { Sidekiq::Testing.inline! { RideCreateWorker.perform_async(@user.id, @params) } }
    }
    locked = runs.to_h do |name, run|
      on_another_connection(&run)
      [name, tables_locked_for_deletion]
    end

    assert_equal runs.keys.to_h { |name| [name, []] }, locked
    assert_equal 3, AcidicJob::Key.where(recovery_point: "FINISHED").count
  end

  test "no table stays locked after any kind of job run on another connection" do
    each_kind_of_run_leaves_no_lock
  end

  test "no table stays locked when the core runs its statements through ActiveRecord" do
    AcidicJob.configure { |config| config.connection_sharing = :host }
    each_kind_of_run_leaves_no_lock
  ensure
    AcidicJob.configure { |config| config.connection_sharing = :auto }
  end

  test "DatabaseCleaner cleans after a job ran on another connection" do
    on_another_connection { RideCreateJob.perform_now(@user.id, @params) }

    DatabaseCleaner.clean
    assert_equal 0, AcidicJob::Key.count
    assert_equal 0, AcidicJob::Staged.count
  end
end
