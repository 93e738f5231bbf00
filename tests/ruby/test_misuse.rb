# frozen_string_literal: true

require_relative "test_helper"
require "securerandom"

# Misuse and hostile data from the Ruby side: attributes that cannot be decoded, and job
# arguments of 1 MB and 50 MB.
class MisuseTest < AcidicTest
  class NoteJob < ActiveJob::Base
    include AcidicJob

    def perform(text)
      idempotently(with: { note: nil }) do
        step :write
        step :after
      end
    end

    def write
      Audit.create!(event: "write #{arguments_for_perform.first.size}")
      self.note = "written"
      raise "stop after write" if Trace.count(:stop).positive?
    end

    def after = Audit.create!(event: "after #{@note}")
  end

  def setup
    skip "ActiveRecord connection sharing only" if owned?
    super
  end

  {
    "a YAML syntax error" => "--- {a: [\n",
    "a class that is not loaded" => "--- !ruby/object:Stripe::NotLoadedHere\nid: 1\n"
  }.each do |what, doc|
    define_method("test_undecodable_attributes_(#{what})_unlock_record_and_name_the_run") do
      Trace << :stop
      job = NoteJob.new("x")
      assert_raises(RuntimeError) { job.perform_now }
      key = key_for(job)
      conn = ActiveRecord::Base.connection # the column as another program left it (no coder)
      conn.execute("UPDATE acidic_job_keys SET attr_accessors = #{conn.quote(doc)} WHERE id = #{key.id}")
      e = assert_raises(AcidicJob::UndecodableAttributes) { job.perform_now }
      assert_kind_of AcidicJob::Error, e
      assert_match(/run #{key.id} .*attr_accessors/, e.message)
      row = AcidicJob::Key.where(id: key.id).pluck(:locked_at, :recovery_point, :error_object).first
      assert_nil row[0], "the lock is released"
      assert_equal "write", row[1]
      assert_instance_of AcidicJob::UndecodableAttributes, row[2], "the error is recorded"
      assert_equal 0, Audit.count, "nothing of either attempt is kept"
    end
  end

  def with_md5_index_on_postgres
    return yield unless postgres?

    conn = ActiveRecord::Base.connection
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS misuse_md5_idx ON acidic_job_keys (idempotency_key, job_name, md5(job_args))")
    conn.execute("DROP INDEX IF EXISTS idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args")
    yield
  ensure
    if postgres?
      conn.execute("DELETE FROM acidic_job_keys")
      conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args " \
                   "ON acidic_job_keys (idempotency_key, job_name, job_args)")
      conn.execute("DROP INDEX IF EXISTS misuse_md5_idx")
    end
  end

  def test_one_and_fifty_megabyte_arguments
    if postgres?
      e = assert_raises(AcidicJob::Error) { NoteJob.perform_now(SecureRandom.hex(5_000)) }
      assert_match(/too large for the unique index acidic_job 0.7.0's migration/, e.message, "0.7.0's index: the error says so")
    end
    with_md5_index_on_postgres do
      [1, 50].each do |mb|
        text = SecureRandom.hex(mb * 512 * 1024)
        job = NoteJob.new(text)
        assert job.perform_now, "#{mb} MB"
        assert job.perform_now, "#{mb} MB again: the same run, finished"
        key = key_for(job)
        assert_equal text.size, key.job_args.first.size
        assert key.succeeded?
      end
      assert_equal 2, AcidicJob::Key.count
      assert_equal ["write 1048576", "after written", "write 52428800", "after written"], Audit.order(:id).pluck(:event)
    end
  end
end
