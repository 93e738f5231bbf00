# frozen_string_literal: true

require_relative "test_helper"
require "rails/generators"
require "generators/acidic_job_generator"

# `rails generate acidic_job` (the suite's own tables come from these migrations too).
class GeneratorTest < AcidicTest
  def generate(dir)
    out, = capture_io { AcidicJobGenerator.start([], destination_root: dir) }
    [out, Dir[File.join(dir, "db/migrate/*.rb")].sort]
  end

  def test_writes_the_0_7_0_migrations_and_the_core_additions_once
    Dir.mktmpdir do |dir|
      _, files = generate(dir)
      assert_equal %w[create_acidic_job_keys create_staged_acidic_jobs add_acidic_job_batches],
                   files.map { |f| File.basename(f, ".rb").sub(/\A\d+_/, "") }
      assert_equal files.size, files.map { |f| File.basename(f)[/\A\d+/] }.uniq.size
      keys = File.read(files[0])
      assert_includes keys, "idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"
      assert_includes keys, "ActiveRecord::Migration[#{ActiveRecord::VERSION::MAJOR}.#{ActiveRecord::VERSION::MINOR}]"
      assert_includes keys, "t.text :workflow"
      assert_includes File.read(files[2]), "create_table :acidic_job_batches"

      # an application that already has 0.7.0's migrations gets only the new one
      File.delete(files[2])
      out, again = generate(dir)
      assert_equal 3, again.size
      assert_match(%r{(identical|skip)\s+db/migrate/\d+_create_acidic_job_keys}, out)
      assert_match(%r{create\s+db/migrate/\d+_add_acidic_job_batches}, out)
    end
  end

  # Jobs that ran before `rails db:migrate` had the core create the tables: the
  # generated migrations still run, and a 0.7.0 database gets just the additions.
  def test_the_migrations_run_on_tables_the_core_created_first
    Dir.mktmpdir do |dir|
      generate(dir)
      script = <<~RUBY
        require "acidic_job"
        db = ARGV[0]
        AcidicJob::Native::Store.open("sqlite:\#{db}").close
        ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: db)
        ActiveRecord::Migration.verbose = false
        ActiveRecord::MigrationContext.new(ARGV[1], ActiveRecord::SchemaMigration).migrate
        conn = ActiveRecord::Base.connection
        puts [conn.table_exists?(:acidic_job_batches), conn.column_exists?(:staged_acidic_jobs, :batch_id),
              ActiveRecord::SchemaMigration.count].inspect
      RUBY
      out = IO.popen([RbConfig.ruby, "-e", script, File.join(dir, "core.db"), File.join(dir, "db/migrate")],
                     err: %i[child out], &:read)
      assert_equal "[true, true, 3]", out.strip
    end
  end

  # Without the generator (a plain Ruby application), the tables are created on first
  # use through the application's own connection.
  def test_without_migrations_the_tables_are_created_on_first_use
    Dir.mktmpdir do |dir|
      script = <<~RUBY
        require "active_job"
        require "acidic_job"
        ActiveJob::Base.logger = Logger.new(nil)
        ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: ARGV[0])
        ActiveRecord::Base.connection.create_table(:notes) { |t| t.string :body }
        class Note < ActiveRecord::Base; end
        class NoteJob < ActiveJob::Base
          include AcidicJob
          def perform = idempotently { step :write }
          def write = Note.create!(body: "once")
        end
        job = NoteJob.new
        print [job.perform_now, job.perform_now, Note.count, AcidicJob::Key.last.recovery_point].inspect
      RUBY
      out = IO.popen([RbConfig.ruby, "-e", script, File.join(dir, "fresh.db")], err: %i[child out], &:read)
      assert_equal '[true, true, 1, "FINISHED"]', out.strip
    end
  end

  def test_the_generated_schema_is_what_the_core_expects
    skip "ActiveRecord connection sharing only" if owned?
    conn = ActiveRecord::Base.connection
    index = conn.indexes(:acidic_job_keys).find { |i| i.name == "idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args" }
    assert index&.unique
    assert_equal %w[idempotency_key job_name job_args], index.columns
    refute conn.columns(:acidic_job_keys).find { |c| c.name == "last_run_at" }.null
    assert conn.table_exists?(:acidic_job_batches)
    assert conn.column_exists?(:staged_acidic_jobs, :batch_id)
  end
end
