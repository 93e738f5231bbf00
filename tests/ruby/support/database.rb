# frozen_string_literal: true

require "pg" if ENV["AJ_TEST_DB"] == "postgres"
require "sqlite3"

# The test database: a fresh SQLite file under build/ruby-test, or a dedicated database
# on the PostgreSQL server of AJ_TEST_PG_URL. The schema comes from the generator.
module TestDatabase
  ROOT = File.expand_path("../../..", __dir__)
  DIR = File.join(ROOT, "build", "ruby-test")
  TABLES = %w[rides audits acidic_job_batches staged_acidic_jobs acidic_job_keys].freeze

  module_function

  def kind
    ENV.fetch("AJ_TEST_DB", "sqlite")
  end

  def postgres?
    kind == "postgres"
  end

  def owned?
    ENV["AJ_TEST_OWNED"] == "1"
  end

  def part
    ENV.fetch("AJ_TEST_PART", kind)
  end

  def sqlite_path
    File.join(DIR, "#{part}.db")
  end

  # A database of its own on the test server, named after the part.
  def pg_url
    base = ENV.fetch("AJ_TEST_PG_URL") { abort "AJ_TEST_PG_URL is not set" }
    name = "acidic_ruby_#{part.gsub(/[^a-z0-9]/, '_')}"
    @pg_url ||= begin
      admin = PG.connect(base)
      exists = admin.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", [name]).ntuples == 1
      admin.exec("CREATE DATABASE #{admin.quote_ident(name)}") unless exists
      admin.close
      base.sub(%r{/[^/?]*(\?|\z)}) { "/#{name}#{Regexp.last_match(1)}" }
    end
  end

  def ar_config
    if postgres?
      { url: pg_url, pool: 10 }
    else
      { adapter: "sqlite3", database: sqlite_path, timeout: 10_000, pool: 10 }
    end
  end

  def core_url
    postgres? ? pg_url : "sqlite:#{sqlite_path}"
  end

  def connect!
    FileUtils.mkdir_p(DIR)
    if !postgres? && !ENV["AJ_TEST_KEEP_DB"]
      Dir[sqlite_path + "*"].each { |f| File.delete(f) }
    end
    ActiveRecord::Base.establish_connection(ar_config)
    ActiveRecord::Base.logger = nil
    AcidicJob.config.connection_sharing = ENV.fetch("AJ_TEST_SHARING", "auto").to_sym
    AcidicJob.config.database_url = core_url if owned?
  end

  # The tables, through the generator's migrations (written once per run).
  def migrate!
    require "rails/generators"
    require "generators/acidic_job_generator"
    dir = File.join(DIR, "generated-#{part}")
    FileUtils.rm_rf(dir)
    FileUtils.mkdir_p(dir)
    silence { AcidicJobGenerator.start([], destination_root: dir) }
    conn = ActiveRecord::Base.connection
    %w[acidic_job_schema acidic_job_batches staged_acidic_jobs acidic_job_keys rides audits schema_migrations ar_internal_metadata].each do |t|
      conn.drop_table(t, if_exists: true)
    end
    ActiveRecord::Migration.verbose = false
    ActiveRecord::MigrationContext.new(File.join(dir, "db", "migrate"), ActiveRecord::SchemaMigration).migrate
    conn.create_table(:rides) do |t|
      t.string :user
      t.integer :amount
      t.string :stripe_charge_id
      t.timestamps
    end
    conn.create_table(:audits) do |t|
      t.string :event
      t.timestamps
    end
    ActiveRecord::Base.connection.schema_cache.clear!
    ActiveRecord::Base.descendants.each(&:reset_column_information)
  end

  def clean!
    conn = ActiveRecord::Base.connection
    TABLES.each { |t| conn.execute("DELETE FROM #{t}") if conn.table_exists?(t) }
  end

  def silence
    out = $stdout
    $stdout = File.open(File::NULL, "w")
    yield
  ensure
    $stdout = out
  end
end
