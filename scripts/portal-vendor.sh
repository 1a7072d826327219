#!/usr/bin/env bash
# The third-party browser libraries the portal bundles (portal/vendor/), fetched from the npm
# registry with `npm pack` and committed unmodified with their licences. Each package's tarball
# is checked against the npm integrity recorded in portal/vendor/VERSIONS, and the committed
# files against portal/vendor/SHA256SUMS.
#
#   scripts/portal-vendor.sh           re-fetch, check, and (re)write portal/vendor/<pkg>-<version>/
#   scripts/portal-vendor.sh --check   re-fetch and check that the committed files are the
#                                      packages' own bytes (writes nothing)
#
# To move to another version: change portal/vendor/VERSIONS (version and integrity from
# `npm view <pkg>@<version> dist.integrity`), run this script, update the asset list in
# src/app/portal.rs and the import paths in portal/*.js, then commit the new folder.
set -euo pipefail
cd "$(dirname "$0")/../portal/vendor"
check_only=0
[[ "${1:-}" == "--check" ]] && check_only=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# package version integrity, then the files taken from the tarball's package/ folder
while read -r name version integrity files; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
    tgz="$work/$name-$version.tgz"
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    if [[ "$got" != "$integrity" ]]; then
        echo "portal-vendor: $name@$version: npm tarball integrity $got, expected $integrity" >&2
        exit 1
    fi
    mkdir -p "$work/$name"
    tar xzf "$tgz" -C "$work/$name"
    dest="$name-$version"
    for f in ${files//,/ }; do
        src="$work/$name/package/$f"
        [[ -f "$src" ]] || { echo "portal-vendor: $name@$version has no $f" >&2; exit 1; }
        base="$(basename "$f")"
        if ((check_only)); then
            cmp -s "$src" "$dest/$base" || { echo "portal-vendor: $dest/$base differs from $name@$version's $f" >&2; exit 1; }
        else
            mkdir -p "$dest"
            cp "$src" "$dest/$base"
        fi
    done
    echo "portal-vendor: $name@$version ok ($integrity)"
done < VERSIONS

if ((check_only)); then
    sha256sum --quiet --strict -c SHA256SUMS
else
    find . -mindepth 2 -type f | LC_ALL=C sort | sed 's|^\./||' | xargs sha256sum > SHA256SUMS
fi
echo "portal-vendor: files match SHA256SUMS"
