#!/usr/bin/env bash
# Makes sure PostgreSQL accepts connections from the tests on 127.0.0.1:5432 and on its Unix
# socket in /var/run/postgresql as the `postgres` user without a password (trust
# authentication, as on the development machines): starts the Debian cluster if it is down,
# and on a machine where they ask for a password (or, on the socket, for the system user
# postgres), adds trust lines for 127.0.0.1 and ::1, and for the socket, at the top of
# pg_hba.conf and reloads.
# Test machines only: never run this on a server that holds real data.
set -euo pipefail

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
else
  SUDO=(sudo)
fi
SOCKET_DIR=/var/run/postgresql
connect_tcp() { psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; }
connect_socket() { psql -w -h "$SOCKET_DIR" -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; }
connect() { connect_tcp && connect_socket; }

if connect; then
  exit 0
fi

newest() { find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1; }
version=$(newest /etc/postgresql)
[[ -n "$version" ]] || version=$(newest /usr/lib/postgresql)
if [[ -z "$version" ]]; then
  echo "pg: PostgreSQL is not installed; run scripts/setup.sh first" >&2
  exit 1
fi
if [[ ! -f "/etc/postgresql/$version/main/pg_hba.conf" ]]; then
  echo "pg: creating the PostgreSQL $version cluster 'main'"
  "${SUDO[@]}" pg_createcluster "$version" main >/dev/null
fi

hba="/etc/postgresql/$version/main/pg_hba.conf"
# pg_hba.conf is read top down and the first matching line wins: ours go first.
prepend() {
  local tmp
  tmp=$(mktemp)
  printf '%s\n\n' "$1" >"$tmp"
  "${SUDO[@]}" cat "$hba" >>"$tmp"
  "${SUDO[@]}" cp "$tmp" "$hba"
  rm -f "$tmp"
}
marker="# timebank scripts/pg.sh: trust local TCP connections (test machines only)"
if ! "${SUDO[@]}" grep -qF "$marker" "$hba" \
  && ! "${SUDO[@]}" grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
  echo "pg: configuring trust authentication for 127.0.0.1 and ::1 in $hba"
  prepend "$marker"$'\n''host all all 127.0.0.1/32 trust'$'\n''host all all ::1/128 trust'
fi
socket_marker="# timebank scripts/pg.sh: trust the postgres user on the Unix socket (test machines only)"
if ! connect_socket && ! "${SUDO[@]}" grep -qF "$socket_marker" "$hba"; then
  echo "pg: configuring trust authentication of postgres on the Unix socket in $hba"
  prepend "$socket_marker"$'\n''local all postgres trust'
fi

if pg_isready -q -h 127.0.0.1 -p 5432; then
  "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main reload
else
  echo "pg: starting PostgreSQL $version"
  "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 30); do
  if connect; then
    exit 0
  fi
  sleep 1
done
echo "pg: cannot connect to PostgreSQL on 127.0.0.1:5432 and on $SOCKET_DIR as postgres:" >&2
psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >&2 || true
psql -w -h "$SOCKET_DIR" -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >&2 || true
exit 1
