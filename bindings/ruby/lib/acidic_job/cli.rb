# frozen_string_literal: true

require "thor"
require "acidic_job"

module AcidicJob
  # The `acidic-job` command (and `bin/rails acidic_job:*`): AcidicJob::Admin for the
  # engineer on call. Tables by default, --json for scripts. Exit codes: 0 done, 1 nothing
  # matched or the action was refused (the message says why), 2 a usage error.
  class CLI < Thor
    EXIT_OK = 0
    EXIT_NOTHING = 1
    EXIT_USAGE = 2

    # Refusals and lookups that found nothing: exit 1 with the core's message.
    REFUSED = [NotFound, StateError, LockedIdempotencyKey, UnknownRecoveryPoint].freeze

    FILTER_OPTIONS = {
      state: { type: :string, banner: "STATE[,STATE]",
               desc: "running, stranded, failed, dead, awaiting, queued, succeeded, discarded, finished" },
      job: { type: :string, banner: "NAME", desc: "only runs of this job class" },
      key_prefix: { type: :string, banner: "PREFIX", desc: "only keys that start with PREFIX" },
      older_than: { type: :string, banner: "AGE", desc: "not updated for AGE (45s, 90m, 1h, 7d, 2w)" },
      since: { type: :string, banner: "DATE", desc: "updated at or after DATE (2026-12-01, ISO 8601; UTC)" }
    }.freeze

    class << self
      # Run the command line; returns the exit code (the executable exits with it).
      # `admin` replaces the store --database names (the Rails tasks pass the app's).
      def run(argv, admin: nil, out: $stdout, err: $stderr)
        previous = Thread.current[:acidic_job_cli]
        Thread.current[:acidic_job_cli] = { admin: admin, out: out, err: err }
        code = start(help_form(argv), debug: true)
        code.is_a?(Integer) ? code : EXIT_OK
      rescue Thor::Error, InvalidArgument => e
        err.puts "acidic-job: #{one_line(e.message)}"
        err.puts "Run `acidic-job help` or `acidic-job help COMMAND`." if e.is_a?(Thor::Error)
        EXIT_USAGE
      rescue *REFUSED => e
        err.puts "acidic-job: #{one_line(e.message)}"
        EXIT_NOTHING
      rescue Interrupt
        err.puts "\nacidic-job: interrupted (what was committed before stays committed)"
        130
      rescue Error, ::ActiveRecord::ActiveRecordError, LoadError, SystemCallError => e
        err.puts "acidic-job: #{one_line(e.message)}"
        EXIT_NOTHING
      ensure
        Thread.current[:acidic_job_cli] = previous
      end

      # `acidic-job COMMAND --help` is `acidic-job help COMMAND`.
      def help_form(argv)
        command = argv.find { |a| !a.start_with?("-") }
        command && (argv & %w[--help -h]).any? ? ["help", command] : argv.dup
      end

      def exit_on_failure?
        true
      end

      def one_line(message)
        message.to_s.gsub(/\s*\n\s*/, " ").strip
      end

      def filter_options
        FILTER_OPTIONS.each { |name, spec| method_option name, **spec }
      end

      def action_options(default_state)
        method_option :id, type: :numeric, desc: "the run's id (for a key that names several runs)"
        method_option :force, type: :boolean, default: false,
                              desc: "also when the run's lock is live (its worker is known to be dead)"
        method_option :all, type: :boolean, default: false,
                            desc: "every run the filters select (default state: #{default_state})"
        filter_options
        method_option :batch_size, type: :numeric, banner: "N", desc: "runs per transaction with --all (default 100)"
      end
    end

    package_name "acidic-job"
    check_unknown_options!

    class_option :database, type: :string, banner: "URL",
                            desc: "SQLite path or sqlite:PATH, or a PostgreSQL URL (default: $ACIDIC_JOB_DATABASE_URL, then $DATABASE_URL)"
    class_option :lock_timeout, type: :numeric, banner: "SECONDS",
                                desc: "the workers' lock timeout: locks younger than this are live (default 90)"
    class_option :json, type: :boolean, default: false, desc: "print JSON instead of tables"
    class_option :require, type: :string, repeatable: true, banner: "FILE",
                           desc: "require FILE first (config/environment.rb: the app's classes, queues and connection)"

    desc "list", "List runs, newest first"
    filter_options
    method_option :limit, type: :numeric, default: 50, desc: "runs per page (at most 1000)"
    method_option :cursor, type: :numeric, desc: "the next page: the cursor printed under the previous one"
    method_option :order, type: :string, default: "desc", enum: %w[desc asc], desc: "newest (desc) or oldest (asc) first"
    def list
      page = admin.list(**filters, limit: options[:limit], cursor: options[:cursor], order: options[:order])
      if json?
        emit_json(page)
      elsif page.runs.empty?
        say_out "no runs match"
      else
        table(%w[ID KEY JOB STATE STEP ATTEMPTS LOCKED UPDATED ERROR],
              page.runs.map { |r| run_row(r) })
        say_out "next page: --cursor #{page.next_cursor}" if page.next_cursor
      end
      page.runs.empty? ? EXIT_NOTHING : EXIT_OK
    end

    desc "show [KEY]", "Show a run: steps, error, attributes, staged jobs, batch"
    method_option :id, type: :numeric, desc: "the run's id (for a key that names several runs)"
    def show(key = nil)
      detail = admin.show(target(key))
      json? ? emit_json(detail) : print_detail(detail)
      EXIT_OK
    end

    desc "retry [KEY]", "Clear a run's error and enqueue it again: it resumes at its recovery point"
    action_options("failed,dead")
    def retry(key = nil)
      act(:retry, key)
    end

    desc "reset [KEY] --to-step STEP", "Restart a run at STEP (back or forward); the steps from there run again"
    method_option :to_step, type: :string, banner: "STEP", desc: "a step of the run's workflow (required)"
    action_options("failed,dead")
    def reset(key = nil)
      raise Thor::Error, "reset needs --to-step STEP" if options[:to_step].to_s.empty?

      act(:reset, key, step: options[:to_step])
    end

    desc "unlock [KEY]", "Release the lock of a run whose worker died (recovery then hands it back)"
    action_options("stranded")
    def unlock(key = nil)
      act(:unlock, key)
    end

    desc "discard [KEY]", "Mark a run finished and failed so that it never runs again (the row stays)"
    action_options("failed,dead")
    def discard(key = nil)
      act(:discard, key)
    end

    desc "drain", "Hand staged jobs that were committed but never enqueued to their queue"
    method_option :older_than, type: :string, banner: "AGE", desc: "staged longer ago than AGE (default 300s)"
    def drain
      result = admin.drain(older_than: options[:older_than] || AcidicJob.config.drain_older_than)
      json? ? emit_json(result) : say_out("delivered #{result.delivered} staged job(s)")
      EXIT_OK
    end

    desc "recover", "Hand stranded runs and failed runs whose retry is due back to their queue"
    method_option :limit, type: :numeric, default: 0, desc: "look at N runs at most (0: all that are due)"
    def recover
      result = admin.recover(limit: options[:limit])
      json? ? emit_json(result) : say_out("requeued #{result.requeued} run(s), #{result.dead} dead")
      EXIT_OK
    end

    desc "prune --finished-before AGE", "Delete the rows of runs that finished more than AGE ago (7d, 36h, ...)"
    method_option :finished_before, type: :string, banner: "AGE", desc: "e.g. 7d (required)"
    method_option :state, type: :string, banner: "STATE", desc: "succeeded or discarded (default: both)"
    method_option :job, type: :string, banner: "NAME", desc: "only runs of this job class"
    method_option :batch_size, type: :numeric, banner: "N", desc: "rows per transaction (default 100)"
    def prune
      raise Thor::Error, "prune needs --finished-before AGE (e.g. 7d)" if options[:finished_before].to_s.empty?

      result = with_progress("prune") do |progress|
        admin.prune(finished_before: options[:finished_before], state: options[:state], job: options[:job],
                    batch_size: options[:batch_size], &progress)
      end
      json? ? emit_json(result) : say_out("deleted #{result.deleted} finished run(s)")
      result.deleted.zero? ? EXIT_NOTHING : EXIT_OK
    end

    desc "stats", "Counts by state and job, the oldest stranded run, the staged backlog, open batches"
    def stats
      stats = admin.stats
      json? ? emit_json(stats) : print_stats(stats)
      EXIT_OK
    end

    private

    def io
      Thread.current[:acidic_job_cli] || { out: $stdout, err: $stderr }
    end

    def say_out(text = "")
      io[:out].puts text
    end

    def json?
      options[:json]
    end

    def emit_json(object)
      say_out JSON.pretty_generate(object.as_json)
    end

    # The Admin to work with: the one the caller gave (Rails tasks), the application's
    # connection once --require loaded it, or a store of its own on --database.
    def admin
      @admin ||= begin
        Array(options[:require]).each { |file| require File.expand_path(file) }
        given = io[:admin]
        url = options[:database] || ENV["ACIDIC_JOB_DATABASE_URL"] || ENV["DATABASE_URL"]
        if given
          given
        elsif url && !url.empty?
          Admin.connect(core_url(url), lock_timeout: options[:lock_timeout] || AcidicJob.config.lock_timeout)
        elsif options[:require] && defined?(::ActiveRecord::Base) && ::ActiveRecord::Base.connected?
          Admin.current
        else
          raise Thor::Error, "no database: pass --database URL (a SQLite path or a PostgreSQL URL) " \
                             "or set ACIDIC_JOB_DATABASE_URL; in a Rails app: bin/rails acidic_job:#{current_command_chain.last}"
        end
      end
    end

    # A SQLite path becomes sqlite:PATH; a missing file is refused (opening it would
    # create an empty database).
    def core_url(url)
      return url if url.match?(%r{\Apostgres(ql)?://}i)

      path = url.sub(/\Asqlite3?:(\/\/)?/i, "")
      raise Error, "no SQLite database at #{path}: check the path of --database" unless path == ":memory:" || File.exist?(path)

      "sqlite:#{path}"
    end

    def filters
      FILTER_OPTIONS.keys.to_h { |name| [name, options[name]] }.compact
    end

    def target(key)
      if options[:id]
        raise Thor::Error, "pass either KEY or --id" if key && !options[:all]

        options[:id].to_i
      elsif key
        key
      else
        raise Thor::Error, "name the run: KEY or --id ID#{' (or --all with filters)' if options.key?(:all)}"
      end
    end

    def act(action, key, step: nil)
      if options[:all]
        raise Thor::Error, "--all takes filters, not a KEY or --id" if key || options[:id]

        result = with_progress(action.to_s) do |progress|
          admin.bulk(action, filter: filters, step: step, force: options[:force],
                             batch_size: options[:batch_size], &progress)
        end
        json? ? emit_json(result) : say_out("#{PAST[action]} #{result.changed} run(s), skipped #{result.skipped}")
        return result.changed.zero? ? EXIT_NOTHING : EXIT_OK
      end
      raise Thor::Error, "filters (--#{filters.keys.first.to_s.tr('_', '-')}) need --all" unless filters.empty?

      run = step ? admin.reset(target(key), step: step, force: options[:force]) : admin.public_send(action, target(key), force: options[:force])
      if json?
        emit_json({ "ok" => true, "run" => run.as_json })
      else
        say_out "#{PAST[action]} run #{run.id} (key #{run.key}, #{run.job_name}): now #{run.state} at #{run.recovery_point}"
      end
      EXIT_OK
    end

    PAST = { retry: "retried", reset: "reset", unlock: "unlocked", discard: "discarded" }.freeze

    # A progress bar on a terminal (stderr); nothing but the final count otherwise.
    def with_progress(title)
      err = io[:err]
      unless err.respond_to?(:tty?) && err.tty?
        return yield(nil)
      end

      require "ruby-progressbar"
      bar = nil
      result = yield(lambda do |done, total|
        bar ||= ProgressBar.create(title: title, total: [total, done].max, output: err,
                                   format: "%t |%B| %c/%C %e")
        bar.total = done if done > bar.total
        bar.progress = done
      end)
      bar&.finish unless bar&.finished?
      result
    end

    def time_text(time)
      time ? time.utc.strftime("%Y-%m-%d %H:%M:%S") : "-"
    end

    def run_row(run)
      error = run.error_class ? [run.error_class, run.error_message].reject { |s| s.nil? || s.empty? }.join(": ") : run.error_message
      [run.id.to_s, run.key.to_s, run.job_name.to_s, run.state, run.recovery_point.to_s, run.attempts.to_s,
       run.locked_at ? "#{time_text(run.locked_at)} #{run.locked_by}".strip : "-", time_text(run.updated_at),
       truncate(error.to_s, 60)]
    end

    def truncate(text, width)
      text.length > width ? "#{text[0, width - 1]}…" : text
    end

    def table(header, rows)
      rows = [header] + rows
      widths = header.each_index.map { |i| rows.map { |r| r[i].to_s.length }.max }
      rows.each do |row|
        say_out row.each_with_index.map { |cell, i| i == row.size - 1 ? cell.to_s : cell.to_s.ljust(widths[i]) }.join("  ").rstrip
      end
    end

    def print_detail(d)
      r = d.run
      pairs = [
        ["run", "#{r.id} (key #{r.key})"], ["job", r.job_name], ["state", r.state],
        ["recovery point", r.recovery_point], ["attempts", r.attempts],
        ["locked", r.locked_at ? "since #{time_text(r.locked_at)} by #{r.locked_by || 'unknown'}" : "-"],
        ["created", time_text(r.created_at)], ["updated", time_text(r.updated_at)],
        ["last run", time_text(r.last_run_at)], ["recover at", time_text(r.recover_at)]
      ]
      pairs << ["dead since", time_text(r.dead_at)] if r.dead_at
      pairs << ["awaits batch", r.awaiting_batch_id] if r.awaiting_batch_id
      pairs << ["resumes as", d.resume ? "#{d.resume.adapter} #{d.resume.job_name}" : "- (no resume description: retried through the job class)"]
      width = pairs.map { |k, _| k.length }.max
      pairs.each { |k, v| say_out "#{k.ljust(width)}  #{v}" }
      say_out
      say_out "steps"
      say_out "  (no workflow recorded)" if d.steps.empty?
      d.steps.each do |s|
        awaits = s.awaits.empty? ? "" : "  awaits #{s.awaits.join(', ')}"
        say_out "  #{s.state.ljust(8)} #{s.name}#{awaits}"
      end
      if d.error
        say_out
        say_out "error (#{d.error.format})"
        say_out "  class    #{d.error.class_name || '-'}"
        message = d.error.message.to_s.split("\n")
        say_out "  message  #{message.first}"
        message.drop(1).each { |line| say_out "           #{line}" }
        d.error.backtrace.each_with_index { |line, i| say_out "  #{i.zero? ? 'at      ' : '        '} #{line}" }
      end
      if d.attributes
        say_out
        say_out "attributes (#{d.attributes_format}, not loaded)"
        d.attributes.each_line { |line| say_out "  #{line.chomp}" }
      end
      if d.job_args
        say_out
        say_out "job arguments"
        d.job_args.each_line { |line| say_out "  #{line.chomp}" }
      end
      say_out
      say_out "staged jobs#{d.staged.empty? ? ': none' : ''}"
      d.staged.each do |s|
        say_out "  #{s.id}  #{s.adapter} #{s.job_name}  created #{time_text(s.created_at)}  " \
                "delivered #{time_text(s.delivered_at)}#{s.batch_id ? "  batch #{s.batch_id}" : ''}"
      end
      return unless d.batch

      b = d.batch
      say_out
      say_out "batch #{b.id}: step #{b.step}, #{b.remaining} job(s) remaining, then " \
              "#{b.continuation_job_name || '-'} (since #{time_text(b.created_at)})"
    end

    def print_stats(s)
      say_out "runs: #{s.total}"
      table(%w[STATE COUNT], s.states.map { |c| [c.state, c.count.to_s] }) unless s.states.empty?
      unless s.jobs.empty?
        say_out
        table(%w[JOB STATE COUNT], s.jobs.map { |c| [c.job_name.to_s, c.state, c.count.to_s] })
      end
      say_out
      if (o = s.oldest_stranded)
        say_out "oldest stranded: run #{o.id} (key #{o.key}, #{o.job_name}) locked since #{time_text(o.locked_at)} by #{o.locked_by || 'unknown'}"
      else
        say_out "oldest stranded: none"
      end
      staged = s.oldest_staged ? " (oldest: #{s.oldest_staged.id} #{s.oldest_staged.job_name}, created #{time_text(s.oldest_staged.created_at)})" : ""
      say_out "staged backlog: #{s.staged_backlog}#{staged}"
      batch = s.oldest_batch ? " (oldest: #{s.oldest_batch.id} of run #{s.oldest_batch.run_id}, since #{time_text(s.oldest_batch.created_at)})" : ""
      say_out "open batches: #{s.open_batches}#{batch}"
    end
  end
end
