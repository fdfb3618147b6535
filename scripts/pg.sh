#!/usr/bin/env bash
# Makes sure PostgreSQL accepts connections on 127.0.0.1:5432 for the store tests
# (trust authentication for local TCP, as on the development machines).
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432; then
  exit 0
fi
cluster_version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
if [[ -z "$cluster_version" ]]; then
  echo "pg: no PostgreSQL cluster found; run scripts/setup.sh first" >&2
  exit 1
fi
hba="/etc/postgresql/$cluster_version/main/pg_hba.conf"
if ! grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  # Test machines only: trust local TCP connections (the recipe's setting).
  sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
  grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32' "$hba" || echo "host all all 127.0.0.1/32 trust" >>"$hba"
fi
pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start || true
for _ in $(seq 1 30); do
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    exit 0
  fi
  sleep 1
done
echo "pg: PostgreSQL did not start on 127.0.0.1:5432" >&2
exit 1
