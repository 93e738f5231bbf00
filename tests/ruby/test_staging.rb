# frozen_string_literal: true

require_relative "test_helper"

# Transactionally staged jobs: staged in the step's transaction, pushed after commit,
# deleted after they performed; the drain delivers rows that were never pushed.
class StagingTest < AcidicTest
  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
    RideCreateJob.stripe_failures = 0
    AbortableJob.abort_enqueue = false
  end

  class AbortableJob < ActiveJob::Base
    include AcidicJob
    cattr_accessor :abort_enqueue, default: false
    before_enqueue { throw :abort if self.class.abort_enqueue }
    def perform(n) = Trace << [:abortable, n]
  end

  class StagingStepJob < ActiveJob::Base
    include AcidicJob
    cattr_accessor :fail_after_staging, default: false
    def perform
      idempotently { step :stage }
    end

    def stage
      AbortableJob.perform_transactionally(1)
      Ride.create!(user: "staged")
      raise "rolled back" if self.class.fail_after_staging
    end
  end

  def test_a_staged_job_is_enqueued_after_commit_and_deleted_after_it_performed
    RideCreateJob.perform_now("ada", 2000)
    assert_equal 1, AcidicJob::Staged.count
    staged = AcidicJob::Staged.first
    assert_equal "activejob", staged.adapter
    assert_equal "ReceiptJob", staged.job_name
    assert_equal [Ride.last.id], staged.job_args["arguments"]
    assert_equal [ReceiptJob], enqueued.map { |j| j[:job] }
    assert_equal({ "staged_job_gid" => staged.to_global_id.to_s }, enqueued.first[:args].last)
    perform_enqueued!
    assert_equal [[:receipt_sent, Ride.last.id]], Trace.events.grep(Array)
    assert_equal 0, AcidicJob::Staged.count
  end

  def test_a_rolled_back_step_stages_and_enqueues_nothing
    StagingStepJob.fail_after_staging = true
    assert_raises(RuntimeError) { StagingStepJob.perform_now }
    assert_equal 0, AcidicJob::Staged.count
    assert_equal 0, Ride.count
    assert_empty enqueued
  ensure
    StagingStepJob.fail_after_staging = false
  end

  def test_perform_transactionally_outside_a_step_uses_the_model_after_commit
    ActiveRecord::Base.transaction do
      AbortableJob.perform_transactionally(5)
      assert_empty enqueued, "nothing is pushed before commit"
    end
    assert_equal 1, enqueued.size
    perform_enqueued!
    assert_equal [[:abortable, 5]], Trace.events
    assert_equal 0, AcidicJob::Staged.count
  end

  def test_a_deleted_staged_row_is_not_an_error
    RideCreateJob.perform_now("ada", 2000)
    AcidicJob::Staged.delete_all
    perform_enqueued!
    assert_equal 1, Trace.events.grep(Array).size
  end

  def test_the_drain_delivers_committed_rows_that_were_never_pushed
    AbortableJob.abort_enqueue = true # the push fails, as if the process had died
    StagingStepJob.perform_now
    assert_empty enqueued
    assert_equal 1, AcidicJob::Staged.count
    AbortableJob.abort_enqueue = false
    assert_equal 0, AcidicJob.drain(older_than: 3600), "too young to drain"
    assert_equal 1, AcidicJob.drain(older_than: 0)
    assert_equal 1, enqueued.size
    assert_equal 0, AcidicJob.drain(older_than: 3600), "a delivered row waits again"
    perform_enqueued!
    assert_equal [[:abortable, 1]], Trace.events
    assert_equal 0, AcidicJob::Staged.count
    assert_equal 0, AcidicJob.drain(older_than: 0)
  end

  def test_the_rake_task_drains
    require "rake"
    AbortableJob.abort_enqueue = true
    StagingStepJob.perform_now
    AbortableJob.abort_enqueue = false
    app = Rake::Application.new
    Rake.application = app
    load Gem.loaded_specs["acidic_job"].full_gem_path + "/bindings/ruby/lib/tasks/acidic_job.rake"
    ENV["OLDER_THAN"] = "0"
    out, = capture_io { app["acidic_job:drain"].invoke }
    assert_match(/pushed 1 staged job/, out)
    assert_equal 1, enqueued.size
  ensure
    ENV.delete("OLDER_THAN")
  end

  def test_deliver_transactionally_stages_the_mail_delivery_job
    klass = Class.new(ActiveJob::Base) do
      include AcidicJob
      def self.name = "MailingJob"
      def perform
        idempotently { step :mail }
      end

      def mail
        RideMailer.with(to: "ada@example.com", ride_id: 3).confirm_charge.deliver_transactionally
        RideMailer.plain_receipt("bob@example.com").deliver_transactionally
      end
    end
    klass.perform_now
    assert_equal %w[ActionMailer::MailDeliveryJob ActionMailer::MailDeliveryJob], AcidicJob::Staged.pluck(:job_name)
    assert_equal 2, enqueued.size
    perform_enqueued!
    assert_equal [["ada@example.com"], ["bob@example.com"]], ActionMailer::Base.deliveries.map(&:to)
    assert_equal 0, AcidicJob::Staged.count
  end

  def test_staged_jobs_of_a_step_commit_with_the_steps_writes
    RideCreateJob.perform_now("ada", 2000)
    key = AcidicJob::Key.last
    assert key.succeeded?
    assert_equal 1, AcidicJob::Staged.count
    assert_equal 1, Ride.count
  end
end
