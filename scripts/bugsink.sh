#!/usr/bin/env bash
# A real Bugsink (Sentry-protocol server) for the tests, on 127.0.0.1.
#
#   scripts/bugsink.sh install          # idempotent: venv + a migrated template database (cached)
#   scripts/bugsink.sh start DIR PORT   # prints DSN=… TOKEN=… API=…; gunicorn's pid in DIR/gunicorn.pid
#
# The cache lives in $STRATA_CACHE (default ~/.cache/strata). See ../shared/reference/backends.md.
set -euo pipefail
cache="${STRATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}"
venv="$cache/venv-bugsink"
template="$cache/bugsink-template"

conf() { # DIR PORT
  cat > "$1/bugsink_conf.py" <<CONF
from bugsink.settings.default import *  # noqa
SECRET_KEY = "strata-tests-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz"
DATABASES["default"]["NAME"] = "$1/db.sqlite3"
DATABASES["snappea"]["NAME"] = "$1/snappea.sqlite3"
SNAPPEA = {"TASK_ALWAYS_EAGER": True}
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
BUGSINK = {"BASE_URL": "http://127.0.0.1:$2", "SINGLE_USER": True, "SINGLE_TEAM": True,
           "PHONEHOME": False, "INGEST_STORE_BASE_DIR": "$1/ingestion"}
CONF
}

manage() { # DIR args…
  local dir="$1"; shift
  DJANGO_SETTINGS_MODULE=bugsink_conf PYTHONPATH="$dir" "$venv/bin/bugsink-manage" "$@"
}

case "${1:-}" in
  install)
    if ! "$venv/bin/python" -c "import bugsink" > /dev/null 2>&1; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q --disable-pip-version-check bugsink==2.6.2
    fi
    if [ ! -f "$template/db.sqlite3" ]; then
      rm -rf "$template.tmp" && mkdir -p "$template.tmp"
      conf "$template.tmp" 8000
      manage "$template.tmp" migrate --noinput -v0
      manage "$template.tmp" migrate --noinput -v0 --database=snappea
      mkdir -p "$template"
      cp "$template.tmp"/db.sqlite3 "$template.tmp"/snappea.sqlite3 "$template/"
      rm -rf "$template.tmp"
    fi
    ;;
  start)
    dir="$2"; port="$3"
    mkdir -p "$dir"
    conf "$dir" "$port"
    cp "$template"/db.sqlite3 "$template"/snappea.sqlite3 "$dir/"
    manage "$dir" migrate --noinput -v0
    manage "$dir" migrate --noinput -v0 --database=snappea
    CREATE_SUPERUSER=admin@example.com:admin manage "$dir" prestart > /dev/null
    token="$(manage "$dir" create_auth_token | tail -n1)"
    DJANGO_SETTINGS_MODULE=bugsink_conf PYTHONPATH="$dir" setsid nohup "$venv/bin/gunicorn" \
      --bind "127.0.0.1:$port" --workers 2 --chdir "$dir" --control-socket "$dir/gunicorn.ctl" \
      bugsink.wsgi < /dev/null > "$dir/gunicorn.log" 2>&1 &
    echo $! > "$dir/gunicorn.pid"
    for _ in $(seq 1 300); do
      curl -fsS -o /dev/null "http://127.0.0.1:$port/health/ready" 2>/dev/null && break
      sleep 0.1
    done
    api="http://127.0.0.1:$port/api/canonical/0"
    auth="Authorization: Bearer $token"
    team="$(curl -fsS -H "$auth" -H 'Content-Type: application/json' -X POST "$api/teams/" -d '{"name":"strata"}' \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
    proj="$(curl -fsS -H "$auth" -H 'Content-Type: application/json' -X POST "$api/projects/" \
      -d "{\"team\":\"$team\",\"name\":\"strata\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
    dsn="$(curl -fsS -H "$auth" "$api/projects/$proj/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dsn"])')"
    echo "DSN=$dsn"
    echo "TOKEN=$token"
    echo "API=$api"
    echo "PROJECT=$proj"
    ;;
  *)
    echo "usage: $0 install | start DIR PORT" >&2
    exit 2
    ;;
esac
