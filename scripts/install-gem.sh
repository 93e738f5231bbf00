#!/usr/bin/env bash
# Install the acidic_job gem as a user does (gem build + gem install --local) into the
# GEM_HOME given, quietly: again only when the gem's sources changed since the last
# install there; on failure the build log goes to stderr. Used by the demo and the README
# check.   scripts/install-gem.sh GEM_HOME
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
gem_home="${1:?usage: install-gem.sh GEM_HOME}"

paths=()
for p in acidic_job.gemspec core bindings/ruby ext web; do [ -e "$p" ] && paths+=("$p"); done
sources="$(find "${paths[@]}" -type f -print0 | sort -z | xargs -0 sha1sum | sha1sum)"
[ "$(cat "$gem_home/.sources" 2>/dev/null)" = "$sources" ] && exit 0

rm -rf "$gem_home"
mkdir -p "$gem_home"
log="$gem_home/install.log"
if ! { gem build acidic_job.gemspec --output "$gem_home/acidic_job.gem" &&
       GEM_HOME="$gem_home" gem install --local --no-document "$gem_home/acidic_job.gem"; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
echo "$sources" >"$gem_home/.sources"
