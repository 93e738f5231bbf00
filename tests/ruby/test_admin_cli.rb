# frozen_string_literal: true

require_relative "test_helper"
require_relative "support/admin_helpers"
require "open3"
require "pty"
require "rake"

# The installed gem's `acidic-job` executable, run as a subprocess against the test
# database (seeded by real workflows, a SIGKILLed worker and 0.7.0 rows), and the
# bin/rails acidic_job:* tasks on the application's connection.
class AdminCLITest < AcidicTest
  include AdminHelpers

  def setup
    skip "once per database (sqlite, postgres)" unless %w[sqlite postgres].include?(TestDatabase.part)
    super
    flunk "the installed gem's acidic-job is missing: #{executable}" unless File.executable?(executable)
  end

  # run.sh installs the built gem into GEM_HOME; its executable, never the source tree's.
  def executable
    File.join(ENV.fetch("GEM_HOME", ""), "bin", "acidic-job")
  end

  def database_arg
    postgres? ? TestDatabase.pg_url : TestDatabase.sqlite_path # a plain path works for SQLite
  end

  def cli_env
    { "RUBYLIB" => nil, "ACIDIC_JOB_DATABASE_URL" => nil, "DATABASE_URL" => nil }
  end

  # [stdout, stderr, exit code]
  def cli(*args, database: database_arg)
    argv = database ? [*args, "--database", database] : args
    out, err, status = Open3.capture3(cli_env, executable, *argv.map(&:to_s))
    [out, err, status.exitstatus]
  end

  def cli_json(*args, database: database_arg)
    out, err, code = cli(*args, "--json", database: database)
    assert_equal 0, code, "acidic-job #{args.join(' ')} --json: #{err}"
    JSON.parse(out)
  end

  def seed
    @ok = [succeeded_run("cli-ok-1"), succeeded_run("cli-ok-2")]
    @failed = [failed_run("cli-bad-1"), failed_run("cli-bad-2")]
    @waiting = awaiting_run
    @seven = insert_070_row("cli-070")
    enqueued.clear
  end

  def test_list_prints_a_table_json_and_exit_codes
    seed
    out, err, code = cli("list")
    assert_equal 0, code, err
    lines = out.lines
    assert_match(/\A\s*ID  KEY\s+JOB\s+STATE\s+STEP\s+ATTEMPTS  LOCKED FOR  ERROR\s+UPDATED$/, lines.first)
    assert_equal 6, lines.size - 1
    row = lines.find { |l| l.include?(@failed[0]) }
    assert_match(/AdminChargeJob\s+failed\s+charge\s+1\s+StripeError: card declined for cli-bad-1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, row)
    assert_match(/RideCreateJob\s+failed\s+create_stripe_charge\s+0\s+Stripe::CardError: Your card was declined\.\s+\d{4}-/,
                 lines.find { |l| l.include?("cli-070") })
    assert_match(/awaiting\s+fan_in|awaiting/, lines.find { |l| l.include?(@waiting) })

    json = cli_json("list", "--state", "failed", "--state", "dead")
    assert_equal ["cli-070", *@failed.reverse], json["runs"].map { |r| r["key"] }
    assert_nil json["next_cursor"]
    assert_equal AdminTest::RUN_JSON_KEYS.sort, json["runs"][0].keys.sort

    page = cli_json("list", "--limit", "4")
    assert_equal 4, page["runs"].size
    rest = cli_json("list", "--limit", "4", "--cursor", page["next_cursor"])
    assert_equal 2, rest["runs"].size
    assert_nil rest["next_cursor"]
    out, = cli("list", "--limit", "4")
    assert_equal "more: --cursor #{page['next_cursor']}", out.lines.last.chomp

    assert_equal @ok, cli_json("list", "--state", "succeeded", "--order", "asc")["runs"].map { |r| r["key"] }
    assert_equal [@failed[1]], cli_json("list", "--key-prefix", @failed[1][0, 10])["runs"].map { |r| r["key"] }

    out, err, code = cli("list", "--state", "succeeded", "--job", "NoSuchJob")
    assert_equal [1, "no runs match\n", ""], [code, out, err]
    out, err, code = cli("list", "--older-than", "1h", "--json")
    assert_equal 1, code
    assert_equal({ "runs" => [], "next_cursor" => nil }, JSON.parse(out))

    _, err, code = cli("list", "--state", "bogus")
    assert_equal 2, code
    assert_equal 1, err.lines.size, err
    assert_match(/bogus/, err)
    assert_match(/failed/, err, "the message lists the states")
    _, err, code = cli("list", "--since", "yesterday")
    assert_equal 2, code
    assert_match(/yesterday/, err)
  end

  def test_show_reads_a_run_and_a_0_7_0_row_without_its_classes
    seed
    out, err, code = cli("show", @failed[0])
    assert_equal 0, code, err
    assert_match(/^state\s+failed$/, out)
    assert_match(/^recovery point\s+charge$/, out)
    assert_match(/^  done\s+create_ride\n  current\s+charge\n  pending\s+notify$/, out)
    assert_match(/^error \(yaml\)\n  StripeError\n    card declined for cli-bad-1\n      \S+admin_helpers\.rb:\d+:in `charge'$/, out)
    assert_match(/^resume job\n  activejob AdminChargeJob$/, out)
    assert_match(/^attributes \(yaml, not loaded\)\n  --- \{"user":"cli-bad-1","ride_id":\d+\}\n/, out)

    out, err, code = cli("show", "cli-070")
    assert_equal 0, code, err
    assert_match(/^error \(yaml\)\n  Stripe::CardError\n    Your card was declined\.\n      app\/jobs\/ride_create_job\.rb:30/, out)
    assert_match(/!ruby\/object:Stripe::Charge/, out)
    assert_match(/^  none \(a run of acidic_job 0\.7\.0\)/, out)

    detail = cli_json("show", @waiting)
    assert_equal %w[attributes attributes_format batch error job_args resume run staged steps], detail.keys.sort
    assert_equal "awaiting", detail["run"]["state"]
    assert_equal 2, detail["staged"].size
    assert_equal "fan_out", detail["batch"]["step"]
    assert_equal detail["batch"]["id"], detail["run"]["awaiting_batch_id"]

    id = AcidicJob::Key.find_by(idempotency_key: @ok[0]).id
    assert_equal @ok[0], cli_json("show", "--id", id)["run"]["key"]

    out, err, code = cli("show", "no-such-key")
    assert_equal [1, ""], [code, out]
    assert_equal "acidic-job: no run has the idempotency key \"no-such-key\"\n", err

    insert_070_row("cli-twin", job_args: "---\n- a\n")
    insert_070_row("cli-twin", job_args: "---\n- b\n")
    _, err, code = cli("show", "cli-twin")
    assert_equal 2, code
    assert_match(/--id|id/, err)
    assert_equal 1, err.lines.size

    _, err, code = cli("show")
    assert_equal 2, code
    assert_match(/KEY or --id/, err)
  end

  def test_actions_and_their_refusals
    seed
    out, err, code = cli("retry", @ok[0])
    assert_equal [1, ""], [code, out]
    assert_match(/\Aacidic-job: cannot retry run \d+ .*succeeded/, err)
    assert_equal 1, err.lines.size
    out, _, code = cli("retry", @ok[0], "--json")
    assert_equal 1, code
    assert_equal "AJ_ESTATE", JSON.parse(out)["error"]["code"]

    out, err, code = cli("retry", @failed[0])
    assert_equal 0, code, err
    assert_match(/\Aretried run \d+ "#{@failed[0]}" \(AdminChargeJob\): it resumes at step "charge"; its resume job \(activejob\) is staged: the application's next drain sends it/, out)
    # this process has no job classes loaded: the resume job waits for a drain
    assert_equal 1, AcidicJob::Staged.where(job_name: "AdminChargeJob").count
    AcidicJob.drain(older_than: 0)
    perform_enqueued!
    assert AcidicJob::Key.find_by(idempotency_key: @failed[0]).succeeded?

    _, err, code = cli("reset", @ok[1], "--to-step", "no_such_step")
    assert_equal 1, code
    assert_match(/no_such_step/, err)
    _, err, code = cli("reset", @ok[1])
    assert_equal 2, code
    assert_match(/to-step/, err)
    json = cli_json("reset", @ok[1], "--to-step", "charge")
    assert_equal true, json["ok"]
    assert_equal %w[charge queued], json["run"].values_at("recovery_point", "state")

    _, err, code = cli("unlock", @failed[1])
    assert_equal 1, code
    assert_match(/not locked/, err)
    json = cli_json("discard", @failed[1])
    assert_equal "discarded", json["run"]["state"]
    _, _, code = cli("discard", @failed[1])
    assert_equal 1, code

    _, err, code = cli("retry", "--state", "failed")
    assert_equal 2, code
    assert_match(/filter options \(--state, --job, ...\) need --all/, err)
    _, err, code = cli("retry", @ok[0], "--all")
    assert_equal 2, code
    assert_match(/--all acts on a filter/, err)
    _, err, code = cli("retry", "--all", "--state", "succeeded")
    assert_equal 2, code, "retry does not apply to succeeded runs"
    assert_match(/succeeded/, err)
  end

  def test_bulk_retry_prune_and_a_progress_bar_on_a_terminal
    5.times { |i| other_failed_run("cli-many-#{i}") }
    3.times { succeeded_run }
    out, err, code = cli("retry", "--all", "--state", "failed", "--job", "AdminOtherJob", "--batch-size", "2")
    assert_equal 0, code, err
    assert_equal "retry: 5 run(s) changed, 0 skipped\n", out
    assert_equal "", err, "no progress bar off a terminal"
    assert_equal 5, AcidicJob::Key.queued.count
    out, _, code = cli("retry", "--all", "--state", "failed", "--json")
    assert_equal [1, { "changed" => 0, "skipped" => 0 }], [code, JSON.parse(out)]

    out, _, code = cli("prune", "--finished-before", "7d")
    assert_equal [0, "deleted 0 finished run(s)\n"], [code, out], "exit 0 also when none was due (cron)"

    # on a pseudo-terminal: a progress bar (ruby-progressbar) on stderr, then the count
    screen = +""
    status = nil
    PTY.spawn(cli_env, executable, "prune", "--finished-before", "0s", "--batch-size", "1", "--database", database_arg.to_s) do |reader, _writer, pid|
      begin
        reader.each_char { |c| screen << c }
      rescue Errno::EIO
        nil # the child closed the terminal
      end
      _, status = Process.wait2(pid)
    end
    assert_equal 0, status.exitstatus, screen
    assert_match(/prune \|=+\| 3\/3/, screen)
    assert_match(/deleted 3 finished run\(s\)/, screen)
    assert_equal 0, AcidicJob::Key.succeeded.count
    assert_equal 5, AcidicJob::Key.count
  end

  def test_stats_drain_recover_and_a_stranded_run
    with_config(retry_base: 3600) { seed } # the failed runs are not due during the test
    with_config(lock_timeout: LOCK_TIMEOUT) do
      key = stranded_run
      out, err, code = cli("list", "--state", "running", "--lock-timeout", "600")
      assert_equal 0, code, err
      assert_match(/running\s+hold\s+1\s+\d+s\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, out.lines[1])
      wait_for_lock_expiry
      out, err, code = cli("stats", "--lock-timeout", LOCK_TIMEOUT)
      assert_equal 0, code, err
      assert_match(/^runs: 7$/, out)
      assert_match(/^STATE\s+RUNS\nstranded\s+1\nfailed\s+3\nawaiting\s+1\nsucceeded\s+2$/, out)
      assert_match(/^JOB\s+STRANDED\s+FAILED\s+AWAITING\s+SUCCEEDED$/, out)
      assert_match(/^AdminChargeJob\s+2\s+2$/, out)
      assert_match(/^AdminHoldJob\s+1$/, out)
      assert_match(/^oldest stranded: run \d+ "#{key}" \(AdminHoldJob\) at step hold, locked \d+s ago by \S+:\d+$/, out)
      assert_match(/^staged jobs not acknowledged: 4 \(oldest: #\d+ activejob /, out)
      assert_match(/^open batches: 1 \(oldest: #\d+ of run \d+, step "fan_out": 2 job\(s\) to go/, out)
      stats = cli_json("stats", "--lock-timeout", LOCK_TIMEOUT)
      assert_equal key, stats["oldest_stranded"]["key"]
      assert_equal 7, stats["total"]
      assert_match AdminTest::ISO_TIME, stats["oldest_stranded"]["locked_at"]

      _, err, code = cli("unlock", key, "--lock-timeout", "600")
      assert_equal 1, code, "live for a 600 s lock timeout"
      assert_match(/force.*\(--force\)$/, err)
      out, err, code = cli("unlock", key, "--lock-timeout", LOCK_TIMEOUT)
      assert_equal 0, code, err
      assert_match(/\Aunlocked run \d+ "#{key}" \(AdminHoldJob\): recovery hands it back/, out)
      out, err, code = cli("recover", "--lock-timeout", LOCK_TIMEOUT)
      assert_equal [0, "requeued 1 run(s), 0 dead\n"], [code, out], err
      out, err, code = cli("drain", "--older-than", "0")
      assert_equal 0, code, err
      assert_match(/\Adelivered \d+ staged job\(s\)\n\z/, out)
    end
  end

  def test_help_usage_errors_and_messages_without_passwords
    out, _, code = cli("--help", database: nil)
    assert_equal 0, code
    %w[list show retry reset unlock discard drain recover prune stats].each { |c| assert_match(/acidic-job #{c}/, out) }
    out, _, code = cli("help", "reset", database: nil)
    assert_equal 0, code
    assert_match(/--to-step=STEP/, out)
    assert_match(/--force/, out)
    out, _, code = cli("prune", "--help", database: nil)
    assert_equal 0, code
    assert_match(/--finished-before=AGE/, out)

    _, err, code = cli("list", database: nil)
    assert_equal 2, code
    assert_match(/no database: pass --database URL/, err)
    out, _, code = Open3.capture3(cli_env.merge("ACIDIC_JOB_DATABASE_URL" => database_arg.to_s), executable, "stats")
    assert_equal [0, "runs: 0"], [code, out.lines.first.chomp], "the database from the environment"
    out, _, code = cli("--version", database: nil)
    assert_equal [0, "acidic-job, version #{AcidicJob::VERSION}\n"], [code, out]
    _, err, code = cli("list", "--colour", "red")
    assert_equal 2, code
    assert_match(/Unknown switches "--colour"/, err)
    _, err, code = cli("frobnicate", database: nil)
    assert_equal 2, code
    assert_match(/frobnicate/, err)

    _, err, code = cli("list", database: File.join(TestDatabase::DIR, "missing.db"))
    assert_equal 1, code
    assert_equal "acidic-job: no SQLite database at #{File.join(TestDatabase::DIR, 'missing.db')}: check the path of --database\n", err
    refute File.exist?(File.join(TestDatabase::DIR, "missing.db")), "nothing was created"

    _, err, code = cli("list", database: "postgresql://operator:s3cret-pw@127.0.0.1:1/acidic")
    assert_equal 1, code
    assert_equal 1, err.lines.size, err
    refute_includes err, "s3cret-pw"
  end

  # A database exactly as an acidic_job 0.7.0 application left it (its two tables, its
  # rows): the command reads it (the core adds its columns on first use), never loading
  # the error's class, and refuses to retry a run whose job class it does not have.
  def test_a_database_of_acidic_job_0_7_0
    skip "SQLite" if postgres?
    path = File.join(TestDatabase::DIR, "seven-#{Process.pid}.db")
    Dir["#{path}*"].each { |f| File.delete(f) }
    db = SQLite3::Database.new(path)
    db.execute_batch(<<~SQL)
      CREATE TABLE acidic_job_keys (id integer PRIMARY KEY AUTOINCREMENT NOT NULL, idempotency_key varchar NOT NULL,
        job_name varchar NOT NULL, job_args text, last_run_at datetime, locked_at datetime, recovery_point varchar NOT NULL,
        error_object text, attr_accessors text, workflow text, created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL);
      CREATE UNIQUE INDEX idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args
        ON acidic_job_keys (idempotency_key, job_name, job_args);
      CREATE TABLE staged_acidic_jobs (id integer PRIMARY KEY AUTOINCREMENT NOT NULL, adapter varchar NOT NULL,
        job_name varchar NOT NULL, job_args text, created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL);
    SQL
    insert = "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, recovery_point, " \
             "error_object, attr_accessors, workflow, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    at = "2021-10-29 12:00:00.000000"
    db.execute(insert, ["seven-failed", "RideCreateJob", "---\n- ada\n- 2000\n", at, "create_stripe_charge", SEVEN_ERROR,
                        SEVEN_ATTRIBUTES, SEVEN_WORKFLOW, at, at])
    db.execute(insert, ["seven-done", "RideCreateJob", "---\n- bob\n- 100\n", at, "FINISHED", nil, "--- {}\n",
                        SEVEN_WORKFLOW, at, at])
    db.close

    out, err, code = cli("list", database: path)
    assert_equal 0, code, err
    assert_match(/seven-failed\s+RideCreateJob\s+failed\s+create_stripe_charge\s+0\s+Stripe::CardError: Your card was declined\./, out)
    assert_match(/seven-done\s+RideCreateJob\s+succeeded\s+FINISHED/, out)
    out, err, code = cli("show", "seven-failed", database: path)
    assert_equal 0, code, err
    assert_match(/^  done     create_ride_and_audit_record\n  current  create_stripe_charge\n  pending  send_receipt$/, out)
    assert_match(/^  Stripe::CardError\n    Your card was declined\./, out)
    out, _, code = cli("stats", "--json", database: path)
    assert_equal 0, code
    assert_equal [{ "state" => "failed", "count" => 1 }, { "state" => "succeeded", "count" => 1 }], JSON.parse(out)["states"]

    _, err, code = cli("retry", "seven-failed", database: path)
    assert_equal 1, code
    assert_match(/cannot enqueue RideCreateJob: the class is not loaded here/, err)
    assert_equal 1, err.lines.size
    assert_equal "failed", cli_json("show", "seven-failed", database: path)["run"]["state"], "nothing changed"
    out, err, code = cli("retry", "seven-failed", "--no-enqueue", database: path)
    assert_equal 0, code, err
    assert_match(/nothing enqueued \(--no-enqueue\)/, out)
    assert_equal "queued", cli_json("show", "seven-failed", database: path)["run"]["state"]
  ensure
    Dir["#{path}*"].each { |f| File.delete(f) } if path
  end

  # bin/rails acidic_job:* on the application's connection, options from the environment.
  def test_rails_tasks_use_the_applications_connection
    seed
    app = Rake::Application.new
    Rake.application = app
    load File.join(Gem.loaded_specs["acidic_job"]&.full_gem_path || AdminHelpers::ROOT, "bindings/ruby/lib/tasks/acidic_job.rake")
    %w[list show retry reset unlock discard recover prune stats drain].each { |t| assert app.lookup("acidic_job:#{t}"), t }
    out, = capture_io { with_env("STATE" => "failed", "JSON" => "1") { app["acidic_job:list"].invoke } }
    assert_equal ["cli-070", *@failed.reverse], JSON.parse(out)["runs"].map { |r| r["key"] }

    app["acidic_job:show"].reenable
    out, = capture_io { with_env("KEY" => @failed[0]) { app["acidic_job:show"].invoke } }
    assert_match(/current\s+charge/, out)

    # the app's classes are loaded here: the resume job goes straight to its queue
    out, = capture_io { with_env("KEY" => @failed[0]) { app["acidic_job:retry"].invoke } }
    assert_match(/retried run/, out)
    assert_equal [AdminChargeJob], enqueued.map { |j| j[:job] }

    # a 0.7.0 row: enqueued through ActiveJob by the Ruby layer (RideCreateJob is loaded)
    app["acidic_job:retry"].reenable
    capture_io { with_env("ID" => @seven.to_s) { app["acidic_job:retry"].invoke } }
    assert_equal "cli-070", enqueued.last["job_id"]

    app["acidic_job:retry"].reenable
    error = nil
    _, err = capture_io do
      error = assert_raises(SystemExit) { with_env("KEY" => @ok[0]) { app["acidic_job:retry"].invoke } }
    end
    assert_equal 1, error.status
    assert_match(/succeeded/, err)
  ensure
    Rake.application = Rake::Application.new
  end

  def with_env(vars)
    saved = vars.keys.to_h { |k| [k, ENV[k]] }
    vars.each { |k, v| ENV[k] = v }
    yield
  ensure
    saved&.each { |k, v| ENV[k] = v }
  end
end
