# frozen_string_literal: true

require_relative "test_helper"

# `AcidicJob.drain` (also `rake acidic_job:drain`): staged jobs committed but never
# pushed, for example because the process died between the commit and the push.
class DrainTest < ActiveSupport::TestCase
  def stage_unpushed(count, job_name: "DrainedJob", first: 1)
    now = 1.hour.ago
    rows = Array.new(count) do |i|
      job = job_name.constantize.new(first + i)
      { adapter: "activejob", job_name: job_name, job_args: job.serialize,
        created_at: now, updated_at: now }
    end
    AcidicJob::Staged.insert_all!(rows)
  end

  test "drain pushes every due job in one call" do
    needs_core!("drain stops after 100 rows on a borrowed store")
    stage_unpushed(250)

    assert_equal 250, AcidicJob.drain
    assert_enqueued_jobs 250, only: DrainedJob
  end

  test "jobs the queue refuses do not hide the ones after them" do
    needs_core!("a page of refused rows hides every later row")
    stage_unpushed(100, job_name: "RefusedJob")
    stage_unpushed(30, first: 1000)

    AcidicJob.drain
    assert_enqueued_jobs 30, only: DrainedJob
  end

  test "drain pushes a due job once and leaves recent ones alone" do
    stage_unpushed(3)
    AcidicJob::Staged.create!(adapter: "activejob", job_name: "DrainedJob",
                              job_args: DrainedJob.new(99).serialize)
    clear_enqueued_jobs

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
