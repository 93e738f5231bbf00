# frozen_string_literal: true

require_relative "test_helper"
require "rails/generators"
require "generators/acidic_job_generator"
require "generators/acidic_job/postgres_index_generator"

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

  def test_describes_itself_and_takes_no_name
    out, = capture_io { Rails::Generators.invoke("acidic_job", ["--help"]) }
    refute_includes out, "NAME"
    assert_match(/rails generate acidic_job \[options\]/, out)
    assert_match(/Writes the migrations of acidic_job's tables/, out)
    assert_equal AcidicJob::PostgresIndexGenerator, Rails::Generators.find_by_namespace("acidic_job:postgres_index")
    out, = capture_io { Rails::Generators.invoke("acidic_job:postgres_index", ["--help"]) }
    assert_match(/md5\(job_args\)/, out)
    refute_includes out, "NAME"
  end

  def test_postgres_index_generator_writes_one_migration_once
    Dir.mktmpdir do |dir|
      out, = capture_io { AcidicJob::PostgresIndexGenerator.start([], destination_root: dir) }
      files = Dir[File.join(dir, "db/migrate/*.rb")]
      assert_equal ["replace_acidic_job_keys_unique_index"], files.map { |f| File.basename(f, ".rb").sub(/\A\d+_/, "") }
      assert_match(%r{create\s+db/migrate/\d+_replace_acidic_job_keys_unique_index}, out)
      text = File.read(files[0])
      assert_includes text, "ON acidic_job_keys (idempotency_key, job_name, md5(job_args))"
      assert_includes text, "ActiveRecord::Migration[#{ActiveRecord::VERSION::MAJOR}.#{ActiveRecord::VERSION::MINOR}]"
      out, = capture_io { AcidicJob::PostgresIndexGenerator.start([], destination_root: dir) }
      assert_equal 1, Dir[File.join(dir, "db/migrate/*.rb")].size
      assert_match(/identical|skip/, out)
    end
  end

  # On a database of its own: 0.7.0's index refuses long arguments, the md5 one takes
  # them, keeps the uniqueness, and migrates down again.
  def test_postgres_index_migration_takes_long_job_arguments
    skip "PostgreSQL" unless postgres?
    Dir.mktmpdir do |dir|
      capture_io do
        AcidicJobGenerator.start([], destination_root: dir)
        AcidicJob::PostgresIndexGenerator.start([], destination_root: dir)
      end
      script = <<~RUBY
        require "pg"
        require "active_job"
        require "acidic_job"
        ActiveJob::Base.logger = Logger.new(nil)
        ActiveJob::Base.queue_adapter = :test
        admin = PG.connect(ARGV[0])
        admin.exec("DROP DATABASE IF EXISTS acidic_generator_index")
        admin.exec("CREATE DATABASE acidic_generator_index")
        url = ARGV[0].sub(%r{/[^/?]*(\\?|\\z)}) { "/acidic_generator_index\#{Regexp.last_match(1)}" }
        ActiveRecord::Base.establish_connection(url)
        ActiveRecord::Migration.verbose = false
        migrations = Dir[File.join(ARGV[1], "*.rb")].sort
        context = ActiveRecord::MigrationContext.new(ARGV[1], ActiveRecord::SchemaMigration)
        last_0_7_0 = File.basename(migrations[1])[/\\A\\d+/].to_i
        context.up(last_0_7_0)
        class LongArgsJob < ActiveJob::Base
          include AcidicJob
          def perform(text) = idempotently { step :noop }
          def noop; end
        end
        require "securerandom"
        long = SecureRandom.base64(8_000) # incompressible: PostgreSQL compresses index rows
        before = begin
          LongArgsJob.perform_now(long)
        rescue StandardError => e
          e.class.name
        end
        context.migrate
        indexes = ActiveRecord::Base.connection.indexes(:acidic_job_keys).map(&:name).sort
        after = LongArgsJob.perform_now(long)
        key = AcidicJob::Key.last
        duplicate = begin
          AcidicJob::Key.connection.execute("INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, recovery_point, created_at, updated_at) SELECT idempotency_key, job_name, job_args, 'x', now(), now() FROM acidic_job_keys WHERE id = \#{key.id}")
          "inserted"
        rescue ActiveRecord::RecordNotUnique
          "unique"
        end
        AcidicJob::Key.delete_all # 0.7.0's index cannot hold them: down needs them gone
        context.down(last_0_7_0)
        down = ActiveRecord::Base.connection.indexes(:acidic_job_keys).map(&:name).sort
        ActiveRecord::Base.remove_connection
        admin.exec("DROP DATABASE acidic_generator_index")
        p [before, indexes, after, duplicate, down]
      RUBY
      out = IO.popen([RbConfig.ruby, "-e", script, ENV.fetch("AJ_TEST_PG_URL"), File.join(dir, "db/migrate")],
                     err: %i[child out], &:read)
      assert out.lines.last.to_s.start_with?("["), out
      before, indexes, after, duplicate, down = eval(out.lines.last) # rubocop:disable Security/Eval
      assert_match(/Error/, before, out)
      assert_equal ["idx_acidic_job_keys_on_key_n_job_name_n_md5_job_args"], indexes.grep(/job_args/),
                   "the migration's index replaced 0.7.0's (the core adds its own recover_at index)"
      assert_equal true, after
      assert_equal "unique", duplicate
      assert_equal ["idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"], down.grep(/job_args/)
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
