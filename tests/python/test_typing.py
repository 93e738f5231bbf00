"""Typing: mypy --strict accepts the READMEs' Python examples (read from the README
text itself), a typed program using every public name, and the package itself (for the
oldest Python it supports, 3.10).

The examples import two modules that are the reader's own, not acidic_job's: a payment
provider (`stripe`) and the application's tasks (`shop.tasks`). The test gives mypy a
stub of each. Celery, RQ and redis ship no type information: mypy treats them as Any,
and blocks that decorate with Celery's own `@app.task` may use that untyped decorator.
psycopg2 (which the package imports only for psycopg2 connections) has no stubs either.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from typing import List

import pytest

import acidic_job
import acidic_job.adapters
import acidic_job.admin
import acidic_job.celery
import acidic_job.rq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
READMES = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "bindings", "python", "README.md")]

MYPY_INI = """\
[mypy]
cache_dir = {cache}

[mypy-celery.*,rq.*,redis.*,psycopg2.*]
ignore_missing_imports = True
"""
#: for each example that decorates with Celery's untyped @app.task
CELERY_EXAMPLE = """
[mypy-{module}]
disallow_untyped_decorators = False
"""

STUBS = {
    "stripe/__init__.pyi": "from typing import Any\n\n"
                           "class Charge:\n"
                           "    @staticmethod\n"
                           "    def create(**params: Any) -> Any: ...\n",
    "shop/__init__.pyi": "",
    "shop/tasks.pyi": "import acidic_job.rq\n\nsend_receipt_task: acidic_job.rq.Job\n",
}


def python_blocks(path: str) -> List[str]:
    text = open(path, encoding="utf-8").read()
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def mypy(args: List[str], tmp: str, celery_examples: List[str] = []
         ) -> subprocess.CompletedProcess:
    config = os.path.join(tmp, "mypy.ini")
    with open(config, "w") as f:
        f.write(MYPY_INI.format(cache=os.path.join(tmp, "cache")))
        for module in celery_examples:
            f.write(CELERY_EXAMPLE.format(module=module))
    env = dict(os.environ, MYPYPATH=os.path.join(tmp, "stubs"))
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--config-file", config,
                           "--no-error-summary", *args], capture_output=True, text=True,
                          cwd=tmp, env=env, timeout=600)


@pytest.fixture
def checked(tmp_path: object) -> str:
    tmp = str(tmp_path)
    for name, text in STUBS.items():
        path = os.path.join(tmp, "stubs", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return tmp


def test_mypy_strict_accepts_the_readme_examples_and_the_typed_program(checked: str) -> None:
    files, celery_examples = [], []
    for readme in READMES:
        blocks = python_blocks(readme)
        assert blocks, f"no Python example in {readme}"
        for i, block in enumerate(blocks):
            module = f"readme_{'top' if readme == READMES[0] else 'python'}_{i}"
            if "@app.task" in block:
                celery_examples.append(module)
            path = os.path.join(checked, f"{module}.py")
            with open(path, "w") as f:
                f.write(block)
            files.append(path)
    typed = os.path.join(checked, "typed_usage.py")
    with open(os.path.join(HERE, "typed_usage.py")) as src, open(typed, "w") as dst:
        dst.write(src.read())
    out = mypy(files + [typed], checked, celery_examples)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_readme_quick_start_uses_the_typed_form(checked: str) -> None:
    for readme in READMES:
        quick = python_blocks(readme)[0]
        assert "(acidic_job.Workflow, database=db)" in quick
        assert "RETURNING id" in quick
    # the decorator form is what mypy cannot follow: the reason for the base class
    untyped = os.path.join(checked, "decorated.py")
    with open(untyped, "w") as f:
        f.write("import acidic_job\n\n"
                "@acidic_job.workflow('sqlite::memory:')\n"
                "class RideCreate:\n"
                "    @acidic_job.step\n"
                "    def only(self) -> None:\n"
                "        pass\n\n"
                "RideCreate.run()\n")
    out = mypy([untyped], checked)
    assert out.returncode == 1 and 'has no attribute "run"' in out.stdout


def test_the_typed_program_names_every_public_name() -> None:
    tree = ast.parse(open(os.path.join(HERE, "typed_usage.py")).read())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                parts.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                used.add(".".join([value.id] + parts))
    modules = {"acidic_job": acidic_job, "acidic_job.adapters": acidic_job.adapters,
               "acidic_job.admin": acidic_job.admin,
               "acidic_job.celery": acidic_job.celery, "acidic_job.rq": acidic_job.rq}
    missing = [f"{name}.{entry}" for name, module in modules.items()
               for entry in module.__all__ if f"{name}.{entry}" not in used]
    assert missing == []


def test_mypy_strict_accepts_the_package_for_its_oldest_python(checked: str) -> None:
    setup = open(os.path.join(ROOT, "setup.py")).read()
    (oldest,) = re.findall(r'python_requires=">=(3\.\d+)"', setup)
    assert oldest == "3.10"  # what the documented `int | None` attributes need
    out = mypy(["--python-version", oldest, "-p", "acidic_job"], checked)
    assert out.returncode == 0, out.stdout + out.stderr
