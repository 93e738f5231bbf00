# frozen_string_literal: true

require_relative "test_helper"

# acidic_job's own connection (AcidicJob.configure { |c| c.database_url = ... }).
class OwnedTest < AcidicTest
  def setup
    skip "database_url parts only" unless owned?
    super
    OwnedRideJob.failures = 0
  end

  def count(sql)
    AcidicJob::Stores.owned.exec(sql)[0][0].to_i
  end

  def test_runs_on_the_owned_store_and_steps_commit_their_writes
    job = OwnedRideJob.new("ada")
    assert job.perform_now
    assert_equal 1, count("SELECT count(*) FROM rides")
    key = job.key
    assert_kind_of AcidicJob::OwnedKey, key
    assert key.succeeded?
    assert_equal ["ada"], key.job_args
    assert_equal "ada", key.attr_accessors[:user]
    assert_equal [ReceiptJob], enqueued.map { |j| j[:job] }
    assert_equal 1, count("SELECT count(*) FROM staged_acidic_jobs")
    perform_enqueued!
    assert_equal 0, count("SELECT count(*) FROM staged_acidic_jobs")
  end

  def test_a_failed_step_rolls_back_its_writes_and_the_retry_resumes
    OwnedRideJob.failures = 1
    job = OwnedRideJob.new("ada")
    assert_raises(StripeError) { job.perform_now }
    assert_equal 0, count("SELECT count(*) FROM audits")
    key = job.key
    assert_equal "charge", key.recovery_point
    assert_instance_of StripeError, key.error_object
    Trace.clear
    assert job.perform_now
    assert_equal [:charge, [:notify, job.ride_id]], Trace.events
    assert_equal 1, count("SELECT count(*) FROM rides")
    assert_equal 1, count("SELECT count(*) FROM audits")
    assert job.key.reload.succeeded?
  end

  def test_exec_outside_a_step_is_refused
    assert_raises(AcidicJob::Misuse) { AcidicJob.exec("SELECT 1") }
  end

  def test_each_thread_uses_its_own_store
    stores = 3.times.map { Thread.new { AcidicJob::Stores.owned.object_id } }.map(&:value)
    assert_equal 3, stores.uniq.size
  end

  def test_a_forked_child_opens_its_own_store
    parent_store = AcidicJob::Stores.owned
    assert OwnedRideJob.perform_now("parent")
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      result = begin
        ok = OwnedRideJob.perform_now("child")
        "#{ok} #{AcidicJob::Stores.owned.equal?(parent_store)}"
      rescue Exception => e # rubocop:disable Lint/RescueException
        "#{e.class}: #{e.message}"
      end
      writer.write(result)
      writer.close
      exit!(0)
    end
    writer.close
    Process.wait(pid)
    assert_equal "true false", reader.read
    assert_same parent_store, AcidicJob::Stores.owned
    assert OwnedRideJob.perform_now("parent again")
    assert_equal 3, count("SELECT count(*) FROM rides")
  end
end
