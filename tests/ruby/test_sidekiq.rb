# frozen_string_literal: true

require_relative "test_helper"
require "sidekiq/api"

# Sidekiq workers in this process (performed directly, pushes go to the real Redis).
class SidekiqInProcessTest < AcidicTest
  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
    skip "needs AJ_TEST_REDIS_URL" unless ENV["AJ_TEST_REDIS_URL"]
    Sidekiq.redis { |r| r.del("queue:default", "queue:inprocess") }
  end

  class CallbackWorker
    include Sidekiq::Worker
    include AcidicJob

    before_perform { Trace << :before }
    after_perform { Trace << :after }
    around_perform do |_worker, block|
      Trace << :around_in
      block.call
      Trace << :around_out
    end

    def perform(x)
      idempotently { step :work }
    end

    def work = Trace << :work
  end

  class StagingWorker
    include Sidekiq::Worker
    include AcidicJob

    def perform(n)
      idempotently { step :stage }
    end

    def stage
      PlainWorker.perform_transactionally(arguments_for_perform.first, "x")
      ReceiptJob.perform_transactionally(9)
    end
  end

  class SidekiqAwaiting
    include Sidekiq::Worker
    include AcidicJob
    sidekiq_options queue: "inprocess"

    def perform(label)
      idempotently do
        step :out, awaits: ["PlainWorker"]
        step :in
      end
    end

    def out = Trace << :out
    def in = Trace << :in
  end

  def queue_items(name = "default")
    Sidekiq::Queue.new(name).map(&:item)
  end

  def test_workers_get_activejob_style_callbacks
    CallbackWorker.new.perform(1)
    assert_equal %i[before around_in work around_out after], Trace.events
  end

  def test_the_key_is_the_jid_or_the_sha1_of_class_and_arguments
    worker = WorkerWithSteps.new
    worker.jid = "abc123"
    worker.perform("x")
    assert_equal "abc123", worker.idempotency_key_value
    assert AcidicJob::Key.find_by(idempotency_key: "abc123").succeeded?

    bare = WorkerWithSteps.new
    bare.perform("y")
    expected = Digest::SHA1.hexdigest(["WorkerWithSteps", ["y"]].flatten.join)
    assert_equal expected, bare.idempotency_key_value
    assert AcidicJob::Key.find_by(idempotency_key: expected).succeeded?
    assert_equal [:first, [:second, 1], :first, [:second, 1]], Trace.events
  end

  def test_persisted_attributes_in_a_worker
    worker = WorkerWithSteps.new
    worker.perform("x")
    assert_equal({ "label" => "x", "counter" => 1 }, AcidicJob::Key.last.attr_accessors.to_h)
  end

  def test_perform_transactionally_pushes_workers_and_jobs_after_commit
    StagingWorker.new.perform(4)
    staged = AcidicJob::Staged.order(:id).to_a
    assert_equal %w[sidekiq activejob], staged.map(&:adapter)
    assert_equal [4, "x"], staged.first.job_args
    item = queue_items.first
    assert_equal "PlainWorker", item["class"]
    assert_equal [4, "x", { "staged_job_gid" => staged.first.to_global_id.to_s }], item["args"]
    assert_equal [ReceiptJob], enqueued.map { |j| j[:job] }
  end

  def test_a_plain_worker_acknowledges_through_the_server_middleware
    StagingWorker.new.perform(4)
    item = queue_items.first
    middleware = AcidicJob::Integrations::SidekiqAcknowledgement.new
    worker = PlainWorker.new
    middleware.call(worker, item, "default") { worker.perform(*item["args"]) }
    assert_equal [[:plain_worker, [4, "x"]]], Trace.events
    assert_equal %w[activejob], AcidicJob::Staged.pluck(:adapter)
  end

  def test_an_acidic_worker_acknowledges_in_after_perform
    StagingWorker.new.perform(4)
    gid = queue_items.first["args"].last
    w = WorkerWithSteps.new
    w.perform("z", gid)
    assert_equal "z", w.arguments_for_perform.first
    assert_equal gid["staged_job_gid"], w.staged_job_gid
    assert_equal %w[activejob], AcidicJob::Staged.pluck(:adapter)
  end

  def test_awaits_with_open_source_sidekiq_stage_a_continuation_with_the_same_jid
    parent = SidekiqAwaiting.new
    parent.jid = "parentjid"
    assert parent.perform("p")
    child = queue_items.first
    assert_equal "PlainWorker", child["class"]
    middleware = AcidicJob::Integrations::SidekiqAcknowledgement.new
    worker = PlainWorker.new
    middleware.call(worker, child, "default") { worker.perform(*child["args"]) }
    continuation = queue_items("inprocess").first
    assert_equal "parentjid", continuation["jid"]
    assert_equal SidekiqAwaiting.name, continuation["class"]
    resumed = SidekiqAwaiting.new
    resumed.jid = continuation["jid"]
    resumed.perform(*continuation["args"])
    assert_equal [:out, [:plain_worker, []], :in], Trace.events
    assert AcidicJob::Key.find_by(idempotency_key: "parentjid").succeeded?
    assert_equal 0, AcidicJob::Staged.count
  end
end

# Sidekiq required after acidic_job (Gemfile order): the hooks are installed once a
# worker includes AcidicJob.
class SidekiqLoadOrderTest < Minitest::Test
  def test_hooks_are_installed_when_sidekiq_comes_second
    script = <<~RUBY
      require "acidic_job"
      require "sidekiq"
      before = Sidekiq::Worker::ClassMethods.method_defined?(:perform_transactionally)
      class LateWorker
        include Sidekiq::Worker
        include AcidicJob
      end
      class PlainLateWorker
        include Sidekiq::Worker
      end
      print [before, PlainLateWorker.respond_to?(:perform_transactionally)].inspect
    RUBY
    out = IO.popen([RbConfig.ruby, "-e", script], err: %i[child out], &:read)
    assert_equal "[false, true]", out.strip
  end
end
