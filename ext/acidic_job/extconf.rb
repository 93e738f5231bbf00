# frozen_string_literal: true

# Builds acidic_job/acidic_job_ext: the binding's rb_aj_*.c plus the C core's sources,
# compiled straight from core/src (the one copy; the gem ships it at its top level, two
# folders up from this file, as the checkout has it).
require "mkmf"

core = File.expand_path("../../core", __dir__)
core_src = File.join(core, "src")
core_inc = File.join(core, "include")
abort "acidic_job: the C core is missing (looked in #{core_src})" unless File.directory?(core_src)

# mkmf names objects by basename: the binding's files are prefixed rb_aj_ so that they
# never collide with a core file.
core_files = Dir[File.join(core_src, "*.c")].map { |f| File.basename(f) }.sort
own_files = Dir[File.join(__dir__, "*.c")].map { |f| File.basename(f) }.sort
clash = core_files & own_files
abort "acidic_job: binding and core files share names: #{clash.join(', ')}" unless clash.empty?

$INCFLAGS << " -I#{core_inc} -I#{core_src}"
$VPATH << core_src
$srcs = own_files + core_files

$CFLAGS << " -std=gnu11 -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter"
$CFLAGS << " -Wno-missing-field-initializers"
# The core's objects get the core's warning flags (core/warning-flags.txt, shared by every
# build of the core) after Ruby's own, which relax some of them for the binding's files.
core_warnings = File.readlines(File.join(core, "warning-flags.txt")).grep_v(/\A#/).join(" ").split
# Core symbols stay local to this extension: Ruby loads extension symbols process-wide.
$LDFLAGS << " -Wl,--exclude-libs,ALL"

abort "acidic_job: libsqlite3 (libsqlite3-dev) is required" unless have_library("sqlite3", "sqlite3_open_v2", "sqlite3.h")
pg_inc = `pg_config --includedir 2>/dev/null`.strip
$INCFLAGS << " -I#{pg_inc}" unless pg_inc.empty?
find_header("libpq-fe.h", "/usr/include/postgresql")
abort "acidic_job: libpq (libpq-dev) is required" unless have_library("pq", "PQconnectdb", "libpq-fe.h")
have_library("dl", "dlsym")
have_header("ruby/thread.h")

create_makefile("acidic_job/acidic_job_ext")
File.open("Makefile", "a") do |makefile|
  makefile.puts "#{core_files.map { |f| f.sub(/\.c\z/, '.o') }.join(' ')}: CFLAGS += #{core_warnings.join(' ')}"
end
