# shellcheck shell=bash
# Shared helpers for the ci/ scripts; source it, don't run it.
# Provides: log/warn/die/step messages, at_exit (stacked EXIT hooks),
# with_pg (bring up Postgres via ci/pg-up, stop it at exit if we started it), with_mariadb
# (the same for MariaDB via ci/mariadb-up).

CI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CI_NAME="${CI_NAME:-$(basename "$0")}"

log()  { printf '%s: %s\n' "$CI_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$CI_NAME" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$CI_NAME" "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*" >&2; }

# at_exit CMD: run CMD (via eval) when the script exits, last registered first.
# Ctrl-C, TERM and a closed stdout also run the hooks. Hooks find the script's exit status in
# $CI_EXIT_STATUS; it stays the script's exit status.
_ci_exit_hooks=()
_ci_run_exit_hooks() {
  CI_EXIT_STATUS=$?
  local i
  for ((i = ${#_ci_exit_hooks[@]} - 1; i >= 0; i--)); do
    eval "${_ci_exit_hooks[i]}" || true
  done
  exit "$CI_EXIT_STATUS"
}
at_exit() {
  _ci_exit_hooks+=("$1")
  trap _ci_run_exit_hooks EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 141' PIPE # e.g. `ci/test | head`: still clean up
}

# with_pg: make DATABASE_URL point at a reachable PostgreSQL (reusing the
# caller's if it answers); a throwaway cluster started here is stopped at exit.
with_pg() {
  local out
  out="$("$CI_ROOT/ci/pg-up")" || die "could not bring up PostgreSQL (see messages above)"
  unset ZART_PG_FRESH # may be inherited from a parent script; only pg-up's answer counts
  eval "$out"
  if [[ ${ZART_PG_FRESH:-0} == 1 ]]; then
    # shellcheck disable=SC2016 # expanded when the hook runs
    at_exit '"$CI_ROOT/ci/pg-down" || true'
  fi
}

# with_mariadb: make ZART_MYSQL_URL point at a reachable MariaDB/MySQL server (reusing the
# caller's, or 127.0.0.1:3306, if it answers); a throwaway server started here is stopped at
# exit.
with_mariadb() {
  local out
  out="$("$CI_ROOT/ci/mariadb-up")" || die "could not bring up MariaDB (see messages above)"
  unset ZART_MYSQL_FRESH
  eval "$out"
  if [[ ${ZART_MYSQL_FRESH:-0} == 1 ]]; then
    # shellcheck disable=SC2016 # expanded when the hook runs
    at_exit '"$CI_ROOT/ci/mariadb-down" || true'
  fi
}

# url_with_db URL DB: URL with its database name replaced by DB (query kept,
# any dbname= query parameter dropped since libpq would let it win).
url_with_db() {
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit, quote
url, db = sys.argv[1], sys.argv[2]
u = urlsplit(url)
if u.scheme not in ("postgres", "postgresql"):
    sys.exit("url_with_db: DATABASE_URL must be a postgres:// or postgresql:// URL")
q = "&".join(p for p in u.query.split("&") if p and not p.startswith("dbname="))
print(f"{u.scheme}://{u.netloc}/{quote(db, safe='')}" + (f"?{q}" if q else ""))
PY
}
