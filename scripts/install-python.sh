#!/usr/bin/env bash
# Install the acidic_job Python package as the README says (a venv with the system's
# packages, pip install --no-build-isolation .) into the venv given, quietly: again only
# when the package's sources changed since the last install there; on failure the pip log
# goes to stderr. Used by the demo and the README check.   scripts/install-python.sh VENV
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${1:?usage: install-python.sh VENV}"

sources="$(find setup.py MANIFEST.in core bindings/python web \( -name '*.egg-info' -o -name __pycache__ \) \
           -prune -o -type f -print0 | sort -z | xargs -0 sha1sum | sha1sum)"
[ "$(cat "$venv/.sources" 2>/dev/null)" = "$sources" ] && exit 0

mkdir -p "$venv"
log="$venv/install.log"
if ! { { [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"; } &&
       "$venv/bin/pip" install --no-build-isolation --no-deps --force-reinstall "$root"; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
echo "$sources" >"$venv/.sources"
