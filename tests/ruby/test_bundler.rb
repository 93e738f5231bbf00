# frozen_string_literal: true

# Bundler, offline: an application whose Gemfile takes acidic_job from a git repository
# (Bundler builds the extension) or from a path (after `rake compile` in the checkout),
# then `bundle install --local` and a job. Each runs on a clean clone of this checkout's
# HEAD, with its own GEM_HOME and only the Debian-installed gems besides.
require "minitest/autorun"
require "tmpdir"
require "open3"
require "rbconfig"
require_relative "support/summary_plugin"

class BundlerTest < Minitest::Test
  ROOT = File.expand_path("../..", __dir__)

  APP = <<~'RUBY'
    require "bundler/setup"
    require "active_job"
    require "acidic_job"
    ActiveJob::Base.logger = Logger.new(nil)
    ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: ARGV.fetch(0))
    ActiveRecord::Base.connection.create_table(:notes, force: true) { |t| t.string :body }
    class Note < ActiveRecord::Base; end
    class NoteJob < ActiveJob::Base
      include AcidicJob
      def perform(body)
        idempotently with: { body: body } do
          step :write
          step :write_again
        end
      end
      def write = Note.create!(body: @body)
      def write_again = Note.create!(body: "#{@body} again")
    end
    job = NoteJob.new("hello")
    extension = $LOADED_FEATURES.grep(/acidic_job_ext/)
    print [job.perform_now, job.perform_now, Note.pluck(:body), AcidicJob::Key.last.recovery_point,
           extension.size].inspect
  RUBY

  def setup
    @dir = Dir.mktmpdir("aj-bundler")
    @head = git("rev-parse", "HEAD").strip
    @system_gem_path = run!({ "GEM_HOME" => nil, "GEM_PATH" => nil }, "gem", "env", "gempath").strip
  end

  def teardown
    FileUtils.rm_rf(@dir)
  end

  def git(*args)
    run!({}, "git", "-C", ROOT, *args)
  end

  def run!(env, *cmd, chdir: @dir)
    out, status = Open3.capture2e(env, *cmd, chdir: chdir)
    assert status.success?, "#{cmd.join(' ')} failed:\n#{out}"
    out
  end

  # A clone of HEAD alone: what a fresh checkout of the branch holds.
  def clean_clone(name)
    path = File.join(@dir, name)
    run!({}, "git", "clone", "-q", "--no-local", ROOT, path)
    run!({}, "git", "-C", path, "checkout", "-q", @head)
    path
  end

  def bundle_env(app)
    { "GEM_HOME" => File.join(@dir, "gems"), "GEM_PATH" => "#{File.join(@dir, 'gems')}:#{@system_gem_path}",
      "BUNDLE_GEMFILE" => File.join(app, "Gemfile"), "BUNDLE_SILENCE_ROOT_WARNING" => "1",
      "BUNDLE_USER_HOME" => File.join(@dir, "bundle-home"), "RUBYOPT" => nil }
  end

  def make_app(gem_line)
    app = File.join(@dir, "app")
    FileUtils.mkdir_p(app)
    File.write(File.join(app, "Gemfile"), <<~GEMFILE)
      gem "activejob"
      gem "sqlite3"
      #{gem_line}
    GEMFILE
    File.write(File.join(app, "app.rb"), APP)
    app
  end

  def install_and_run(app)
    run!(bundle_env(app), "bundle", "install", "--local", chdir: app)
    run!(bundle_env(app), "bundle", "exec", RbConfig.ruby, "app.rb", File.join(@dir, "app.db"), chdir: app)
  end

  def test_git_source_builds_the_extension_and_runs_a_job
    repo = clean_clone("repo")
    app = make_app(%(gem "acidic_job", git: "#{repo}", ref: "#{@head}"))

    out = install_and_run(app)

    assert_equal '[true, true, ["hello", "hello again"], "FINISHED", 1]', out.lines.last
  end

  def test_path_source_after_rake_compile_runs_a_job
    checkout = clean_clone("checkout")
    run!({}, "rake", "compile", chdir: checkout)
    app = make_app(%(gem "acidic_job", path: "#{checkout}"))

    out = install_and_run(app)

    assert_equal '[true, true, ["hello", "hello again"], "FINISHED", 1]', out.lines.last
  end

  def test_path_source_without_rake_compile_says_so_in_one_line
    checkout = clean_clone("checkout")
    app = make_app(%(gem "acidic_job", path: "#{checkout}"))
    run!(bundle_env(app), "bundle", "install", "--local", chdir: app)

    out, status = Open3.capture2e(bundle_env(app), "bundle", "exec", RbConfig.ruby, "-e", 'require "acidic_job"',
                                  chdir: app)

    refute status.success?
    message = out.lines.grep(/LoadError/)
    assert_equal 1, message.size, out
    assert_includes message.first, "acidic_job: the native extension is not built; run `rake compile` in #{checkout}"
  end
end
