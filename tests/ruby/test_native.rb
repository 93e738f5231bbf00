# frozen_string_literal: true

require_relative "test_helper"

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
    assert_raises(AcidicJob::InvalidArgument) { AcidicJob::Native::Store.open("sqlite:/x", lock_timeout_ms: -1) }
    assert_raises(ArgumentError) { AcidicJob::Native::Store.open("sqlite:/x\0y") }
  end

  def test_bad_workflows_and_documents_change_nothing
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/n.db")
      e = assert_raises(AcidicJob::DuplicateStepName) do
        AcidicJob::Native::Run.acquire(store, [["a", []], ["a", []]], "k", "J", nil, nil)
      end
      assert_equal :AJ_EDUPLICATE_STEP, e.code
      assert_raises(AcidicJob::NoDefinedSteps) { AcidicJob::Native::Run.acquire(store, [], "k", "J", nil, nil) }
      assert_raises(AcidicJob::InvalidArgument) { AcidicJob::Native::Run.acquire(store, [["FINISHED", []]], "k", "J", nil, nil) }
      assert_raises(AcidicJob::InvalidArgument) { AcidicJob::Native::Run.acquire(store, [["a", []]], "", "J", nil, nil) }
      assert_raises(AcidicJob::InvalidArgument) { AcidicJob::Native::Run.acquire(store, [["a", []]], "k", "J", "x\0y", nil) }
      assert_raises(TypeError) { AcidicJob::Native::Run.acquire(store, [[:a, []]], "k", "J", nil, nil) }
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
      run = AcidicJob::Native::Run.acquire(store, [["a", []], ["b", []]], "k1", "J", "---\n- 1\n", nil)
      assert_equal AcidicJob::Native::Run::READY, run.status
      assert_equal "a", run.recovery_point
      e = assert_raises(AcidicJob::Misuse) { store.close }
      assert_match(/runs/, e.message)
      # a raising step: its write rolls back, the error is recorded, the exception is ours
      err = assert_raises(KeyError) do
        run.step do |name|
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
      # acquire again: steps commit one by one
      run = AcidicJob::Native::Run.acquire(store, [["a", []], ["b", []]], "k1", "J", "---\n- 1\n", nil)
      assert_raises(AcidicJob::MismatchedIdempotencyKeyAndJobArguments) do
        AcidicJob::Native::Run.acquire(store, [["a", []]], "k1", "J", "---\n- 2\n", nil)
      end
      assert_raises(AcidicJob::LockedIdempotencyKey) do
        AcidicJob::Native::Run.acquire(store, [["a", []], ["b", []]], "k1", "J", "---\n- 1\n", nil)
      end
      seen = []
      seen << run.step { |n| store.exec("INSERT INTO t VALUES (?)", [n]) } while run.status == AcidicJob::Native::Run::READY
      assert_equal [AcidicJob::Native::Run::READY, AcidicJob::Native::Run::SUCCEEDED], seen
      assert_equal [["a"], ["b"]], store.exec("SELECT v FROM t ORDER BY v")
      assert_raises(AcidicJob::Misuse) { run.step { nil } }
      run.close
      assert run.closed?
      assert_raises(AcidicJob::Misuse) { run.status }
      store.close
      store.close
      assert store.closed?
      assert_raises(AcidicJob::Misuse) { store.exec("SELECT 1") }
    end
  end

  def test_database_errors_conflicts_and_missing_rows_have_their_classes
    Dir.mktmpdir do |dir|
      path = "#{dir}/e.db"
      store = AcidicJob::Native::Store.open("sqlite:#{path}", busy_timeout_ms: 0, conflict_retries: 0)
      e = assert_raises(AcidicJob::DatabaseError) { store.exec("SELECT * FROM no_such_table") }
      assert_match(/no_such_table/, e.message)
      assert_equal :AJ_EDATABASE, e.code

      # another connection holds the write lock: a step cannot begin
      run = AcidicJob::Native::Run.acquire(store, [["a", []]], "k", "J", nil, nil)
      other = SQLite3::Database.new(path)
      other.execute("BEGIN IMMEDIATE")
      e = assert_raises(AcidicJob::SerializedTransactionConflict) { run.step { nil } }
      assert_equal :AJ_ECONFLICT, e.code
      other.execute("ROLLBACK")
      other.close

      # the run's row was deleted behind its back
      store.exec("DELETE FROM acidic_job_keys")
      e = assert_raises(AcidicJob::NotFound) { run.step { nil } }
      assert_equal :AJ_ENOTFOUND, e.code
      run.close
      store.close
    end
  end

  def test_break_and_throw_out_of_a_step_do_not_unwind_through_the_core
    Dir.mktmpdir do |dir|
      store = AcidicJob::Native::Store.open("sqlite:#{dir}/n.db")
      run = AcidicJob::Native::Run.acquire(store, [["a", []]], "k", "J", nil, nil)
      caught = catch(:out) { run.step { throw :out, :thrown } }
      assert_equal :thrown, caught
      assert_equal AcidicJob::Native::Run::FAILED, run.status
      run.close
      run = AcidicJob::Native::Run.acquire(store, [["a", []]], "k", "J", nil, nil)
      assert_equal AcidicJob::Native::Run::SUCCEEDED, run.step { 1 }
      run.close
      store.close
    end
  end

  def test_runs_and_stores_survive_garbage_collection_in_any_order
    Dir.mktmpdir do |dir|
      50.times do |i|
        store = AcidicJob::Native::Store.open("sqlite:#{dir}/gc.db")
        AcidicJob::Native::Run.acquire(store, [["a", []]], "gc#{i}", "J", nil, nil)
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
