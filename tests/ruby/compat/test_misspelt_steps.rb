# frozen_string_literal: true

require_relative "test_helper"
require "rails"

class MisspeltStepJob < ActiveJob::Base
  include AcidicJob

  def perform
    idempotently do
      step :create_ride
      step :chrage_card # misspelt: the method is charge_card
      step :send_receipt
    end
  end

  def create_ride
    Audit.create!(verb: "ride")
  end

  def charge_card
    Audit.create!(verb: "charge")
  end

  def send_receipt
    Audit.create!(verb: "receipt")
  end
end

class MisspeltStepsTest < ActiveSupport::TestCase
  teardown do
    AcidicJob.config.strict_steps = false
  end

  test "a step without a method is skipped, as in 0.7.0, with one warning per job class naming it" do
    log = StringIO.new
    AcidicJob.config.logger = Logger.new(log, level: Logger::WARN)

    assert_equal true, MisspeltStepJob.perform_now
    assert_equal true, MisspeltStepJob.perform_now

    assert_equal %w[ride receipt ride receipt], Audit.order(:id).pluck(:verb)
    warnings = log.string.lines.grep(/MisspeltStepJob/)
    assert_equal 1, warnings.size, log.string
    assert_includes warnings.first, ":chrage_card"
    assert_includes warnings.first, "strict_steps"
  end

  test "strict_steps raises before the run starts" do
    AcidicJob.configure { |config| config.strict_steps = true }

    error = assert_raises(AcidicJob::MissingStepMethod) { MisspeltStepJob.perform_now }

    assert_match(/MisspeltStepJob has no method for step :chrage_card/, error.message)
    assert_kind_of AcidicJob::Error, error
    assert_equal 0, AcidicJob::Key.count
    assert_equal 0, Audit.count
  end

  test "the logger defaults to Rails.logger under Rails" do
    rails_log = StringIO.new
    Rails.logger = Logger.new(rails_log)
    AcidicJob.config.logger = nil

    assert_same Rails.logger, AcidicJob.config.logger
  ensure
    Rails.logger = nil
  end
end
