"""Command line: ``python -m acidic_job drain --url URL [--older-than SECONDS] [--import MOD]``.

``drain`` sends the staged jobs that were committed but never acknowledged (the process
died between commit and send, or the queue was down). The adapters that send them are
installed by the application's own module: name it with ``--import`` (repeatable), e.g.
the module that calls ``acidic_job.celery.install(app, db)``. For RQ without such a
module, ``--rq-redis URL`` installs the RQ adapter directly.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

from . import VERSION, Error, drain


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
    d.add_argument("--url", required=True, help="database URL (sqlite:PATH, postgresql://...)")
    d.add_argument("--older-than", type=float, default=60.0, metavar="SECONDS",
                   help="only rows staged or last sent longer ago than this (default 60)")
    d.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it installs the Celery/RQ adapters)")
    d.add_argument("--rq-redis", metavar="URL", help="install the RQ adapter on this Redis")
    d.add_argument("--rq-queue", default="default", help="RQ queue (default 'default')")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    if args.older_than < 0:
        parser.error("--older-than must be >= 0")
    missing = missing_sqlite_file(args.url)
    if missing is not None:
        print(f"acidic_job drain: no SQLite database at {missing!r}: check the path of "
              "--url (a drain never creates a database)", file=sys.stderr)
        return 1
    for module in args.imports:
        importlib.import_module(module)
    if args.rq_redis:
        from redis import Redis

        from . import rq as aj_rq
        aj_rq.install(args.url, Redis.from_url(args.rq_redis), args.rq_queue)
    try:
        delivered = drain(args.url, older_than=args.older_than)
    except Error as exc:
        print(f"acidic_job drain: {exc}", file=sys.stderr)
        return 1
    print(f"delivered {delivered} staged job(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
