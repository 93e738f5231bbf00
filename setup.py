"""Build the acidic_job Python package.

The extension ``acidic_job._native`` is the files of ``bindings/python/src`` (one per type,
as the Ruby extension) linked with the C core, compiled straight from ``core/src`` (the one
copy in the repository; the sdist carries it through MANIFEST.in) with the core's warning
flags (``core/warning-flags.txt``), and the system SQLite and libpq.

Offline (Debian packages only):   pip install --no-build-isolation .
With a package index reachable:   pip install .
"""
import glob
import os
import re
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_py import build_py

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
core_headers = sorted(os.path.relpath(p, HERE) for p in
                      glob.glob(os.path.join(HERE, "core", "src", "*.h")) +
                      glob.glob(os.path.join(HERE, "core", "include", "*.h")))


def core_warning_flags():
    # the one list every build of the core uses (CMake, the gem, the bench, the fuzzer)
    with open(os.path.join(HERE, "core", "warning-flags.txt"), encoding="utf-8") as f:
        return [flag for line in f if not line.startswith("#") for flag in line.split()]


BUILD_BASE = os.path.join("build", "python-setuptools")
if os.environ.get("CFLAGS"):
    import hashlib
    BUILD_BASE += "-" + hashlib.sha1(os.environ["CFLAGS"].encode()).hexdigest()[:8]

# The core is compiled on its own, as a static library linked into the extension, so that
# it gets the core's warning flags while _native.c keeps Python's. Its symbols stay
# private to the extension (-fvisibility=hidden; AJ_BUILDING_LIBRARY is deliberately not
# defined): another copy of the core in the process (the Ruby gem, say) cannot collide.
core_library = ("acidic_job_core", {
    "sources": core_sources,
    "include_dirs": [rel("core", "include"), rel("core", "src")] + pg_includedir(),
    "cflags": ["-fvisibility=hidden", "-std=gnu11"] + core_warning_flags(),
    # headers: a change in any of them rebuilds the core (setuptools tracks no includes)
    "obj_deps": {"": core_headers + [rel("core", "warning-flags.txt")]},
})


class build_core(build_clib):
    """build_clib that archives the current core sources only: distutils' `ar` adds to an
    existing archive, so a core file renamed or removed would linger in it."""

    def build_libraries(self, libraries):
        for name, _ in libraries:
            stale = self.compiler.library_filename(name, output_dir=self.build_clib)
            if os.path.exists(stale):
                os.remove(stale)
        super().build_libraries(libraries)


# The dashboard's front end: web/ at the top of the repository (the one copy, the gem
# ships the same files), copied into the package as acidic_job/web_assets.
web_files = sorted(os.path.relpath(p, os.path.join(HERE, "web")) for p in
                   [os.path.join(HERE, "web", "index.html")] +
                   glob.glob(os.path.join(HERE, "web", "assets", "*")))


class build_py_with_web(build_py):
    """build_py that also copies web/ into the package (acidic_job.web serves it)."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "acidic_job", "web_assets")
        for name in web_files:
            self.mkpath(os.path.dirname(os.path.join(target, name)))
            self.copy_file(os.path.join(HERE, "web", name), os.path.join(target, name))


native = Extension(
    "acidic_job._native",
    sources=binding_sources,
    include_dirs=[rel("bindings", "python", "src"), rel("core", "include"),
                  rel("core", "src")] + pg_includedir(),
    # headers: a change in any of them rebuilds the extension (setuptools tracks no includes)
    depends=core_headers + core_sources + sorted(
        os.path.relpath(p, HERE) for p in
        glob.glob(os.path.join(HERE, "bindings", "python", "src", "*.h"))),
    # the core first: its references to SQLite and libpq are resolved by what follows
    libraries=["acidic_job_core", "sqlite3", "pq"],
    # Only PyInit__native is exported.
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
    libraries=[core_library],
    ext_modules=[native],
    cmdclass={"build_clib": build_core, "build_py": build_py_with_web},
    # the operator command (acidic_job.cli); click and rich are Debian's python3-click and
    # python3-rich
    install_requires=["click>=8", "rich>=12"],
    entry_points={"console_scripts": ["acidic-job = acidic_job.cli:main"]},
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
