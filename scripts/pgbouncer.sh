#!/usr/bin/env bash
# Makes sure a PgBouncer in transaction pooling mode runs in front of the test PostgreSQL,
# and prints its URL as the last stdout line; everything else goes to stderr.
#
# It hands each transaction to whichever server connection is free, out of a pool of two per
# database: the strictest stand-in for RDS Proxy's multiplexing there is without AWS. Anything
# that leans on session state (a prepared statement, a SET, an advisory lock, a temporary
# table) breaks there instead of pinning quietly.
#
# Usage:
#   scripts/pgbouncer.sh          ensure it runs; prints POOLER_URL=postgres://postgres@127.0.0.1:6432
#   scripts/pgbouncer.sh stop     stop it, if running
#
#   export "$(scripts/pgbouncer.sh | tail -n1)"
#
# The upstream server is the one scripts/postgres.sh finds (or $DATABASE_URL); a wildcard
# database entry reaches every database on it, among them the ones #[sqlx::test] creates.
# The pooler is installed from Debian (apt-get, root only) if missing, configured and run
# under .tools/pgbouncer/ (gitignored), and reused while it runs. AERONODE_POOLER_PORT picks
# another port than 6432.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$repo/.tools/pgbouncer"
# As root, pgbouncer runs as postgres, which must be able to read its files: in a checkout
# it cannot enter (a mktemp -d clone, mode 700) they go to a directory of their own in /tmp.
if [[ $EUID -eq 0 ]] && ! (cd / && runuser -u postgres -- test -x "$repo") 2>/dev/null; then
    dir="/tmp/aeronode-pgbouncer-$(printf '%s' "$repo" | md5sum | cut -c1-12)"
fi
port="${AERONODE_POOLER_PORT:-6432}"
# Servers per database and user: small, so consecutive transactions of one client often
# land on different server connections.
pool_size=2

# Tool output must not reach stdout: only the final URL line does, on fd 3.
exec 3>&1 1>&2

log() { echo "pgbouncer.sh: $*" >&2; }

# Runs a command as a user pgbouncer accepts: it refuses to run as root.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        # cd first: the postgres user may not be allowed into the caller's directory.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pgbouncer_bin() {
    command -v pgbouncer || { [[ -x /usr/sbin/pgbouncer ]] && echo /usr/sbin/pgbouncer; }
}

install_pgbouncer() {
    if [[ $EUID -ne 0 ]] || ! command -v apt-get > /dev/null; then
        log "pgbouncer is not installed and I cannot install it (needs root and apt-get)"
        exit 1
    fi
    log "installing pgbouncer with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # 3>&-: a service the package starts must not hold our stdout pipe.
    apt-get update -q && apt-get install -y -q --no-install-recommends pgbouncer 3>&-
}

# The pid of our pgbouncer, if it runs.
running_pid() {
    local pid
    [[ -f "$dir/pgbouncer.pid" ]] || return 1
    pid="$(cat "$dir/pgbouncer.pid")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2> /dev/null && echo "$pid"
}

answers() {
    PGCONNECT_TIMEOUT=3 psql "$1" -wXtAq -c 'select 1' > /dev/null 2>&1
}

stop() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.1
        done
        log "stopped pgbouncer ($pid)"
    else
        log "pgbouncer is not running"
    fi
}

case "${1:-}" in
    stop) stop; exit 0 ;;
    "") ;;
    *) log "unknown argument: $1 (expected nothing or stop)"; exit 2 ;;
esac

