# frozen_string_literal: true

require_relative "test_helper"

# Many workers at once (Sidekiq's default is 10 threads): every run completes, every
# step's rows appear once, and no run is executed twice.
class ConcurrencyTest < AcidicTest
  THREADS = 8
  JOBS = 40

  def setup
    skip "ActiveRecord connection sharing only" if owned?
    if !postgres? && ENV["AJ_TEST_SHARING"] == "host"
      skip "SQLite through ActiveRecord's API: the sqlite3 gem holds the GVL while it waits " \
           "for a lock, so threads of one process cannot share a busy SQLite file"
    end
    super
    RideCreateJob.stripe_failures = 0
  end

  def test_concurrent_jobs_on_the_shared_connection_pool
    jobs = Array.new(JOBS) { |i| RideCreateJob.new("user#{i}", i) }
    queue = Queue.new
    jobs.each { |j| queue << j }
    # every job is also delivered twice, as an at-least-once queue may do
    jobs.each { |j| queue << RideCreateJob.deserialize(j.serialize) }
    THREADS.times { queue << nil }
    errors = Queue.new
    threads = Array.new(THREADS) do
      Thread.new do
        while (job = queue.pop)
          ActiveRecord::Base.connection_pool.with_connection do
            job.perform_now
          rescue AcidicJob::LockedIdempotencyKey
            nil # the twin delivery is running it right now
          rescue StandardError => e
            errors << e
          end
        end
      end
    end
    threads.each(&:join)
    first_error = errors.empty? ? nil : errors.pop
    assert_nil first_error, -> { "#{first_error.class}: #{first_error.message}\n#{first_error.backtrace.first(25).join("\n")}" }
    assert_equal JOBS, Ride.count
    assert_equal JOBS, Ride.distinct.count(:user)
    assert_equal JOBS, Audit.where(event: "ride_created").count
    assert_equal JOBS, AcidicJob::Key.where(recovery_point: "FINISHED").count
    assert_equal JOBS, AcidicJob::Staged.count
  end
end
