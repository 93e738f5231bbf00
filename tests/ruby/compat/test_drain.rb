# frozen_string_literal: true

require_relative "test_helper"

# `AcidicJob.drain` (also `rake acidic_job:drain`): staged jobs committed but never
# pushed, for example because the process died between the commit and the push.
class DrainTest < ActiveSupport::TestCase
  def stage_unpushed(count, job_name: "DrainedJob", first: 1)
    now = 1.hour.ago
    rows = Array.new(count) do |i|
      job = job_name.constantize.new(first + i)
      row = { adapter: "activejob", job_name: job_name, job_args: job.serialize }
      staged_timestamps? ? row.merge(created_at: now, updated_at: now) : row
    end
    AcidicJob::Staged.insert_all!(rows)
  end

  # 0.7.0's own test schema has no timestamps on staged_acidic_jobs.
  def staged_timestamps?
    AcidicJob::Staged.reset_column_information
    AcidicJob::Staged.column_names.include?("created_at")
  end

  # Without timestamps a row made outside a step has no age: the first drain stamps it,
  # and it is due once older_than has passed since (here: at once).
  def drain_due
    return AcidicJob.drain if staged_timestamps?

    assert_equal 0, AcidicJob.drain
    AcidicJob.drain(older_than: 0)
  end

  test "drain pushes every due job in one call" do
    stage_unpushed(250)

    assert_equal 250, drain_due
    assert_enqueued_jobs 250, only: DrainedJob
  end

  test "jobs the queue refuses do not hide the ones after them" do
    stage_unpushed(100, job_name: "RefusedJob")
    stage_unpushed(30, first: 1000)

    drain_due
    assert_enqueued_jobs 30, only: DrainedJob
  end

  test "drain pushes a due job once and leaves recent ones alone" do
    stage_unpushed(3)
    AcidicJob::Staged.create!(adapter: "activejob", job_name: "DrainedJob",
                              job_args: DrainedJob.new(99).serialize)
    clear_enqueued_jobs

    unless staged_timestamps?
      # Without timestamps the age of a row created outside a step is unknown: it is due
      # at once, and delivered again (at least once).
      assert_equal 4, drain_due
      return
    end

    assert_equal 3, AcidicJob.drain
    assert_enqueued_jobs 3
    perform_enqueued_jobs
    assert_equal ["drained 1", "drained 2", "drained 3"], Audit.order(:id).pluck(:verb)
    assert_equal 1, AcidicJob::Staged.count
  end
end

class DrainedJob < ActiveJob::Base
  def perform(number)
    Audit.create!(verb: "drained #{number}")
  end
end

# A job whose queue refuses it (its enqueue fails).
class RefusedJob < ActiveJob::Base
  def self.queue_adapter
    RefusingAdapter
  end

  def perform(*); end

  module RefusingAdapter
    def self.enqueue(*)
      raise ActiveJob::EnqueueError, "queue full"
    end

    def self.enqueue_at(*)
      raise ActiveJob::EnqueueError, "queue full"
    end
  end
end
