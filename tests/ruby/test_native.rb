# frozen_string_literal: true

require_relative "test_helper"
require "stringio"

# The extension: loading from the installed gem, the error classes (one per core code),
# bad input, stores and runs used directly.
class NativeTest < AcidicTest
  def test_loads_the_installed_gem_and_its_extension
    spec = Gem.loaded_specs.fetch("acidic_job")
    assert_equal AcidicJob::VERSION, spec.version.to_s
    assert $LOADED_FEATURES.any? { |f| f.end_with?("acidic_job/acidic_job_ext.so") && f.start_with?(ENV.fetch("GEM_HOME")) },
           "the extension comes from the installed gem"
    assert_kind_of String, AcidicJob::VERSION
    assert_equal "0.9.0", AcidicJob::Native::CORE_VERSION
  end

  def test_every_core_code_has_its_own_error_class_under_acidic_job_error
    classes = AcidicJob::Native::CODES.map do |name, code|
      klass = AcidicJob::Native.error_class(code)
      assert klass <= AcidicJob::Error, "#{name} maps under AcidicJob::Error"
      assert_equal name.to_s, AcidicJob::Native.code_name(code)
      klass
    end
    assert_equal classes.size, classes.uniq.size
    assert_equal AcidicJob::MismatchedIdempotencyKeyAndJobArguments, AcidicJob::Native.error_class(-7)
    assert_equal AcidicJob::LockedIdempotencyKey, AcidicJob::Native.error_class(-8)
    assert_equal AcidicJob::UnknownRecoveryPoint, AcidicJob::Native.error_class(-9)
    assert_equal AcidicJob::NoDefinedSteps, AcidicJob::Native.error_class(-10)
    assert_equal AcidicJob::DuplicateStepName, AcidicJob::Native.error_class(-11)
    assert_equal AcidicJob::SerializedTransactionConflict, AcidicJob::Native.error_class(-6)
    assert AcidicJob::Error < StandardError
    [AcidicJob::UnknownJobAdapter, AcidicJob::UnknownAtomicPhaseType].each { |k| assert k < AcidicJob::Error }
  end

  def test_bad_urls_are_clear_errors
    e = assert_raises(AcidicJob::InvalidArgument) { AcidicJob::Native::Store.open("mysql://x") }
    assert_match(/unsupported database URL/, e.message)
    assert_equal :AJ_EINVALID, e.code
    assert_raises(AcidicJob::InvalidArgument) { AcidicJob::Native::Store.open("") }
    e = assert_raises(AcidicJob::InvalidArgument) { AcidicJob::Native::Store.open("sqlite:/x", lock_timeout_ms: -5) }
    assert_match(/lock_timeout/, e.message, "the core names the option")
    assert_raises(ArgumentError) { AcidicJob::Native::Store.open("sqlite:/x\0y") }
  end

  def test_options_left_unset_take_the_cores_defaults
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/o.db", max_attempts: 3)
      options = store.options
      assert_equal 3, options[:max_attempts]
      assert_equal 90_000, options[:lock_timeout_ms]
      assert_equal 15_000, options[:retry_base_ms]
      assert_equal 1, options[:match_job_name], "the core's default; the Ruby layer passes 0"
      store.close
    end
  end

  def test_wrong_objects_are_refused_with_type_error
    [Time.now, Object.new, "db", 1, nil, StringIO.new].each do |thing|
      e = assert_raises(TypeError) { AcidicJob::Native::Store.borrow_sqlite(thing) }
      assert_match(/expected a SQLite3::Database/, e.message)
      assert_raises(TypeError) { AcidicJob::Native::Store.borrow_pg(thing) }
    end
    assert_raises(TypeError) { AcidicJob::Native::Store.borrow_sqlite(Time.now, nil, {}) }
    assert_raises(ArgumentError) { AcidicJob::Native::Store.borrow_host(:mysql, Object.new) }
    assert_raises(TypeError) { AcidicJob::Native::Run.new(Time.now, workflow(%w[a]), key: "k", job_name: "J") }
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/t.db")
      assert_raises(TypeError) { AcidicJob::Native::Run.new(store, [["a", []]], key: "k", job_name: "J") }
      assert_raises(TypeError) { AcidicJob::Native::Run.new(store, workflow(%w[a]), key: 1, job_name: "J") }
      assert_raises(TypeError) { AcidicJob::Native::Run.new(store, workflow(%w[a]), key: "k", job_name: "J", args: 5) }
      assert_raises(TypeError) { AcidicJob::Native::Run.new(store, workflow(%w[a]), { key: "k", job_name: "J", resume: "x" }) }
      assert_raises(TypeError) { store.exec("SELECT ?", [Time.now]) }
      store.close
    end
  end

  def workflow(names)
    AcidicJob::Native::Workflow.new(names.map { |n| [n, []] })
  end

  def new_run(store, names, key, args = nil)
    AcidicJob::Native::Run.new(store, workflow(names), key: key, job_name: "J", args: args)
  end

  def test_bad_workflows_and_documents_change_nothing
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/n.db")
      e = assert_raises(AcidicJob::DuplicateStepName) { workflow(%w[a a]) }
      assert_equal :AJ_EDUPLICATE_STEP, e.code
      assert_raises(AcidicJob::NoDefinedSteps) { new_run(store, [], "k") }
      assert_raises(AcidicJob::InvalidArgument) { workflow(%w[FINISHED]) }
      assert_raises(AcidicJob::InvalidArgument) { workflow(["a\0b"]) }
      assert_raises(AcidicJob::InvalidArgument) { new_run(store, %w[a], "") }
      assert_raises(AcidicJob::InvalidArgument) { new_run(store, %w[a], "k", "x\0y") }
      assert_raises(TypeError) { AcidicJob::Native::Workflow.new([[:a, []]]) }
      assert_equal [[0]], store.exec("SELECT count(*) FROM acidic_job_keys")
      store.close
    end
  end

  def test_store_and_run_lifecycle_and_owned_steps
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/n.db")
      store.exec("CREATE TABLE t (v text)")
      refute store.borrowed?
      assert_equal "sqlite", store.driver
      run = new_run(store, %w[a b], "k1", "---\n- 1\n")
      assert_equal AcidicJob::Native::Run::NEW, run.status
      e = assert_raises(AcidicJob::Misuse) { store.close }
      assert_match(/runs/, e.message)
      # a raising step: its write rolls back, the error is recorded, the exception is ours
      err = assert_raises(KeyError) do
        run.execute do |name|
          store.exec("INSERT INTO t VALUES (?)", [name])
          run.error = "--- boom\n"
          raise KeyError, "from the step"
        end
      end
      assert_equal "from the step", err.message
      assert_equal AcidicJob::Native::Run::FAILED, run.status
      assert_equal [[0]], store.exec("SELECT count(*) FROM t")
      assert_equal [["--- boom\n", nil]], store.exec("SELECT error_object, locked_at FROM acidic_job_keys")
      run.close
      # again: the first step acquires, steps commit one by one
      run = new_run(store, %w[a b], "k1", "---\n- 1\n")
      seen = []
      assert_equal AcidicJob::Native::Run::SUCCEEDED, run.execute { |n|
        seen << [n, run.status]
        store.exec("INSERT INTO t VALUES (?)", [n])
      }
      other = new_run(store, %w[a b], "k1", "---\n- 2\n")
      assert_raises(AcidicJob::MismatchedIdempotencyKeyAndJobArguments) { other.execute { nil } }
      other.close
      assert_equal [["a", AcidicJob::Native::Run::READY], ["b", AcidicJob::Native::Run::READY]], seen
      assert_equal 2, run.attempts
      assert_equal [["a"], ["b"]], store.exec("SELECT v FROM t ORDER BY v")
      assert_equal AcidicJob::Native::Run::SUCCEEDED, run.execute { flunk "a finished run runs nothing" }
      run.close
      assert run.closed?
      assert_raises(AcidicJob::Misuse) { run.status }
      store.close
      store.close
      assert store.closed?
      assert_raises(AcidicJob::Misuse) { store.exec("SELECT 1") }
    end
  end

  def test_a_run_is_refused_while_another_holds_its_lock
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/l.db")
      other = AcidicJob::Native::Store.open("sqlite:#{dir}/l.db")
      run = new_run(store, %w[a b], "k")
      e = nil
      run.execute do |name|
        next unless name == "b"

        second = new_run(other, %w[a b], "k")
        e = assert_raises(AcidicJob::LockedIdempotencyKey) { second.execute { nil } }
        second.close
      end
      assert_match(/recovery/, e.message, "the locked error says when recovery picks the run up")
      run.close
      store.close
      other.close
    end
  end

  def test_database_errors_conflicts_and_missing_rows_have_their_classes
    Dir.mktmpdir do |dir|
      path = "#{dir}/e.db"
      store = AcidicJob::Native::Store.open("sqlite:#{path}", busy_timeout_ms: 0, conflict_retries: 0)
      e = assert_raises(AcidicJob::DatabaseError) { store.exec("SELECT * FROM no_such_table") }
      assert_match(/no_such_table/, e.message)
      assert_equal :AJ_EDATABASE, e.code

      # another connection holds the write lock: a step cannot commit
      run = new_run(store, %w[a], "k")
      other = SQLite3::Database.new(path)
      other.execute("BEGIN IMMEDIATE")
      e = assert_raises(AcidicJob::SerializedTransactionConflict) { run.execute { nil } }
      assert_equal :AJ_ECONFLICT, e.code
      other.execute("ROLLBACK")
      other.close
      run.close

      # a run row that does not exist
      run = AcidicJob::Native::Run.new(store, workflow(%w[a]), key: "k", job_name: "J", run_id: 4242)
      e = assert_raises(AcidicJob::NotFound) { run.execute { nil } }
      assert_equal :AJ_ENOTFOUND, e.code
      run.close
      store.close
    end
  end

  def test_break_and_throw_out_of_a_step_do_not_unwind_through_the_core
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/n.db")
      run = new_run(store, %w[a], "k")
      caught = catch(:out) { run.execute { throw :out, :thrown } }
      assert_equal :thrown, caught
      assert_equal AcidicJob::Native::Run::FAILED, run.status
      run.close
      run = new_run(store, %w[a], "k")
      assert_equal AcidicJob::Native::Run::SUCCEEDED, run.execute { 1 }
      run.close
      store.close
    end
  end

  def test_runs_and_stores_survive_garbage_collection_in_any_order
    Dir.mktmpdir do |dir|
      50.times do |i|
        store = AcidicJob::Native::Store.open("sqlite:#{dir}/gc.db")
        new_run(store, %w[a], "gc#{i}").execute { nil }
        new_run(store, %w[a], "gc-open#{i}")
      end
      GC.start
      GC.start
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/gc.db")
      assert_equal [[50]], store.exec("SELECT count(*) FROM acidic_job_keys")
      store.close
    end
  end

  def test_a_store_opened_before_fork_is_refused_in_the_child
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/f.db")
      reader, writer = IO.pipe
      pid = fork do
        reader.close
        begin
          store.exec("SELECT 1")
          writer.write("used")
        rescue AcidicJob::Misuse => e
          writer.write("refused: #{e.message}")
        end
        writer.close
        exit!(0)
      end
      writer.close
      Process.wait(pid)
      assert_match(/refused: .*forked child/, reader.read)
      assert_equal [[1]], store.exec("SELECT 1")
      store.close
    end
  end
end
