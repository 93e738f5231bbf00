# frozen_string_literal: true

require_relative "bindings/ruby/lib/acidic_job/version"

Gem::Specification.new do |spec|
  spec.name = "acidic_job"
  spec.version = AcidicJob::VERSION
  spec.authors = ["acidic_job contributors"]
  spec.summary = "Idempotent, resumable multi-step jobs for ActiveJob and Sidekiq"
  spec.description = "A drop-in replacement for acidic_job 0.7.0 on a C core: every step " \
                     "of a job commits in one database transaction with its recovery point, " \
                     "staged jobs go through a transactional outbox, and awaited jobs fan in " \
                     "exactly once. SQLite and PostgreSQL."
  spec.homepage = "https://github.com/fractaledmind/acidic_job"
  spec.license = "MIT"
  spec.required_ruby_version = ">= 2.7"
  spec.metadata = {
    "homepage_uri" => spec.homepage,
    "source_code_uri" => spec.homepage,
    "changelog_uri" => "#{spec.homepage}/blob/main/CHANGELOG.md",
    "rubygems_mfa_required" => "true"
  }

  # Globs, not `git ls-files`: uncommitted files must ship too. The extension compiles the
  # C core straight from core/ (the one copy of it).
  spec.files = Dir[
    "acidic_job.gemspec", "Rakefile",
    "core/include/*.h", "core/warning-flags.txt",
    "core/src/*.{c,h}",
    "ext/acidic_job/*.{c,h,rb}",
    "bindings/ruby/lib/**/*.{rb,rake,erb}", "bindings/ruby/exe/*",
    "web/index.html", "web/assets/*", # the dashboard's front end, shared with Python
    "bindings/ruby/README.md", "README.md", "UPGRADING.md", "CHANGELOG.md", "LICENSE"
  ]
  spec.require_paths = ["bindings/ruby/lib"]
  spec.extensions = ["ext/acidic_job/extconf.rb"]
  spec.bindir = "bindings/ruby/exe"
  spec.executables = ["acidic-job"]

  spec.add_dependency "activerecord", ">= 6.1", "< 8"
  spec.add_dependency "activesupport", ">= 6.1", "< 8"
  spec.add_dependency "globalid", ">= 0.4", "< 2"
  # the acidic-job command
  spec.add_dependency "ruby-progressbar", ">= 1.10", "< 2"
  spec.add_dependency "thor", ">= 1.0", "< 2"
end
