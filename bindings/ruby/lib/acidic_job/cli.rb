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
      state: { type: :string, repeatable: true, banner: "STATE",
               desc: "runs in STATE: running, stranded, failed, dead, awaiting, queued, succeeded, " \
                     "discarded, finished (succeeded and discarded); repeatable, or comma-separated" },
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
      rescue Thor::Error => e
        err.puts "acidic-job: #{one_line(e.message)}"
        err.puts "Run `acidic-job help` or `acidic-job help COMMAND`."
        EXIT_USAGE
      rescue InvalidArgument => e
        message = one_line(e.message)
        message += " (pass --id ID)" if message.include?("more than one run")
        fail_with(EXIT_USAGE, message, e, argv, out, err)
      rescue LockedIdempotencyKey => e
        message = one_line(e.message)
        message += " (--force)" if message.include?("force")
        fail_with(EXIT_NOTHING, message, e, argv, out, err)
      rescue *REFUSED, Error, ::ActiveRecord::ActiveRecordError, LoadError, SystemCallError => e
        fail_with(EXIT_NOTHING, one_line(e.message), e, argv, out, err)
      rescue Interrupt
        err.puts "\nacidic-job: interrupted; what was committed before stays"
        130
      ensure
        Thread.current[:acidic_job_cli] = previous
      end

      # `acidic-job COMMAND --help` is `acidic-job help COMMAND`.
      def help_form(argv)
        command = argv.find { |a| all_commands.key?(a.tr("-", "_")) }
        command && (argv & %w[--help -h]).any? ? ["help", command] : argv.dup
      end

      def exit_on_failure?
        true
      end

      # One line on stderr; with --json also the API's error document on stdout.
      def fail_with(code, message, error, argv, out, err)
        if argv.include?("--json")
          name = error.respond_to?(:code) && error.code ? error.code.to_s : "error"
          out.puts JSON.pretty_generate("error" => { "code" => name, "message" => message })
        end
        err.puts "acidic-job: #{message}"
        code
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
    map %w[--version -v] => :version

    class_option :database, type: :string, aliases: "--url", banner: "URL",
                            desc: "a SQLite path or URL (sqlite:app.db), a PostgreSQL URL (postgresql://...); " \
                                  "default $ACIDIC_JOB_DATABASE_URL"
    class_option :lock_timeout, type: :numeric, banner: "SECONDS",
                                desc: "the workers' lock timeout: a run locked more recently is running (refused " \
                                      "without --force), longer is stranded; default 90, or $ACIDIC_JOB_LOCK_TIMEOUT"
    class_option :json, type: :boolean, default: false, desc: "print JSON (the dashboard API's documents) instead of text"
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
        table(%w[ID KEY JOB STATE STEP ATTEMPTS LOCKED\ FOR ERROR UPDATED],
              page.runs.map { |r| run_row(r) }, right: [0, 5, 6])
        say_out "more: --cursor #{page.next_cursor}" if page.next_cursor
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
    method_option :enqueue, type: :boolean, default: true,
                            desc: "--no-enqueue stages no job: for a run the application runs again itself"
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
    method_option :older_than, type: :numeric, default: 60, banner: "SECONDS",
                               desc: "only rows staged or last sent longer ago than this"
    def drain
      raise Thor::Error, "--older-than must be >= 0" if options[:older_than].negative?

      result = admin.drain(older_than: options[:older_than])
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
    method_option :state, type: :string, repeatable: true, banner: "STATE",
                          desc: "only these finished states: finished, succeeded, discarded (default: both)"
    method_option :job, type: :string, banner: "NAME", desc: "only runs of this job class"
    method_option :batch_size, type: :numeric, banner: "N", desc: "rows per transaction (default 100)"
    def prune
      raise Thor::Error, "prune needs --finished-before AGE (e.g. 7d)" if options[:finished_before].to_s.empty?

      result = with_progress("prune") do |progress|
        admin.prune(finished_before: options[:finished_before], state: options[:state]&.join(","), job: options[:job],
                    batch_size: options[:batch_size], &progress)
      end
      json? ? emit_json(result) : say_out("deleted #{result.deleted} finished run(s)")
      EXIT_OK # also when none was due: prune runs from cron
    end

    desc "version", "Print the version"
    def version
      say_out "acidic-job, version #{AcidicJob::VERSION}"
      EXIT_OK
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
        url = options[:database] || ENV["ACIDIC_JOB_DATABASE_URL"]
        # the command says what it did; the log (config.logger) keeps only errors, unless
        # the application's own logger came with --require or the Rails task
        AcidicJob.config.logger = Logger.new(io[:err], level: Logger::ERROR) unless given || options[:require]
        if given
          given
        elsif url && !url.empty?
          Admin.connect(core_url(url), lock_timeout: lock_timeout)
        elsif options[:require] && defined?(::ActiveRecord::Base) && ::ActiveRecord::Base.connected?
          Admin.current
        else
          raise Thor::Error, "no database: pass --database URL (a SQLite path or a PostgreSQL URL) " \
                             "or set ACIDIC_JOB_DATABASE_URL; in a Rails app: bin/rails acidic_job:#{current_command_chain.last}"
        end
      end
    end

    def lock_timeout
      value = options[:lock_timeout] || ENV["ACIDIC_JOB_LOCK_TIMEOUT"]
      value = AcidicJob.config.lock_timeout if value.to_s.empty?
      value.nil? ? nil : Float(value)
    rescue ArgumentError
      raise Thor::Error, "$ACIDIC_JOB_LOCK_TIMEOUT must be a number of seconds, not #{value.inspect}"
    end

    # A SQLite path becomes sqlite:PATH; a missing file is refused (opening it would
    # create an empty database).
    def core_url(url)
      return url if url.match?(/\Apostgres(ql)?:/i) || url.include?("=") # a URL or a conninfo string

      path = url.sub(/\Asqlite3?:(\/\/)?/i, "")
      raise Error, "no SQLite database at #{path}: check the path of --database" unless path == ":memory:" || File.exist?(path)

      "sqlite:#{path}"
    end

    def filters
      found = FILTER_OPTIONS.keys.to_h { |name| [name, options[name]] }.compact
      found[:state] = Array(found[:state]).join(",") if found.key?(:state)
      found
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
        raise Thor::Error, "--all acts on a filter: drop KEY and --id" if key || options[:id]
        raise Thor::Error, "--no-enqueue takes one run" if options[:enqueue] == false

        result = with_progress(action.to_s) do |progress|
          admin.bulk(action, filter: filters, step: step, force: options[:force],
                             batch_size: options[:batch_size], &progress)
        end
        json? ? emit_json(result) : say_out("#{action}: #{result.changed} run(s) changed, #{result.skipped} skipped")
        return result.changed.zero? ? EXIT_NOTHING : EXIT_OK
      end
      raise Thor::Error, "filter options (--state, --job, ...) need --all" unless filters.empty? && options[:batch_size].nil?

      run_ref = target(key)
      enqueue = options[:enqueue] != false
      run = case action
            when :retry then admin.retry(run_ref, force: options[:force], enqueue: enqueue)
            when :reset then admin.reset(run_ref, step: step, force: options[:force])
            else admin.public_send(action, run_ref, force: options[:force])
            end
      if json?
        emit_json({ "ok" => true, "run" => run.as_json })
      else
        say_out done_message(action, run, enqueue)
      end
      EXIT_OK
    end

    def describe(run)
      "run #{run.id} #{run.key.inspect}#{" (#{run.job_name})" if run.job_name}"
    end

    def done_message(action, run, enqueue)
      case action
      when :retry then "retried #{describe(run)}: it resumes at step #{run.recovery_point.inspect}; #{enqueue_note(run, enqueue)}"
      when :reset then "reset #{describe(run)} to step #{run.recovery_point.inspect}; #{enqueue_note(run, enqueue)}"
      when :unlock then "unlocked #{describe(run)}: recovery hands it back to its queue (acidic-job recover), or retry it"
      else "discarded #{describe(run)}: it never runs again (its row and error stay)"
      end
    end

    # Where the run's job went: to its queue (this process has the application's
    # adapters), or staged for the application's next drain.
    def enqueue_note(run, enqueue)
      return "nothing enqueued (--no-enqueue): run it again from the application" unless enqueue

      detail = admin.show(run.id)
      return "its job was enqueued through the application's #{detail.run.job_name} class" if detail.resume.nil?
      return "its resume job was handed to the #{detail.resume.adapter} adapter" unless admin.last_enqueue_error

      "its resume job (#{detail.resume.adapter}) is staged: the application's next drain sends it " \
        "(its workers, or acidic-job drain --require config/environment.rb)"
    end

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
      time ? time.utc.strftime("%Y-%m-%d %H:%M:%S") : ""
    end

    # How long ago: 45s, 3m07s, 2h05m, 1d03h.
    def age(time)
      return "" unless time

      seconds = [0, (Time.now - time).to_i].max
      if seconds < 60 then "#{seconds}s"
      elsif seconds < 3600 then format("%dm%02ds", seconds / 60, seconds % 60)
      elsif seconds < 86_400 then format("%dh%02dm", seconds / 3600, seconds % 3600 / 60)
      else format("%dd%02dh", seconds / 86_400, seconds % 86_400 / 3600)
      end
    end

    def error_line(run, width = 60)
      text = [run.error_class, run.error_message].reject { |p| p.nil? || p.empty? }.join(": ")
      text.length > width ? "#{text[0, width - 1]}…" : text
    end

    def run_row(run)
      [run.id.to_s, run.key.to_s, run.job_name.to_s, run.state, run.recovery_point.to_s, run.attempts.to_s,
       age(run.locked_at), error_line(run), time_text(run.updated_at)]
    end

    # Columns two spaces apart, under a header; `right` lists the right-aligned columns.
    def table(header, rows, right: [])
      rows = [header] + rows
      widths = header.each_index.map { |i| rows.map { |r| r[i].to_s.length }.max }
      rows.each do |row|
        cells = row.each_with_index.map { |cell, i| right.include?(i) ? cell.to_s.rjust(widths[i]) : cell.to_s.ljust(widths[i]) }
        say_out cells.join("  ").rstrip
      end
    end

    def fields(pairs)
      width = pairs.map { |k, _| k.length }.max
      pairs.each { |k, v| say_out "#{k.ljust(width)}  #{v}".rstrip }
    end

    def staged_line(s)
      parts = ["##{s.id}", s.adapter || "?", s.job_name || "?"]
      parts << "batch #{s.batch_id}" if s.batch_id
      parts << "staged #{time_text(s.created_at)}" if s.created_at
      parts << (s.delivered_at ? "sent #{time_text(s.delivered_at)}" : "never sent")
      parts.join("  ")
    end

    def batch_line(b)
      continuation = [b.continuation_adapter, b.continuation_job_name].compact.join(" ")
      "##{b.id} of run #{b.run_id}, step #{b.step.inspect}: #{b.remaining} job(s) to go" \
        "#{"; then #{continuation}" unless continuation.empty?}; opened #{time_text(b.created_at)}"
    end

    def print_detail(d)
      r = d.run
      say_out describe(r)
      locked = r.locked_at ? "since #{time_text(r.locked_at)} (#{age(r.locked_at)})#{" by #{r.locked_by}" if r.locked_by}" : "no"
      pairs = [["state", r.state], ["recovery point", r.recovery_point.to_s], ["attempts", r.attempts.to_s], ["locked", locked]]
      [["created", r.created_at], ["last run", r.last_run_at], ["updated", r.updated_at],
       ["recover at", r.recover_at], ["dead since", r.dead_at]].each { |name, t| pairs << [name, time_text(t)] if t }
      fields(pairs)
      unless d.steps.empty?
        say_out "\nsteps"
        d.steps.each { |st| say_out "  #{st.state.ljust(8)} #{st.name}#{"  (awaits #{st.awaits.join(', ')})" unless st.awaits.empty?}" }
      end
      if (e = d.error)
        say_out "\nerror (#{e.format})"
        say_out "  #{e.class_name || '(no class)'}"
        (e.message.to_s.lines.map(&:chomp).presence || [""]).each { |line| say_out "    #{line}".rstrip }
        e.backtrace.each { |line| say_out "      #{line}" }
      end
      if d.attributes
        say_out "\nattributes (#{d.attributes_format}, not loaded)"
        d.attributes.each_line { |line| say_out "  #{line.chomp}" }
      end
      if d.job_args
        say_out "\narguments"
        d.job_args.each_line { |line| say_out "  #{line.chomp}" }
      end
      unless d.staged.empty?
        say_out "\nstaged jobs (#{d.staged.size})"
        d.staged.each { |st| say_out "  #{staged_line(st)}" }
      end
      if d.batch
        say_out "\nawaiting batch"
        say_out "  #{batch_line(d.batch)}"
      end
      say_out "\nresume job"
      if d.resume
        say_out "  #{d.resume.adapter} #{d.resume.job_name}".rstrip
      else
        say_out "  none (a run of acidic_job 0.7.0): retry and reset enqueue #{r.job_name} with its arguments " \
                "where the class is loaded (bin/rails acidic_job:retry, or --require config/environment.rb)"
      end
    end

    def print_stats(s)
      say_out "runs: #{s.total}"
      table(%w[STATE RUNS], s.states.map { |c| [c.state, c.count.to_s] }, right: [1]) unless s.states.empty?
      unless s.jobs.empty?
        say_out
        states = s.states.map(&:state)
        by_job = s.jobs.group_by(&:job_name)
        table(["JOB", *states.map(&:upcase)],
              by_job.map { |job, counts| [job || "(none)", *states.map { |st| counts.find { |c| c.state == st }&.count.to_s }] },
              right: (1..states.size).to_a)
      end
      say_out
      if (o = s.oldest_stranded)
        say_out "oldest stranded: #{describe(o)} at step #{o.recovery_point}, locked #{age(o.locked_at)} ago#{" by #{o.locked_by}" if o.locked_by}"
      else
        say_out "oldest stranded: none"
      end
      staged = (o = s.oldest_staged) ? " (oldest: ##{o.id} #{o.adapter} #{o.job_name}#{", staged #{time_text(o.created_at)}" if o.created_at})" : ""
      say_out "staged jobs not acknowledged: #{s.staged_backlog}#{staged}"
      batch = s.oldest_batch ? " (oldest: #{batch_line(s.oldest_batch)})" : ""
      say_out "open batches: #{s.open_batches}#{batch}"
    end
  end
end
