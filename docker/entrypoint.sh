#!/bin/bash
# The entrypoint of vostok's image: runs `vostok "$@"` in /var/lib/vostok.
#
# With $VOSTOK_DATA set (an object-store URL, e.g. s3://bucket/prefix), it first writes
# ./vostok.toml (mode 600, in place of the link to /etc/vostok/vostok.toml): `data` from
# $VOSTOK_DATA, `storage_options` from the AWS_* variables (AWS_ENDPOINT -> aws_endpoint,
# AWS_SECRET_ACCESS_KEY -> aws_secret_access_key, ...: object_store's AmazonS3ConfigKey names),
# then /etc/vostok/vostok.toml, which must not set `data` or `storage_options` itself. vostok
# reads its storage options from its configuration file only; this way the keys come from the
# container's environment, and every vostok command run in the container later (`docker
# exec ... vostok user add`, `config check`) reads the same file.
set -euo pipefail

if [[ -n "${VOSTOK_DATA:-}" ]]; then
    # a TOML basic string
    toml_str() {
        local s="$1"
        [[ "$s" != *[[:cntrl:]]* ]] || { echo "[vostok-entrypoint] a control character in a setting" >&2; exit 2; }
        s="${s//\\/\\\\}"
        printf '"%s"' "${s//\"/\\\"}"
    }
    umask 077
    {
        echo "# Written at the container's start from \$VOSTOK_DATA, \$AWS_* and /etc/vostok/vostok.toml."
        echo "data = $(toml_str "$VOSTOK_DATA")"
        echo "storage_options = ["
        for name in $(compgen -e | grep '^AWS_' | sort); do
            echo "    [$(toml_str "${name,,}"), $(toml_str "${!name}")],"
        done
        echo "]"
        echo
        cat /etc/vostok/vostok.toml
    } >vostok.toml.new
    mv -f vostok.toml.new vostok.toml
fi
exec /usr/local/bin/vostok "$@"
