# frozen_string_literal: true

# Prints "SUMMARY ruby <part> <passed> <failed>" at the end of a minitest run (the
# convention of scripts/test.sh). The part comes from AJ_TEST_PART.
module Minitest
  class AcidicSummaryReporter < StatisticsReporter
    def report
      super
      failed = failures + errors
      passed = count - failed - skips
      io.puts "SUMMARY ruby #{ENV.fetch('AJ_TEST_PART', 'ruby')} #{passed} #{failed}"
    end
  end

  def self.plugin_acidic_summary_init(options)
    reporter << AcidicSummaryReporter.new(options[:io], options)
  end
end
Minitest.extensions << "acidic_summary"
