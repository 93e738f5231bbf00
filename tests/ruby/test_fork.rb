# frozen_string_literal: true

require_relative "test_helper"

# Forking (Sidekiq, Puma): a child never uses a connection opened before the fork; with
# ActiveRecord sharing, the child borrows its own reconnected connection.
class ForkTest < AcidicTest
  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
    RideCreateJob.stripe_failures = 0
  end

  def test_jobs_run_in_parent_and_child_after_fork
    assert RideCreateJob.perform_now("parent", 1)
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      result = begin
        RideCreateJob.perform_now("child", 2).to_s
      rescue Exception => e # rubocop:disable Lint/RescueException
        "#{e.class}: #{e.message}"
      end
      writer.write(result)
      writer.close
      exit!(0)
    end
    writer.close
    Process.wait(pid)
    assert_equal "true", reader.read
    assert RideCreateJob.perform_now("parent again", 3)
    assert_equal %w[child parent parent\ again].sort, Ride.pluck(:user).sort
  end
end
