#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable for the integration tests and prints
# its URL as the last stdout line; everything else goes to stderr.
#
# Usage:
#   scripts/postgres.sh              ensure a server; prints DATABASE_URL=postgres://...
#   scripts/postgres.sh stop-local   stop the throwaway cluster under target/pg, if running
#
#   export "$(scripts/postgres.sh | tail -n1)"
#
# Tried in order, first that works wins:
#   a. $DATABASE_URL, if it answers
#   b. a server on 127.0.0.1:5432 that lets user postgres in without a password
#   c. a Debian cluster (pg_lsclusters) that is down: start it
#   d. no PostgreSQL at all: apt-get install postgresql (root only), then c
#   e. a throwaway cluster in target/pg on port 55432 (AERONODE_PG_FORCE_LOCAL=1 goes straight here)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
database="test"
local_dir="$repo/target/pg"
local_port=55432

# Tool output must not reach stdout: only the final URL line does, on fd 3.
exec 3>&1 1>&2

log() { echo "postgres.sh: $*" >&2; }

# Prints the path of a PostgreSQL program: the newest versioned install first, so initdb
# and pg_ctl always come from the same version; then PATH. Fails if there is none.
pg_bin() {
    local installed=(/usr/lib/postgresql/*/bin/"$1") path
    path="$(printf '%s\n' "${installed[@]}" | sort -V | tail -n1)"
    if [[ ! -x "$path" ]]; then path="$(command -v "$1" || true)"; fi
    [[ -n "$path" ]] && echo "$path"
}

# Runs a command as a user initdb accepts: it refuses to run as root.
as_db_owner() {
    if [[ $EUID -eq 0 ]]; then
        # cd first: the postgres user may not be allowed into the caller's directory.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

answers() {
    PGCONNECT_TIMEOUT=3 psql "$1" -wXtAq -c 'select 1' > /dev/null 2>&1
}

# Creates the test database through the maintenance database, if it is missing.
ensure_database() {
    local server="$1"
    local exists
    exists="$(PGCONNECT_TIMEOUT=3 psql "$server/postgres" -wXtAq \
        -c "select 1 from pg_database where datname = '$database'")"
    if [[ "$exists" != 1 ]]; then
        log "creating database $database"
        # Two scripts racing here is harmless: the loser's error is ignored and rechecked.
        PGCONNECT_TIMEOUT=3 psql "$server/postgres" -wXqA -c "create database $database" || true
    fi
    answers "$server/$database"
}

found() {
    echo "DATABASE_URL=$1" >&3
    exit 0
}

# b. and the end of c.: the server on this port takes user postgres without a password.
try_port() {
    local port="$1"
    local server="postgres://postgres@127.0.0.1:$port"
    command -v pg_isready > /dev/null || return 1
    pg_isready -q -h 127.0.0.1 -p "$port" -t 2 || return 1
    if ! answers "$server/postgres"; then
        log "127.0.0.1:$port answers but refuses user postgres without a password"
        return 1
    fi
    ensure_database "$server" && found "$server/$database"
}

# c. Uses the first Debian cluster that works, starting it if it is down.
try_debian_cluster() {
    command -v pg_lsclusters > /dev/null || return 1
    local version cluster port status
    while read -r version cluster port status _; do
        if [[ "$status" == down* ]]; then
            log "starting cluster $version/$cluster on port $port"
            # --skip-systemctl-redirect: containers and CI runners have no systemd.
            # 3>&- 4>&-: a server must not inherit our stdout pipe or lock, see local_cluster.
            pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start 3>&- 4>&- || continue
            for _ in $(seq 1 30); do
                pg_isready -q -h 127.0.0.1 -p "$port" && break
                sleep 1
            done
        fi
        try_port "$port" || true
    done < <(pg_lsclusters -h 2>/dev/null)
    return 1
}

# d. Installs the Debian packages; they create and usually start cluster <version>/main.
install_postgres() {
    if [[ $EUID -ne 0 ]] || ! command -v apt-get > /dev/null; then
        log "PostgreSQL is not installed and I cannot install it (needs root and apt-get)"
        return 1
    fi
    log "installing PostgreSQL with apt-get"
    local before hba
    before="$(ls /etc/postgresql/*/*/pg_hba.conf 2>/dev/null || true)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q --no-install-recommends postgresql || return 1
    # Debian's default asks for a password over TCP. A cluster created by this install exists
    # only for tests, so let user postgres in from the loopback only, as the URL assumes.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
        [[ -f "$hba" ]] || continue
        grep -qxF "$hba" <<< "$before" && continue
        sed -i '1i host all postgres 127.0.0.1/32 trust  # added by scripts/postgres.sh' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload \
            2> /dev/null || true
    done
}

