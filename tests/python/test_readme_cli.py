"""README.md's "Python and the command line" shows real `acidic-job` output: running the
same commands on a database made the same way (readme_cli.py) prints the same thing, once
times, lock ages, process ids and column widths are set aside."""
from __future__ import annotations

import readme_cli


def test_the_readmes_acidic_job_output_is_what_the_commands_print() -> None:
    with open(readme_cli.README, encoding="utf-8") as f:
        readme = f.read()
    found = readme_cli.current_outputs(readme)
    assert [args.split()[0] for args, _, _ in found] == ["list", "show", "stats"]
    for args, block, fresh in found:
        assert readme_cli.normalize(block) == readme_cli.normalize(fresh), (
            f"the README's `acidic-job {args}` is stale: run "
            f"build/python-venv/bin/python tests/python/readme_cli.py --write\n{fresh}")
