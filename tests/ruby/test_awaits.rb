# frozen_string_literal: true

require_relative "test_helper"

# Awaits without Sidekiq Pro: the core's batches with any ActiveJob adapter.
class AwaitsTest < AcidicTest
  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
  end

  def test_the_parent_resumes_once_after_all_awaited_jobs_performed
    job = AwaitingJob.new("trip")
    assert_equal true, job.perform_now
    assert_equal [:fan_out], Trace.events
    key = key_for(job)
    assert_equal "fan_in", key.recovery_point
    assert_nil key.locked_at
    assert_equal %w[PlainJob KeyedChildJob], enqueued.map { |j| j[:job].name }
    assert_equal [key.id], enqueued.last[:args][0..0], "one-argument jobs get the key id"

    # The parent, performed again before the children are done, does nothing.
    Trace.clear
    refute AwaitingJob.new("trip").tap { |j| j.job_id = job.job_id }.perform_now
    assert_empty Trace.events

    first = enqueued.shift
    ActiveJob::Base.execute(first.except(:job, :args, :queue))
    assert_equal 1, enqueued.size, "no continuation before the last awaited job"
    second = enqueued.shift
    ActiveJob::Base.execute(second.except(:job, :args, :queue))
    assert_equal ["AwaitingJob"], enqueued.map { |j| j[:job].name }
    assert_equal job.job_id, enqueued.first["job_id"]

    performed = perform_enqueued!
    assert_equal [AwaitingJob], performed
    assert_equal 1, Trace.count(:fan_in)
    assert_equal ["fan_in trip"], Audit.pluck(:event)
    assert key.reload.succeeded?
    assert_equal 0, AcidicJob::Staged.count
    assert_equal 0, ActiveRecord::Base.connection.select_value("SELECT count(*) FROM acidic_job_batches").to_i
  end

  def test_a_duplicate_acknowledgement_or_continuation_runs_nothing_twice
    job = AwaitingJob.new("dup")
    job.perform_now
    children = enqueued.dup
    perform_enqueued!
    assert_equal 1, Trace.count(:fan_in)
    # the awaited jobs delivered again (e.g. by a drain after a crash): nothing happens
    children.each { |c| ActiveJob::Base.execute(c.except(:job, :args, :queue)) }
    assert_empty enqueued
    perform_enqueued!
    assert_equal 1, Trace.count(:fan_in)
    assert_equal 1, Audit.count
  end
end