# e. A cluster of our own under target/pg: trust auth, loopback only, reused across runs.
local_cluster() {
    local initdb pg_ctl data="$local_dir/data"
    initdb="$(pg_bin initdb)" || { log "no initdb found"; return 1; }
    pg_ctl="$(pg_bin pg_ctl)" || { log "no pg_ctl found"; return 1; }
    mkdir -p "$local_dir"
    if [[ $EUID -eq 0 ]]; then chown postgres: "$local_dir"; fi
    # One script at a time: parallel test runs must not both run initdb.
    exec 4> "$local_dir.lock"
    flock 4

    if [[ ! -f "$data/PG_VERSION" ]]; then
        log "creating a throwaway cluster in $data"
        as_db_owner "$initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale > /dev/null
        # Durability settings off: the data is disposable and the tests run faster.
        cat >> "$data/postgresql.conf" <<EOF

# Added by scripts/postgres.sh: a throwaway test cluster.
listen_addresses = '127.0.0.1'
port = $local_port
unix_socket_directories = '$local_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi
    if ! as_db_owner "$pg_ctl" -D "$data" status > /dev/null 2>&1; then
        log "starting the throwaway cluster on 127.0.0.1:$local_port"
        # 3>&- 4>&-: a server that inherited our stdout pipe would keep `$(postgres.sh)` waiting
        # forever, and one that inherited the lock would block the next run.
        as_db_owner "$pg_ctl" -D "$data" -l "$local_dir/postgres.log" -w -t 30 start > /dev/null 3>&- 4>&-
    fi
    local server="postgres://postgres@127.0.0.1:$local_port"
    ensure_database "$server" && found "$server/$database"
    log "the throwaway cluster does not answer; see $local_dir/postgres.log"
    return 1
}

stop_local() {
    local pg_ctl data="$local_dir/data"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        log "no throwaway cluster in $data"
        return 0
    fi
    pg_ctl="$(pg_bin pg_ctl)"
    if as_db_owner "$pg_ctl" -D "$data" status > /dev/null 2>&1; then
        as_db_owner "$pg_ctl" -D "$data" -m fast -w stop > /dev/null
        log "stopped the throwaway cluster"
    else
        log "the throwaway cluster is not running"
    fi
}

case "${1:-}" in
    stop-local) stop_local; exit 0 ;;
    "") ;;
    *) log "unknown argument: $1 (expected nothing or stop-local)"; exit 2 ;;
esac

if [[ "${AERONODE_PG_FORCE_LOCAL:-0}" != 1 ]]; then
    # a.
    if [[ -n "${DATABASE_URL:-}" ]]; then
        if command -v psql > /dev/null && answers "$DATABASE_URL"; then found "$DATABASE_URL"; fi
        log "DATABASE_URL is set but does not answer; looking for another server"
    fi
    # b.
    try_port 5432 || true
    # d. Only when there is nothing to start: no server binaries or no client.
    if ! pg_bin initdb > /dev/null || ! command -v psql > /dev/null; then
        # 3>&-: the package scripts may start a server, which must not hold our stdout pipe.
        install_postgres 3>&- || true
    fi
    # c.
    try_debian_cluster || true
fi

# e. Called outside any || so that set -e stops at the first failing step.
local_cluster
