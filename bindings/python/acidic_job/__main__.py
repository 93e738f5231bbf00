"""Command line::

    python -m acidic_job drain --url URL [--older-than SECONDS] [--import MOD]
    python -m acidic_job recover --url URL [--limit N] [--import MOD]

``drain`` sends the staged jobs that were committed but never acknowledged (the process
died between commit and send, or the queue was down). ``recover`` hands back to their
queue the runs whose worker died and the failed runs whose retry is due (the workers do
it periodically; this is the same sweep, e.g. from cron). The adapters that send the
jobs are installed by the application's own module: name it with ``--import``
(repeatable), e.g. the module that calls ``acidic_job.celery.install(app, db)``. For RQ
without such a module, ``--rq-redis URL`` installs the RQ adapter directly.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

from . import VERSION, Error, drain, recover


def missing_sqlite_file(url: str) -> Optional[str]:
    """The path of a ``sqlite:PATH`` URL whose file does not exist, else None. Opening
    it would create an empty database, and a drain has nothing to send from one."""
    if not url.startswith("sqlite:"):
        return None
    path = url[len("sqlite:"):]
    if path.startswith("//"):
        path = path[2:]
    if path == ":memory:" or os.path.exists(path):
        return None
    return path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acidic_job",
                                     description="acidic_job maintenance commands")
    parser.add_argument("--version", action="version", version=VERSION)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("drain", help="send staged jobs that were never delivered")
    d.add_argument("--older-than", type=float, default=60.0, metavar="SECONDS",
                   help="only rows staged or last sent longer ago than this (default 60)")
    r = sub.add_parser("recover", help="hand stranded and due failed runs back to their queue")
    r.add_argument("--limit", type=int, default=0, metavar="N",
                   help="look at N runs at most (default 0: all that are due)")
    r.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                   help="a run locked longer than this is stranded (default 90: make it "
                        "the longest of your workflows')")
    for p in (d, r):
        p.add_argument("--url", required=True, help="database URL (sqlite:PATH, postgresql://...)")
        p.add_argument("--import", dest="imports", action="append", default=[],
                       metavar="MODULE",
                       help="import MODULE first (it installs the Celery/RQ adapters)")
        p.add_argument("--rq-redis", metavar="URL", help="install the RQ adapter on this Redis")
        p.add_argument("--rq-queue", default="default", help="RQ queue (default 'default')")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    command = args.command
    if command == "drain" and args.older_than < 0:
        parser.error("--older-than must be >= 0")
    if command == "recover" and args.limit < 0:
        parser.error("--limit must be >= 0")
    missing = missing_sqlite_file(args.url)
    if missing is not None:
        print(f"acidic_job {command}: no SQLite database at {missing!r}: check the path of "
              f"--url (a {command} never creates a database)", file=sys.stderr)
        return 1
    for module in args.imports:
        importlib.import_module(module)
    if args.rq_redis:
        from redis import Redis

        from . import rq as aj_rq
        aj_rq.install(args.url, Redis.from_url(args.rq_redis), args.rq_queue,
                      recover_every=None)
    try:
        if command == "drain":
            delivered = drain(args.url, older_than=args.older_than)
            print(f"delivered {delivered} staged job(s)")
        else:
            done = recover(args.url, args.limit, lock_timeout=args.lock_timeout)
            print(f"requeued {done.requeued} run(s), {done.dead} dead")
    except Error as exc:
        print(f"acidic_job {command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
