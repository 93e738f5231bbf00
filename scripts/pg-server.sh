#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests.
#
#   scripts/pg-server.sh start DIR    initialise (first time) and start a cluster in DIR;
#                                     prints ONE line: the libpq URI of database acidic_test
#   scripts/pg-server.sh url DIR      print that URI again (the cluster must be running)
#   scripts/pg-server.sh restart DIR [MODE]
#                                     restart it (tests simulate a server restart); MODE (or
#                                     PG_STOP_MODE) is pg_ctl's shutdown mode: fast (default),
#                                     smart, or immediate (a crash: no checkpoint, every
#                                     connection cut without a word)
#   scripts/pg-server.sh stop DIR     stop it (fast); safe to call twice or on no cluster
#
# The cluster listens on a free 127.0.0.1 port and on a unix socket. Authentication is
# `trust`: this is a throwaway test server. fsync stays on, so commit timings are real.
#
# initdb refuses to run as root, so as root the server runs as the `postgres` user and
# DIR is handed to that user. Two cases put files under /tmp instead, recorded in DIR:
#   - DIR/socket_dir: DIR is too long for a unix socket path (107 bytes);
#   - DIR/home: the postgres user cannot reach DIR (a parent directory such as /root is
#     private); the cluster then lives in /tmp/ajpg.* and is deleted by `stop`.
# Diagnostics go to stderr and postgres.log; stdout carries only the URI.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB_NAME=acidic_test
SOCKET_PATH_MAX=107 # sun_path is 108 bytes including the NUL

die() { echo "pg-server.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|url DIR | restart DIR [fast|immediate]"; }

am_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
    if am_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

give_to_owner() {
    if am_root; then chown postgres: "$@"; fi
}

# A private directory under /tmp, short enough for a socket path, owned by the owner.
tmp_dir() {
    local d
    d=$(mktemp -d /tmp/ajpg.XXXXXX)
    chmod 755 "$d"
    give_to_owner "$d"
    echo "$d"
}

# Where the owner keeps the cluster: DIR itself, or the /tmp directory recorded in
# DIR/home. Sets PG_HOME, DATA and LOG.
locate() {
    if [ -f "$DIR/home" ]; then PG_HOME=$(cat "$DIR/home"); else PG_HOME=$DIR; fi
    DATA=$PG_HOME/data
    LOG=$PG_HOME/postgres.log
}

is_running() {
    [ -f "$DATA/PG_VERSION" ] && as_owner "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

url() { echo "postgresql://postgres@127.0.0.1:$(cat "$DIR/port")/$DB_NAME"; }

choose_home() {
    give_to_owner "$DIR"
    if ! as_owner test -w "$DIR" -a -x "$DIR" 2>/dev/null; then
        tmp_dir >"$DIR/home"
        echo "pg-server.sh: $DIR is not reachable for the postgres user;" \
            "the cluster lives in $(cat "$DIR/home")" >&2
    fi
    locate
}

# The socket lives with the cluster unless "PG_HOME/.s.PGSQL.65535" would not fit.
choose_socket_dir() {
    if [ -f "$DIR/socket_dir" ]; then
        SOCKET_DIR=$(cat "$DIR/socket_dir")
        if [ ! -d "$SOCKET_DIR" ]; then # /tmp may have been cleaned since
            mkdir -p "$SOCKET_DIR"
            chmod 755 "$SOCKET_DIR"
            give_to_owner "$SOCKET_DIR"
        fi
    elif [ $((${#PG_HOME} + 17)) -le $SOCKET_PATH_MAX ]; then
        SOCKET_DIR=$PG_HOME
    else
        SOCKET_DIR=$(tmp_dir)
    fi
    echo "$SOCKET_DIR" >"$DIR/socket_dir"
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A loopback port nobody listens on right now (the previous one when still free, so
# URLs stay stable across stop and start). The server binds it a moment later; when
# another process wins that race, start() tries another port.
pick_port() {
    local port
    if [ -f "$DIR/port" ] && ! port_taken "$(cat "$DIR/port")"; then
        cat "$DIR/port"
        return
    fi
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! port_taken "$port"; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

init_cluster() {
    as_owner "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$DIR/initdb.log" 2>&1 || die "initdb failed, see $DIR/initdb.log"
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

create_database() {
    local port exists
    port=$(cat "$DIR/port")
    exists=$(as_owner "$PG_BIN/psql" -h "$SOCKET_DIR" -p "$port" -U postgres -d postgres \
        -XtAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")
    if [ "$exists" != 1 ]; then
        as_owner "$PG_BIN/createdb" -h "$SOCKET_DIR" -p "$port" -U postgres "$DB_NAME" ||
            die "createdb failed"
    fi
}

start() {
    if is_running; then url; return; fi
    if [ ! -f "$DIR/home" ] || [ ! -d "$PG_HOME" ]; then
        rm -f "$DIR/home"
        choose_home
    fi
    [ -f "$DATA/PG_VERSION" ] || init_cluster
    choose_socket_dir
    local port
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$(pick_port)
        configure "$port"
        if as_owner "$PG_BIN/pg_ctl" start -w -t 60 -D "$DATA" -l "$LOG" >/dev/null 2>&1; then
            echo "$port" >"$DIR/port"
            create_database
            url
            return
        fi
        echo "pg-server.sh: start on port $port failed, retrying" >&2
        rm -f "$DIR/port"
    done
    die "cannot start PostgreSQL, see $LOG"
}

stop() {
    if is_running; then
        as_owner "$PG_BIN/pg_ctl" stop -m fast -w -D "$DATA" >/dev/null ||
            die "pg_ctl stop failed"
    fi
    # Directories of our own under /tmp go away with the server.
    local d
    for f in socket_dir home; do
        if [ -f "$DIR/$f" ]; then
            d=$(cat "$DIR/$f")
            case "$d" in /tmp/ajpg.*) rm -rf "$d" ;; esac
            rm -f "$DIR/$f"
        fi
    done
}

restart() {
    is_running || die "no cluster running in $DIR"
    case "$MODE" in fast | immediate | smart) ;; *) usage ;; esac
    as_owner "$PG_BIN/pg_ctl" restart -m "$MODE" -w -t 60 -D "$DATA" -l "$LOG" >/dev/null ||
        die "pg_ctl restart failed, see $LOG"
}

[ $# -eq 2 ] || { [ $# -eq 3 ] && [ "$1" = restart ]; } || usage
DIR=$2
MODE=${3:-${PG_STOP_MODE:-fast}}
[ -n "$DIR" ] || usage
if [ "$1" = start ]; then mkdir -p "$DIR"; fi
if [ ! -d "$DIR" ]; then
    [ "$1" = stop ] && exit 0
    die "no such directory: $DIR"
fi
DIR=$(cd "$DIR" && pwd -P)
locate
case "$1" in
    start) start ;;
    stop) stop ;;
    restart) restart ;;
    url) is_running || die "no cluster running in $DIR"; url ;;
    *) usage ;;
esac
