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

  # The operator's commands of `acidic-job` on the application's own connection and
  # classes, with their options from the environment:
  #   bin/rails acidic_job:list STATE=failed JOB=RideCreateJob
  #   bin/rails acidic_job:show KEY=...          bin/rails acidic_job:retry KEY=... (or ID=...)
  #   bin/rails acidic_job:reset KEY=... STEP=create_stripe_charge
  #   bin/rails acidic_job:retry ALL=1 STATE=failed JOB=RideCreateJob
  #   bin/rails acidic_job:prune FINISHED_BEFORE=7d
  # JSON=1 prints JSON. The task exits with the command's code (1: nothing matched or
  # refused, 2: a usage error).
  operator_options = {
    "STATE" => "--state", "JOB" => "--job", "KEY_PREFIX" => "--key-prefix", "OLDER_THAN" => "--older-than",
    "SINCE" => "--since", "LIMIT" => "--limit", "CURSOR" => "--cursor", "ORDER" => "--order", "ID" => "--id",
    "STEP" => "--to-step", "FINISHED_BEFORE" => "--finished-before", "BATCH_SIZE" => "--batch-size"
  }
  operator_flags = { "FORCE" => "--force", "ALL" => "--all", "JSON" => "--json" }
  {
    list: "List runs (STATE, JOB, KEY_PREFIX, OLDER_THAN, SINCE, LIMIT, CURSOR, ORDER)",
    show: "Show a run (KEY or ID)",
    retry: "Retry a run (KEY or ID, FORCE=1; ALL=1 with STATE, JOB, ...)",
    reset: "Restart a run at a step (KEY or ID, STEP; FORCE=1)",
    unlock: "Release the lock of a run whose worker died (KEY or ID; FORCE=1)",
    discard: "Mark a run finished and failed (KEY or ID; FORCE=1; ALL=1 with filters)",
    recover: "Hand stranded and due failed runs back to their queue (LIMIT)",
    prune: "Delete runs finished before FINISHED_BEFORE ago (e.g. 7d)",
    stats: "Counts by state and job, the oldest stranded run, the staged backlog"
  }.each do |command, description|
    desc "acidic_job: #{description}"
    task command => :environment do
      require "acidic_job/cli"
      argv = [command.to_s]
      argv << ENV["KEY"] if ENV["KEY"] && !ENV["KEY"].empty?
      operator_options.each do |var, flag|
        next if command != :list && var == "ORDER"

        argv.push(flag, ENV[var]) if ENV[var] && !ENV[var].empty?
      end
      operator_flags.each { |var, flag| argv << flag if %w[1 true yes].include?(ENV[var].to_s.downcase) }
      code = AcidicJob::CLI.run(argv, admin: AcidicJob::Admin.current)
      exit(code) unless code.zero?
    end
  end
end
