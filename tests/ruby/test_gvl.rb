# frozen_string_literal: true

require_relative "test_helper"

# The extension releases the GVL while the core waits on the database: another Ruby
# thread runs while a job is blocked inside the core. PostgreSQL: the job's INSERT of its
# key waits for a conflicting uncommitted INSERT of another connection.
class GvlTest < AcidicTest
  def setup
    skip "PostgreSQL only (a lock wait is observable in pg_stat_activity)" unless postgres?
    super
    RideCreateJob.stripe_failures = 0 # test_events leaves some behind
  end

  def test_another_thread_runs_while_the_core_waits_for_a_lock
    job = RideCreateJob.new("gvl", 1)
    blocker = PG.connect(TestDatabase.pg_url)
    blocker.exec("BEGIN")
    blocker.exec_params(<<~SQL, [job.job_id, "RideCreateJob", YAML.dump(["gvl", 1])])
      INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at,
        recovery_point, created_at, updated_at)
      VALUES ($1, $2, $3, now(), 'x', now(), now())
    SQL
    observer = PG.connect(TestDatabase.pg_url)
    worker = Thread.new do
      ActiveRecord::Base.connection_pool.with_connection do |conn|
        # a safety net only: without the GVL released this thread would hold up the test
        conn.execute("SET lock_timeout = '20s'") unless owned?
        job.perform_now
      end
    end
    observed = false
    until observed || !worker.alive?
      observed = observer.exec(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
      ).getvalue(0, 0).to_i.positive?
    end
    blocker.exec("ROLLBACK")
    assert observed, "this thread ran while the job waited inside the core"
    assert worker.value
    assert_equal 1, Ride.count
  ensure
    blocker&.close
    observer&.close
  end
end
