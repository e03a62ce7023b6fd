#!/bin/sh
# Container entrypoint: make sure SECRET_KEY is set, then run the given command.
# An explicit SECRET_KEY (from the environment or .env) always wins. Without one, a random key
# is generated once and kept in SECRET_KEY_FILE (a volume shared by the loader, web and worker
# containers), so plain `docker compose up` works with DEBUG off and never uses a well-known key.
set -eu

if [ -z "${SECRET_KEY:-}" ]; then
    key_file="${SECRET_KEY_FILE:-/app/var/secrets/secret_key}"
    if [ ! -s "$key_file" ]; then
        mkdir -p "$(dirname "$key_file")"
        tmp="$key_file.$$"
        (umask 077 && python -c 'import secrets; print(secrets.token_urlsafe(50))' >"$tmp")
        # ln fails if another container created the file first: that one's key is kept.
        ln "$tmp" "$key_file" 2>/dev/null || true
        rm -f "$tmp"
    fi
    SECRET_KEY="$(cat "$key_file")"
    export SECRET_KEY
fi

exec "$@"
