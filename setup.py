"""Build the acidic_job Python package.

The extension ``acidic_job._native`` compiles the C core's sources straight from
``core/src`` (the one copy in the repository; the sdist carries it through MANIFEST.in)
together with the extension's own files in ``bindings/python/src`` (one per type, as the
Ruby extension), and links the system SQLite and libpq.

Offline (Debian packages only):   pip install --no-build-isolation .
With a package index reachable:   pip install .
"""
import glob
import os
import re
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def rel(*parts):
    # setuptools wants paths relative to setup.py
    return os.path.join(*parts)


def core_version():
    with open(os.path.join(HERE, "core", "include", "acidic_job.h"), encoding="utf-8") as f:
        return re.search(r'#define AJ_VERSION "([^"]+)"', f.read()).group(1)


def pg_includedir():
    try:
        out = subprocess.run(["pg_config", "--includedir"], capture_output=True, text=True,
                             check=True)
        return [out.stdout.strip()]
    except (OSError, subprocess.CalledProcessError):
        return ["/usr/include/postgresql"]


binding_sources = sorted(os.path.relpath(p, HERE) for p in
                         glob.glob(os.path.join(HERE, "bindings", "python", "src", "*.c")))
core_sources = sorted(os.path.relpath(p, HERE)
                      for p in glob.glob(os.path.join(HERE, "core", "src", "*.c")))

BUILD_BASE = os.path.join("build", "python-setuptools")
if os.environ.get("CFLAGS"):
    import hashlib
    BUILD_BASE += "-" + hashlib.sha1(os.environ["CFLAGS"].encode()).hexdigest()[:8]

native = Extension(
    "acidic_job._native",
    sources=binding_sources + core_sources,
    include_dirs=[rel("bindings", "python", "src"), rel("core", "include"),
                  rel("core", "src")] + pg_includedir(),
    # headers: a change in any of them rebuilds the extension (setuptools tracks no includes)
    depends=sorted(os.path.relpath(p, HERE) for p in
                   glob.glob(os.path.join(HERE, "bindings", "python", "src", "*.h")) +
                   glob.glob(os.path.join(HERE, "core", "src", "*.h")) +
                   glob.glob(os.path.join(HERE, "core", "include", "*.h"))),
    libraries=["sqlite3", "pq"],
    # Only PyInit__native is exported: the core's aj_* symbols stay private to the
    # extension so that another copy of the core in the process (the Ruby gem, say)
    # cannot collide with it. AJ_BUILDING_LIBRARY is deliberately not defined.
    extra_compile_args=["-fvisibility=hidden", "-std=gnu11", "-Wall", "-Wno-unused-parameter"],
)

with open(os.path.join(HERE, "bindings", "python", "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="acidic_job",
    version=core_version(),
    description="Idempotent, resumable multi-step workflows on SQLite and PostgreSQL",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    # 3.10: the documented class attributes use `int | None`, evaluated at class creation;
    # tests/python/test_typing.py type-checks the package for this version
    python_requires=">=3.10",
    package_dir={"": rel("bindings", "python")},
    packages=["acidic_job"],
    package_data={"acidic_job": ["py.typed", "_native.pyi"]},
    ext_modules=[native],
    extras_require={
        "celery": ["celery>=5.2"],
        "rq": ["rq>=1.13"],
        "psycopg": ["psycopg>=3.1"],
        "psycopg2": ["psycopg2>=2.9"],
    },
    # keep setuptools' intermediate files apart from the CMake build in build/, and apart
    # per CFLAGS (a sanitizer build must not reuse plain object files, nor the reverse)
    options={"build": {"build_base": BUILD_BASE}},
    zip_safe=False,
)
