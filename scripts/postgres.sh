# Shared helpers for ./run, ./test and the benchmarks: a private PostgreSQL cluster on loopback.
# Source this file; it defines functions and changes nothing by itself.

pg_bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ]; then
    echo "PostgreSQL server binaries not found; installing Debian's postgresql package..." >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || return 1
    dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$dir"
}

# PostgreSQL refuses to run as root; run its tools as the 'postgres' system user then.
pg_as_owner() {
  if [ "$(id -u)" = "0" ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    # From /, since the postgres user may not be allowed into the current directory.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

pg_free_port() {
  # Below the kernel's ephemeral range: a port from it can be taken, between this check and the
  # listener's bind, as the local end of any outgoing connection (the app's own to PostgreSQL).
  local port low=32768
  [ -r /proc/sys/net/ipv4/ip_local_port_range ] && read -r low _ < /proc/sys/net/ipv4/ip_local_port_range
  [ "$low" -gt 12000 ] || low=32768
  for _ in $(seq 1 50); do
    port=$(( 10000 + RANDOM % (low - 10000) ))
    if ! (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}

# pg_init DIR PASSWORD: create a cluster in DIR (once) with password authentication on loopback.
pg_init() {
  local dir=$1 password=$2 bin
  bin=$(pg_bin_dir) || return 1
  [ -f "$dir/PG_VERSION" ] && return 0
  mkdir -p "$dir"
  [ "$(id -u)" = "0" ] && chown postgres: "$dir"
  chmod 700 "$dir"
  local pwfile; pwfile=$(mktemp); printf '%s\n' "$password" > "$pwfile"; chmod 644 "$pwfile"
  pg_as_owner "$bin/initdb" -D "$dir" -U postgres --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null || { rm -f "$pwfile"; return 1; }
  rm -f "$pwfile"
}

# pg_start DIR PORT [extra postgres -c settings...]
pg_start() {
  local dir=$1 port=$2 bin; shift 2
  bin=$(pg_bin_dir) || return 1
  local opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=/tmp -c max_connections=400"
  for o in "$@"; do opts="$opts -c $o"; done
  pg_as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null
}

pg_stop() {
  local dir=$1 bin
  bin=$(pg_bin_dir) || return 1
  [ -f "$dir/postmaster.pid" ] && pg_as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  return 0
}

pg_connection_string() {
  local port=$1 password=$2 database=${3:-taskdashboard}
  echo "Host=127.0.0.1;Port=$port;Database=$database;Username=postgres;Password=$password"
}

# pg_create_database PORT PASSWORD NAME
pg_create_database() {
  PGPASSWORD=$2 "$(pg_bin_dir)/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA \
    -c "SELECT 1 FROM pg_database WHERE datname = '$3'" | grep -q 1 ||
  PGPASSWORD=$2 "$(pg_bin_dir)/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE DATABASE \"$3\""
}
