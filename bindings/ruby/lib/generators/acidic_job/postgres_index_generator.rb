# frozen_string_literal: true

require "rails/generators"
require "rails/generators/active_record/migration"

module AcidicJob
  # `rails generate acidic_job:postgres_index`: on PostgreSQL, replace 0.7.0's unique
  # index over (idempotency_key, job_name, job_args) by one over
  # (idempotency_key, job_name, md5(job_args)). A btree index row holds at most about
  # 2.7 KB, so with the 0.7.0 index a job whose YAML arguments are longer cannot be
  # started at all ("index row size exceeds btree maximum").
  class PostgresIndexGenerator < Rails::Generators::Base
    include ActiveRecord::Generators::Migration

    desc "PostgreSQL: writes a migration replacing acidic_job 0.7.0's unique index " \
         "idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args by one over " \
         "(idempotency_key, job_name, md5(job_args)), so that job arguments longer than " \
         "a btree row (about 2.7 KB) can be stored. Then run `rails db:migrate`."

    source_root File.expand_path("templates", __dir__)

    def copy_postgres_index_migration
      migration_template "replace_acidic_job_keys_unique_index_migration.rb.erb",
                         "#{db_migrate_path}/replace_acidic_job_keys_unique_index.rb",
                         skip: true
    end

    protected

    def migration_class
      "ActiveRecord::Migration[#{ActiveRecord::VERSION::MAJOR}.#{ActiveRecord::VERSION::MINOR}]"
    end
  end
end
