#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests.
#
#   scripts/pg-server.sh start DIR    initialise (first time) and start a cluster in DIR;
#                                     prints ONE line: the libpq URI of database acidic_test
#   scripts/pg-server.sh url DIR      print that URI again (cluster must be running)
#   scripts/pg-server.sh restart DIR  restart it (tests simulate a server restart)
#   scripts/pg-server.sh stop DIR     stop it (fast); safe to call twice or on no cluster
#
# The cluster listens on a free 127.0.0.1 port and on a unix socket in DIR (or, when DIR
# is too long for a socket path, in a short directory under /tmp recorded in
# DIR/socket_dir). Authentication is `trust`: this is a throwaway test server.
# fsync stays on, so commit timings are the real ones. initdb refuses to run as root, so
# as root the server runs as the `postgres` user and DIR is handed to that user.
# Diagnostics go to stderr and DIR/postgres.log; stdout carries only the URI.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB_NAME=acidic_test
SOCKET_PATH_MAX=107   # sun_path is 108 bytes including the NUL

die() { echo "pg-server.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|restart|url DIR"; }

# Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

is_running() {
    [ -f "$DATA/PG_VERSION" ] && as_owner "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

url() { echo "postgresql://postgres@127.0.0.1:$(cat "$DIR/port")/$DB_NAME"; }

# The socket lives in DIR unless "DIR/.s.PGSQL.65535" would not fit in sun_path.
choose_socket_dir() {
    if [ -f "$DIR/socket_dir" ]; then
        SOCKET_DIR=$(cat "$DIR/socket_dir")
        mkdir -p "$SOCKET_DIR"   # /tmp may have been cleaned since
    elif [ $((${#DIR} + 17)) -le $SOCKET_PATH_MAX ]; then
        SOCKET_DIR=$DIR
    else
        SOCKET_DIR=$(mktemp -d /tmp/ajpg.XXXXXX)
    fi
    echo "$SOCKET_DIR" >"$DIR/socket_dir"
    chmod 755 "$SOCKET_DIR"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$SOCKET_DIR"; fi
}

# A random loopback port nobody listens on right now. The server binds it a moment
# later; when another process wins that race, start() tries another port.
pick_port() {
    local port
    # Keep the port of an earlier start when it is still free: stable URLs across stops.
    if [ -f "$DIR/port" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$(cat "$DIR/port")") 2>/dev/null; then
        cat "$DIR/port"
        return
    fi
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

init_cluster() {
    mkdir -p "$DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$DIR"
        runuser -u postgres -- test -w "$DIR" -a -x "$DIR" ||
            die "user postgres cannot write $DIR (a parent directory is not searchable?)"
    fi
    as_owner "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >>"$DIR/initdb.log" 2>&1 || die "initdb failed, see $DIR/initdb.log"
}

# Later lines of postgresql.conf win, so a new port is simply appended.
configure() {
    cat >>"$DATA/postgresql.conf" <<EOF
# pg-server.sh
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$SOCKET_DIR'
fsync = on
max_connections = 100
EOF
}

start() {
    if is_running; then url; return; fi
    [ -f "$DATA/PG_VERSION" ] || init_cluster
    choose_socket_dir
    local port
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$(pick_port)
        configure "$port"
        if as_owner "$PG_BIN/pg_ctl" start -w -t 60 -D "$DATA" -l "$DIR/postgres.log" \
            >/dev/null 2>&1; then
            echo "$port" >"$DIR/port"
            create_database
            url
            return
        fi
        echo "pg-server.sh: start on port $port failed, retrying" >&2
        rm -f "$DIR/port"
    done
    die "cannot start PostgreSQL, see $DIR/postgres.log"
}

create_database() {
    local exists
    exists=$(as_owner "$PG_BIN/psql" -h "$SOCKET_DIR" -p "$(cat "$DIR/port")" -U postgres \
        -d postgres -XtAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")
    if [ "$exists" != 1 ]; then
        as_owner "$PG_BIN/createdb" -h "$SOCKET_DIR" -p "$(cat "$DIR/port")" -U postgres \
            "$DB_NAME" || die "createdb failed"
    fi
}

stop() {
    if is_running; then
        as_owner "$PG_BIN/pg_ctl" stop -m fast -w -D "$DATA" >/dev/null ||
            die "pg_ctl stop failed"
    fi
    # A socket directory of our own under /tmp goes away with the server.
    if [ -f "$DIR/socket_dir" ]; then
        local sd
        sd=$(cat "$DIR/socket_dir")
        case "$sd" in /tmp/ajpg.*) rm -rf "$sd" ;; esac
    fi
}

restart() {
    is_running || die "no cluster running in $DIR"
    as_owner "$PG_BIN/pg_ctl" restart -m fast -w -t 60 -D "$DATA" -l "$DIR/postgres.log" \
        >/dev/null || die "pg_ctl restart failed, see $DIR/postgres.log"
}

[ $# -eq 2 ] || usage
DIR=$2
[ -n "$DIR" ] || usage
if [ "$1" = start ]; then mkdir -p "$DIR"; fi
if [ ! -d "$DIR" ]; then
    [ "$1" = stop ] && exit 0
    die "no such directory: $DIR"
fi
DIR=$(cd "$DIR" && pwd -P)
DATA=$DIR/data
case "$1" in
    start) start ;;
    stop) stop ;;
    restart) restart ;;
    url) is_running || die "no cluster running in $DIR"; url ;;
    *) usage ;;
esac