# The upstream: postgres://user[:password]@host[:port]/database
upstream="$(bash "$repo/scripts/postgres.sh" 3>&- | tail -n1)"
upstream="${upstream#DATABASE_URL=}"
if [[ ! "$upstream" =~ ^postgres(ql)?://([^:@/]+)(:([^@/]*))?@([^:/?]+)(:([0-9]+))?/([^?]+) ]]; then
    log "cannot read user, host, port and database from $upstream"
    exit 1
fi
user="${BASH_REMATCH[2]}"
password="${BASH_REMATCH[4]}"
host="${BASH_REMATCH[5]}"
upstream_port="${BASH_REMATCH[7]:-5432}"
database="${BASH_REMATCH[8]}"
url="postgres://$user@127.0.0.1:$port"

# Ours runs already: on the port it was started on.
if running_pid > /dev/null && [[ -z "${AERONODE_POOLER_PORT:-}" && -f "$dir/pgbouncer.ini" ]]; then
    port="$(awk -F' = ' '$1 == "listen_port" { print $2 }' "$dir/pgbouncer.ini")"
    url="postgres://$user@127.0.0.1:$port"
fi
if running_pid > /dev/null && answers "$url/$database"; then
    log "reusing the pgbouncer on 127.0.0.1:$port"
    echo "POOLER_URL=$url" >&3
    exit 0
fi

binary="$(pgbouncer_bin)" || { install_pgbouncer; binary="$(pgbouncer_bin)"; }

if running_pid > /dev/null; then
    log "pgbouncer runs but does not answer; restarting it"
    stop
fi
taken() { PGCONNECT_TIMEOUT=2 pg_isready -q -h 127.0.0.1 -p "$1" 2> /dev/null; }
if taken "$port"; then
    if [[ -n "${AERONODE_POOLER_PORT:-}" ]]; then
        log "127.0.0.1:$port is taken by another server; set AERONODE_POOLER_PORT to a free port"
        exit 1
    fi
    # Another checkout's pooler, say: take the next free port.
    for candidate in $(seq 6433 6499); do
        if ! taken "$candidate"; then
            log "127.0.0.1:$port is taken by another server; using $candidate"
            port="$candidate"
            break
        fi
    done
    if taken "$port"; then
        log "no free port from 6432 to 6499; set AERONODE_POOLER_PORT"
        exit 1
    fi
    url="postgres://$user@127.0.0.1:$port"
fi

mkdir -p "$dir"
# Trust on the loopback, as the test PostgreSQL does; the user must still be listed, and
# a password there is what pgbouncer signs in to the server with.
printf '"%s" "%s"\n' "$user" "$password" > "$dir/userlist.txt"
version="$("$binary" --version | awk 'NR == 1 { print $NF }')"
# From 1.21 pgbouncer can carry protocol-level prepared statements across server
# connections (on by default from 1.22): off, so a named statement breaks as it would pin.
prepared=""
if [[ "$(printf '%s\n' 1.21 "$version" | sort -V | head -n1)" == 1.21 ]]; then
    prepared="max_prepared_statements = 0"
fi
cat > "$dir/pgbouncer.ini" <<EOF
; Written by scripts/pgbouncer.sh; rewritten on each start.
[databases]
* = host=$host port=$upstream_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = $user
pool_mode = transaction
default_pool_size = $pool_size
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 1000
$prepared
; sqlx sends it at sign-in; pgbouncer would refuse a parameter it does not track.
ignore_startup_parameters = extra_float_digits
; A test drops its database when it ends, and DROP DATABASE waits up to 5 s for the server
; connections on it, then fails. The tests' TestApp has them closed (KILL) when it goes; this
; is for the few tests without one. Long enough that a session left dirty by one invocation
; is still there for the next.
server_idle_timeout = 4
; A database a test has just created may not answer yet: retry soon.
server_login_retry = 0.5
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
EOF
if [[ $EUID -eq 0 ]]; then chown -R postgres: "$dir"; fi

log "starting pgbouncer $version on 127.0.0.1:$port (transaction pooling, $pool_size servers per database) in front of $host:$upstream_port"
# 3>&-: a daemon that inherited our stdout pipe would keep `$(pgbouncer.sh)` waiting forever.
as_owner "$binary" -d "$dir/pgbouncer.ini" 3>&-
for _ in $(seq 1 50); do
    if answers "$url/$database"; then
        echo "POOLER_URL=$url" >&3
        exit 0
    fi
    sleep 0.2
done
log "pgbouncer does not answer on 127.0.0.1:$port; see $dir/pgbouncer.log"
exit 1
