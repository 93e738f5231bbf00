# frozen_string_literal: true

# Bad input through the gem, with the exact error asserted: values that are not acceptable
# are AcidicJob::InvalidArgument (never a bare ArgumentError, FloatDomainError or
# Encoding error from the layers below, never a crash).
require_relative "helper"

class BadInputJob < ActiveJob::Base
  include AcidicJob
  cattr_accessor :step_names, default: [:only]

  def perform(*args)
    idempotently with: { args: args } do
      steps = nil # the block's value is the step list (the last `step` call returns it)
      self.class.step_names.each { |name| steps = step(name) }
      steps
    end
  end

  def only; end
end

class StagedByBadInputJob < ActiveJob::Base
  include AcidicJob # perform_transactionally

  def perform; end
end

class StagingBadInputJob < ActiveJob::Base
  include AcidicJob

  def perform
    idempotently { step :stage }
  end

  def stage
    StagedByBadInputJob.perform_transactionally
  end
end

class BadInputTest < RelTest
  def teardown
    BadInputJob.step_names = [:only]
    AcidicJob.config.database_url = nil
    AcidicJob.config.lock_timeout = 90
    AcidicJob::Stores.reset_owned!
  end

  def perform_with_key(key)
    job = BadInputJob.new
    job.job_id = key
    job.perform_now
  end

  ["", "mysql://localhost/x", "sqlite:", "sqlite:/tmp/\0x.db", "postgres://@:99999/x",
   "sqlite:/tmp/\xff.db".dup.force_encoding("UTF-8")].each_with_index do |url, i|
    define_method("test_bad_database_url_#{i}_is_invalid") do
      AcidicJob.config.database_url = url
      error = assert_raises(StandardError) { BadInputJob.perform_now }
      assert_kind_of AcidicJob::InvalidArgument, error, "#{url.inspect}: #{error.class}: #{error.message}"
    end
  end

  [-1, Float::NAN, "soon", -Float::INFINITY].each_with_index do |value, i|
    define_method("test_bad_lock_timeout_#{i}_is_invalid") do
      AcidicJob.config.lock_timeout = value
      error = assert_raises(StandardError) { BadInputJob.perform_now }
      assert_kind_of AcidicJob::InvalidArgument, error, "#{value.inspect}: #{error.class}: #{error.message}"
    end
  end

  # Past what 64 bits of milliseconds hold is the longest timeout (FloatDomainError and
  # RangeError before): the job runs.
  [Float::INFINITY, 1e300].each_with_index do |value, i|
    define_method("test_endless_lock_timeout_#{i}_is_the_longest") do
      AcidicJob.config.lock_timeout = value
      assert BadInputJob.perform_now
    end
  end

  [-1, Float::NAN, "soon"].each_with_index do |value, i|
    define_method("test_bad_drain_age_#{i}_is_invalid") do
      error = assert_raises(StandardError) { AcidicJob.drain(older_than: value) }
      assert_kind_of AcidicJob::InvalidArgument, error, "#{value.inspect}: #{error.class}: #{error.message}"
    end
  end

  # Nothing is older than forever: a staged job last handed out in 2001 stays, a drain of
  # age 0 takes it.
  [Float::INFINITY, 1e300].each_with_index do |value, i|
    define_method("test_endless_drain_age_#{i}_delivers_nothing") do
      StagingBadInputJob.perform_now
      ActiveRecord::Base.connection.execute("UPDATE staged_acidic_jobs SET updated_at = '2001-01-01 00:00:00'")
      enqueued.clear
      assert_equal 0, AcidicJob.drain(older_than: value)
      assert_empty enqueued
      assert_equal 1, AcidicJob.drain(older_than: 0)
      assert_equal 1, enqueued.size
    end
  end

  ["a\0b", "\xff\xfe".dup.force_encoding("UTF-8"), "\xed\xa0\x80".dup.force_encoding("UTF-8"), "x" * 256].each_with_index do |key, i|
    define_method("test_bad_key_#{i}_is_invalid") do
      error = assert_raises(StandardError) { perform_with_key(key) }
      assert_kind_of AcidicJob::InvalidArgument, error, "#{key.inspect}: #{error.class}: #{error.message}"
    end
  end

  [[:"a\0b"], [:""], [:FINISHED], ["\xff".dup.force_encoding("UTF-8")], [("x" * 256).to_sym]].each_with_index do |names, i|
    define_method("test_bad_step_name_#{i}_is_invalid") do
      BadInputJob.step_names = names
      error = assert_raises(StandardError) { BadInputJob.perform_now }
      assert_kind_of AcidicJob::InvalidArgument, error, "#{names.inspect}: #{error.class}: #{error.message}"
    end
  end

  def test_duplicate_steps_are_refused
    BadInputJob.step_names = %i[only only]
    assert_raises(AcidicJob::DuplicateStepName) { BadInputJob.perform_now }
  end

  def test_no_steps_are_refused
    BadInputJob.step_names = []
    assert_raises(AcidicJob::NoDefinedSteps) { BadInputJob.perform_now }
  end

  def test_arguments_with_invalid_utf8_run_or_are_refused_cleanly
    bad = "\xff\xfe".dup.force_encoding("UTF-8")
    begin
      assert BadInputJob.perform_now(bad)
    rescue StandardError => e
      assert_kind_of AcidicJob::Error, e, "#{e.class}: #{e.message}"
    end
  end

  def test_native_open_of_an_empty_url_is_invalid
    assert_raises(AcidicJob::InvalidArgument) { AcidicJob::Native::Store.open("", AcidicJob.config.store_options) }
  end

  def test_exec_outside_a_step_is_misuse
    assert_raises(AcidicJob::Misuse) { AcidicJob.exec("SELECT 1") }
  end
end
