#!/bin/bash
# Writes /etc/nginx/nginx.conf from the template and runs nginx in the foreground.
# $VOSTOK_HTTP_LISTEN: where nginx listens; $VOSTOK_UPSTREAM: the vostok servers' addresses,
# separated by spaces or commas.
set -euo pipefail
listen="${VOSTOK_HTTP_LISTEN:-127.0.0.1:8000}"
upstream="${VOSTOK_UPSTREAM:-127.0.0.1:8081}"
read -r -a upstreams <<<"${upstream//,/ }"
servers=""
for v in "$listen" "${upstreams[@]}"; do
    [[ "$v" =~ ^[][A-Za-z0-9.:-]+$ ]] || { echo "[vostok-nginx] not an address: $v" >&2; exit 2; }
done
for v in "${upstreams[@]}"; do
    servers+="        server $v max_fails=1 fail_timeout=10s;\n"
done
sed -e "s|@LISTEN@|$listen|g" -e "s|^@SERVERS@$|${servers%\\n}|" \
    /etc/nginx/vostok.conf.in > /etc/nginx/nginx.conf
nginx -t -q
exec nginx -g 'daemon off;' "$@"
