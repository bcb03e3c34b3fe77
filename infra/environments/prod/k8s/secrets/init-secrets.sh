#!/bin/sh
# Create the git-ignored files the prod Secrets are generated from (kustomization.yaml here):
#   redis.env    redis-password=<64 random hex digits>
#   db-meta.env  admin-token=<64 random hex digits>
# An existing file is never overwritten (rotation is deliberate: REDIS_DEPLOYMENT.md). db-urls.env
# holds real database URLs, which no script can invent: the script fails until it exists, and
# fails on any KEY= line left empty in the three files.
set -eu
cd "$(dirname "$0")"
umask 077

random_hex() {
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

if [ ! -e redis.env ]; then
  printf 'redis-password=%s\n' "$(random_hex)" > redis.env
  echo "wrote redis.env"
fi
if [ ! -e db-meta.env ]; then
  printf 'admin-token=%s\n' "$(random_hex)" > db-meta.env
  echo "wrote db-meta.env"
fi
if [ ! -e db-urls.env ]; then
  echo "db-urls.env is missing: copy db-urls.env.example to db-urls.env and write the database URLs" >&2
  exit 1
fi
status=0
for file in redis.env db-meta.env db-urls.env; do
  if grep -nE '^[[:space:]]*[A-Za-z_][A-Za-z0-9_.-]*=[[:space:]]*$' "$file" >&2; then
    echo "$file: the lines above have no value" >&2
    status=1
  fi
done
exit "$status"
