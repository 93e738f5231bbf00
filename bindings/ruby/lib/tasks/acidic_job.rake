# frozen_string_literal: true

task(:environment) unless Rake::Task.task_defined?(:environment)

namespace :acidic_job do
  desc "Push staged jobs that were committed but never enqueued (OLDER_THAN seconds, default 300)"
  task drain: :environment do
    require "acidic_job"
    older_than = ENV.fetch("OLDER_THAN", AcidicJob.config.drain_older_than).to_f
    count = AcidicJob.drain(older_than: older_than)
    puts "acidic_job: pushed #{count} staged job(s)"
  end
end
