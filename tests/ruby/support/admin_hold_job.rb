# frozen_string_literal: true

# The job of the operator tests' worker process (support/admin_worker.rb): its second
# step holds the run's lock until the file AJ_ADMIN_RELEASE exists (or for a minute, for
# a worker the test SIGKILLs), after writing AJ_ADMIN_READY. It runs on acidic_job's own
# connection (config.database_url) and writes with AcidicJob.exec: on SQLite such a step
# takes the write lock only once it writes, so the operator's process can act meanwhile
# and meet the live lock itself. Loaded by the test process too, which enqueues it.
class AdminHoldJob < ActiveJob::Base
  include AcidicJob

  def perform(label)
    idempotently with: { label: label } do
      step :first
      step :hold
      step :last
    end
  end

  def first
    audit("first #{@label}")
  end

  def hold
    File.write(ENV.fetch("AJ_ADMIN_READY"), Process.pid.to_s)
    release = ENV["AJ_ADMIN_RELEASE"]
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
    sleep 0.02 until (release && File.exist?(release)) || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    audit("hold #{@label}")
  end

  def last
    audit("last #{@label}")
  end

  private

  def audit(event)
    now = Time.now.utc.strftime("%Y-%m-%d %H:%M:%S.%6N")
    AcidicJob.exec("INSERT INTO audits (event, created_at, updated_at) VALUES (?, ?, ?)", event, now, now)
  end
end
