#!/usr/bin/env bash
# A throwaway Redis for the tests.
#   scripts/redis-server.sh start DIR   start redis-server (no persistence, daemonized) on a
#                                       free 127.0.0.1 port; prints redis://127.0.0.1:PORT/0
#   scripts/redis-server.sh stop DIR    stop it (no-op when it is not running)
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

free_port() {
  /usr/bin/python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    for attempt in 1 2 3 4 5; do
      port="$(free_port)"
      if redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
           --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" \
           --logfile "$dir/redis.log" >/dev/null 2>&1; then
        for _ in $(seq 1 100); do
          if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            echo "$port" >"$dir/redis.port"
            echo "redis://127.0.0.1:$port/0"
            exit 0
          fi
          sleep 0.05
        done
        # did not answer: stop what we started and try another port
        [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
      fi
    done
    echo "redis-server did not start; see $dir/redis.log" >&2
    exit 1
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    if [ -f "$dir/redis.port" ]; then
      redis-cli -h 127.0.0.1 -p "$(cat "$dir/redis.port")" shutdown nosave >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/redis.pid" ]; then
      pid="$(cat "$dir/redis.pid")"
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
      done
      kill "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/redis.port" "$dir/redis.pid"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
