#!/bin/bash
# Writes /etc/nginx/nginx.conf from the template and runs nginx in the foreground.
set -euo pipefail
listen="${VOSTOK_HTTP_LISTEN:-127.0.0.1:8000}"
upstream="${VOSTOK_UPSTREAM:-127.0.0.1:8081}"
for v in "$listen" "$upstream"; do
    [[ "$v" =~ ^[][A-Za-z0-9.:-]+$ ]] || { echo "[vostok-nginx] not an address: $v" >&2; exit 2; }
done
sed -e "s|@LISTEN@|$listen|g" -e "s|@UPSTREAM@|$upstream|g" \
    /etc/nginx/vostok.conf.in > /etc/nginx/nginx.conf
nginx -t -q
exec nginx -g 'daemon off;' "$@"
