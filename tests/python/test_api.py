"""The package surface: exceptions, typing stub, packaging, command line."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import tarfile

import pytest

import acidic_job
from acidic_job import _native

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_one_exception_class_per_core_error_code() -> None:
    codes = {name: getattr(_native, name) for name in dir(_native)
             if name.startswith("E") and name.isupper() and name != "ERROR"
             and not name.startswith("EVENT_")}
    classes = {cls.code: cls for cls in vars(acidic_job).values()
               if isinstance(cls, type) and issubclass(cls, acidic_job.Error) and cls.code}
    for name, code in codes.items():
        assert code in classes, name
        cls = classes[code]
        assert cls.code_name == f"AJ_{name}"
        assert issubclass(cls, acidic_job.Error)
    assert issubclass(acidic_job.SerializationConflict, acidic_job.DatabaseError)
    assert acidic_job.SerializedTransactionConflict is acidic_job.SerializationConflict
    assert issubclass(acidic_job.EncodeError, TypeError)
    assert issubclass(acidic_job.InvalidArgument, ValueError)


def test_error_classes_register_their_core_code_themselves() -> None:
    from acidic_job import errors
    source = open(errors.__file__).read()
    for cls in (acidic_job.LockedIdempotencyKey, acidic_job.InvalidArgument,
                acidic_job.SerializationConflict):
        assert f"class {cls.__name__}(" in source and "code=_native." in source
        assert errors._BY_CODE[cls.code] is cls
        assert cls.code_name == _native.code_name(cls.code)
    with pytest.raises(TypeError, match="already raised as LockedIdempotencyKey"):
        class Again(acidic_job.Error, code=_native.ELOCKED):
            pass
    # a code without a class of its own arrives as Error with its code
    plain = acidic_job.Error("x", -999, "AJ_SOMETHING")
    assert plain.code == -999 and plain.code_name == "AJ_SOMETHING"


def test_core_errors_arrive_as_their_class_saying_what_is_expected() -> None:
    with pytest.raises(acidic_job.InvalidArgument) as info:
        _native.open("mysql://nope")
    assert info.value.code == _native.EINVALID
    assert info.value.code_name == "AJ_EINVALID"
    assert "sqlite:" in str(info.value)  # what the URL should look like
    with pytest.raises(acidic_job.DatabaseError) as dbinfo:
        _native.open("sqlite:/nonexistent-dir/x/y.db")
    assert dbinfo.value.code_name in ("AJ_EDATABASE", "AJ_EINVALID")
    with pytest.raises(acidic_job.InvalidArgument):
        acidic_job.workflow("")
    with pytest.raises(TypeError):
        acidic_job.workflow(12345)
    with pytest.raises(TypeError):
        _native.open(None)  # type: ignore[arg-type]


def test_a_password_never_appears_in_an_error() -> None:
    with pytest.raises(acidic_job.Error) as info:
        _native.open("postgresql://user:s3cret@127.0.0.1:1/db?connect_timeout=1")
    assert "s3cret" not in str(info.value)


def test_assigning_an_unencodable_attribute_raises_at_once() -> None:
    @acidic_job.workflow("sqlite::memory:", name="Assign")
    class Assign:
        value: object = None

        @acidic_job.step
        def only(self) -> None:
            pass

    obj = Assign()
    with pytest.raises(acidic_job.EncodeError, match="'value'"):
        obj.value = {1, 2, 3}
    obj.value = [1, "two"]
    with pytest.raises(acidic_job.EncodeError, match="'bad'"):
        @acidic_job.workflow("sqlite::memory:")
        class BadDefault:
            bad: object = object()

            @acidic_job.step
            def only(self) -> None:
                pass


def test_the_stub_matches_the_extension() -> None:
    stub_path = os.path.join(os.path.dirname(acidic_job.__file__), "_native.pyi")
    assert os.path.exists(stub_path)
    assert os.path.exists(os.path.join(os.path.dirname(acidic_job.__file__), "py.typed"))
    tree = ast.parse(open(stub_path).read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            assert hasattr(_native, node.name), node.name
        elif isinstance(node, ast.ClassDef):
            cls = getattr(_native, node.name)
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and not member.name.startswith("__"):
                    assert hasattr(cls, member.name), f"{node.name}.{member.name}"
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id[0].isupper() and node.target.id not in (
                    "Param", "Cell", "EnqueueCallback"):
                assert hasattr(_native, node.target.id), node.target.id
    for name in dir(_native):
        if not name.startswith("__"):
            assert name in open(stub_path).read(), name


def test_the_extension_exports_only_its_init_function() -> None:
    out = subprocess.run(["nm", "-D", "--defined-only", _native.__file__], capture_output=True,
                         text=True, check=True).stdout
    exported = [line.split()[-1] for line in out.splitlines() if line.split()[1] in "TDBR"]
    assert exported == ["PyInit__native"]


def test_the_sdist_carries_the_core(tmp_path: object) -> None:
    out = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (archive,) = [p for p in os.listdir(str(tmp_path)) if p.endswith(".tar.gz")]
    names = tarfile.open(os.path.join(str(tmp_path), archive)).getnames()
    base = archive[:-len(".tar.gz")]
    assert f"{base}/core/include/acidic_job.h" in names
    core = sorted(n for n in names if n.startswith(f"{base}/core/src/") and n.endswith(".c"))
    assert len(core) == len([f for f in os.listdir(os.path.join(ROOT, "core", "src"))
                             if f.endswith(".c")])
    for source in ("py_aj.h", "py_aj_module.c", "py_aj_store.c", "py_aj_workflow.c",
                   "py_aj_run.c", "py_aj_convert.c"):
        assert f"{base}/bindings/python/src/{source}" in names, source
    assert f"{base}/bindings/python/acidic_job/_native.pyi" in names


def test_the_command_line_reports_bad_input() -> None:
    out = subprocess.run([sys.executable, "-m", "acidic_job", "drain", "--url", "bogus://x",
                          "--older-than", "0"], capture_output=True, text=True)
    assert out.returncode == 2  # the core refuses the scheme: a usage error
    assert out.stderr.startswith("acidic-job drain: ") and "bogus" in out.stderr
    out = subprocess.run([sys.executable, "-m", "acidic_job", "drain", "--url", "sqlite::memory:",
                          "--older-than", "-1"], capture_output=True, text=True)
    assert out.returncode == 2
    out = subprocess.run([sys.executable, "-m", "acidic_job", "--version"], capture_output=True,
                         text=True)
    assert out.stdout.strip() == acidic_job.VERSION


@pytest.mark.parametrize("where", ["missing.db", "no/such/folder/file.db"])
def test_drain_on_a_missing_sqlite_file_fails_in_one_line_and_creates_nothing(
        tmp_path: object, where: str) -> None:
    path = os.path.join(str(tmp_path), where)
    for url in (f"sqlite:{path}", f"sqlite://{path}"):
        out = subprocess.run([sys.executable, "-m", "acidic_job", "drain", "--url", url],
                             capture_output=True, text=True, cwd=str(tmp_path))
        assert out.returncode == 1
        assert out.stdout == ""
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("acidic-job drain: ")
        assert repr(path) in out.stderr and "never creates" in out.stderr
        assert os.listdir(str(tmp_path)) == []


def test_drain_on_an_existing_sqlite_file_runs(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "app.db")
    acidic_job.drain(f"sqlite:{path}")  # creates the tables, nothing staged
    out = subprocess.run([sys.executable, "-m", "acidic_job", "drain", "--url", f"sqlite:{path}",
                          "--older-than", "0"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "delivered 0 staged job(s)" in out.stdout


def test_a_workflow_class_must_not_define_run() -> None:
    with pytest.raises(TypeError, match="'run'"):
        @acidic_job.workflow("sqlite::memory:")
        class Clash:
            def run(self) -> None:
                pass

            @acidic_job.step
            def only(self) -> None:
                pass


def test_equal_values_encode_to_equal_bytes_whatever_the_key_order() -> None:
    from hypothesis import given, settings, strategies as st
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text() |
        st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                    max_size=4),
        max_leaves=12)
    codec = acidic_job.JSONCodec()

    def reorder(value: object) -> object:
        if isinstance(value, dict):
            return {k: reorder(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reorder(v) for v in value]
        return value

    @settings(max_examples=200, database=None, deadline=None)
    @given(json_values)
    def check(value: object) -> None:
        text = codec.encode(value)
        assert codec.encode(reorder(value)) == text
        assert codec.encode(codec.decode(text)) == text
        assert "\0" not in text or "\\u0000" in text

    check()
