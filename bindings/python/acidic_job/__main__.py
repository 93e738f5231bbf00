"""``python -m acidic_job COMMAND ...``: the ``acidic-job`` command (see acidic_job.cli),
for environments without the console script on PATH."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog_name="python -m acidic_job"))
