#!/usr/bin/env bash
# Start PostgreSQL if it does not answer on 127.0.0.1:5432 (the tests' second database).
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  exit 0
fi
echo "PostgreSQL does not answer on 127.0.0.1:5432; starting it"
if ls /etc/postgresql >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql)" ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
else
  echo "error: no PostgreSQL cluster under /etc/postgresql" >&2
  exit 1
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 1
done
echo "error: PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
