# frozen_string_literal: true

require "rails/generators"
require "rails/generators/active_record/migration"

# `rails generate acidic_job`: the migrations of acidic_job 0.7.0 (acidic_job_keys,
# staged_acidic_jobs) plus the one for the core's additions (acidic_job_batches and
# staged_acidic_jobs.batch_id, see docs/decisions/001-storage-schema.md). Migrations an
# application already has (from 0.7.0) are skipped.
class AcidicJobGenerator < Rails::Generators::Base
  include ActiveRecord::Generators::Migration

  desc "Writes the migrations of acidic_job's tables: acidic_job_keys and staged_acidic_jobs " \
       "(as acidic_job 0.7.0 created them; skipped when the application has them) and " \
       "acidic_job_batches. Then run `rails db:migrate`. On PostgreSQL, see also " \
       "`rails generate acidic_job:postgres_index`."

  source_root File.expand_path("templates", __dir__)

  def copy_acidic_job_migration_files
    migration_template "create_acidic_job_keys_migration.rb.erb",
                       "#{db_migrate_path}/create_acidic_job_keys.rb",
                       migration_version: migration_version, skip: true
    migration_template "create_staged_acidic_jobs_migration.rb.erb",
                       "#{db_migrate_path}/create_staged_acidic_jobs.rb",
                       migration_version: migration_version, skip: true
    migration_template "add_acidic_job_batches_migration.rb.erb",
                       "#{db_migrate_path}/add_acidic_job_batches.rb",
                       migration_version: migration_version, skip: true
  end

  protected

  def migration_class
    "ActiveRecord::Migration[#{ActiveRecord::VERSION::MAJOR}.#{ActiveRecord::VERSION::MINOR}]"
  end

  def migration_version
    "[#{ActiveRecord::VERSION::MAJOR}.#{ActiveRecord::VERSION::MINOR}]"
  end
end
