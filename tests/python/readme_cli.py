"""The README's ``acidic-job`` output, made by running the commands.

It builds a SQLite database with shop_app's real workflows (succeeded, failed, awaiting,
dead runs, a 0.7.0 row, and a run stranded by a worker killed with SIGKILL), runs the
commands the README shows with the installed ``acidic-job``, and either checks the README
(test_readme_cli.py: the same output once times, ages, ids of processes and column
widths are set aside) or rewrites its blocks::

    build/python-venv/bin/python tests/python/readme_cli.py --write

A block is the fenced text after ``<!-- acidic-job: ARGS -->`` in README.md: the line
``$ acidic-job ARGS`` and the command's output.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
ACIDIC_JOB = os.path.join(os.path.dirname(sys.executable), "acidic-job")
#: the demo workers' lock timeout (seconds): the killed worker's run is stranded after it
LOCK_TIMEOUT = "2"

MARKER = re.compile(r"<!-- acidic-job: (.*?) -->\n```text\n(.*?)```\n", re.S)


def blocks(text: str) -> List[Tuple[str, str]]:
    """(args, block text) of each marked block of the README."""
    return [(m.group(1), m.group(2)) for m in MARKER.finditer(text)]


def make_database(directory: str) -> Dict[str, str]:
    """shop.db in ``directory`` with runs in every state; the environment the commands
    run in."""
    env = dict(os.environ, PYTHONPATH=HERE, SHOP_LOCK_TIMEOUT=LOCK_TIMEOUT)
    env = {k: v for k, v in env.items() if not k.startswith("ACIDIC_JOB_")}
    url = "sqlite:shop.db"
    seed = ("import shop_app; shop_app.make('sqlite:shop.db').seed()")
    subprocess.run([sys.executable, "-c", seed], cwd=directory, env=env, check=True,
                   capture_output=True)
    worker = subprocess.Popen([sys.executable, os.path.join(HERE, "shop_app.py"), url, "hang",
                               "5"], cwd=directory, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "IN_STEP"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    subprocess.run([sys.executable, "-c", "import shop_app; "
                    "shop_app.make('sqlite:shop.db').switch('hang-5', False)"],
                   cwd=directory, env=env, check=True, capture_output=True)
    time.sleep(float(LOCK_TIMEOUT) + 0.5)  # the lock timeout: ride-5 is stranded
    env.update(ACIDIC_JOB_DATABASE_URL=url, ACIDIC_JOB_LOCK_TIMEOUT=LOCK_TIMEOUT)
    return env


def output(args: str, directory: str, env: Dict[str, str]) -> str:
    proc = subprocess.run([ACIDIC_JOB] + args.split(), cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode not in (0, 1) or proc.stderr:
        raise AssertionError(f"acidic-job {args}: exit {proc.returncode}: {proc.stderr}")
    return f"$ acidic-job {args}\n{proc.stdout}"


def normalize(text: str) -> str:
    """What may differ from one run to the next set aside: times, lock ages, the killed
    worker's host:pid, and the column widths they cause."""
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<time>", text)
    text = re.sub(r"\b\d+(s|m\d\ds|h\d\dm|d\d\dh)\b", "<age>", text)
    text = re.sub(r"by \S+:\d+", "by <host:pid>", text)
    text = re.sub(r"\(ride \d+\)", "(ride <n>)", text)
    text = re.sub(r'"ride_id": \d+', '"ride_id": <n>', text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"[─]+", "─", text)
    return "\n".join(line.strip() for line in text.splitlines())


def current_outputs(readme: str) -> List[Tuple[str, str, str]]:
    """(args, README block, fresh output) of every block."""
    with tempfile.TemporaryDirectory(prefix="aj-readme-cli.") as directory:
        env = make_database(directory)
        return [(args, block, output(args, directory, env)) for args, block in blocks(readme)]


def main() -> int:
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    found = current_outputs(readme)
    if not found:
        print("README.md has no <!-- acidic-job: ... --> block", file=sys.stderr)
        return 1
    if "--write" in sys.argv:
        for args, block, fresh in found:
            readme = readme.replace(f"<!-- acidic-job: {args} -->\n```text\n{block}```\n",
                                    f"<!-- acidic-job: {args} -->\n```text\n{fresh}```\n", 1)
        with open(README, "w", encoding="utf-8") as f:
            f.write(readme)
        print(f"wrote {len(found)} block(s)")
        return 0
    stale = [args for args, block, fresh in found if normalize(block) != normalize(fresh)]
    for args in stale:
        print(f"README.md: the output of `acidic-job {args}` changed: run "
              f"tests/python/readme_cli.py --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
