#!/bin/sh
# Lidarr -> Settings -> Connect -> + -> Custom Script: hands Lidarr's new and retagged
# tracks to Nomarr. The fallback where Lidarr's Webhook cannot be used; needs curl
# (in linuxserver.io's Lidarr image).
#
#   NOMARR_URL  where Nomarr answers (default http://nomarr:8356, the compose service)
#   NOMARR_KEY  a key from `manage.py create_api_key lidarr`
# Set both in Lidarr's environment, or here:
NOMARR_URL="${NOMARR_URL:-http://nomarr:8356}"
NOMARR_KEY="${NOMARR_KEY:-}"
#
# Lidarr's Test passes only when Nomarr answers with that key. Events that add no
# track (Grab, Rename, health checks, ...) succeed without a request: Nomarr's library
# scan follows renames by the files' audio. A path is sent as Lidarr gave it;
# NOMARR_PATH_MAP on Nomarr's side translates it, as for the webhook.

fail() {
    echo "nomarr: $*" >&2
    exit 1
}

[ -n "$NOMARR_KEY" ] || fail "NOMARR_KEY is not set (manage.py create_api_key lidarr)"

# A JSON string holding $1: backslash, double quote, tab and carriage return escaped.
json_string() {
    tab=$(printf '\t')
    cr=$(printf '\r')
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
        -e "s/$tab/\\\\t/g" -e "s/$cr/\\\\r/g")"
}

nomarr() {
    curl -fsS --max-time 30 -H "Authorization: Bearer $NOMARR_KEY" "$@"
}

tag() {
    [ -n "$1" ] || return 0
    nomarr -H 'Content-Type: application/json' --data-binary "{\"path\": $(json_string "$1")}" \
        "$NOMARR_URL/api/v1/tag" >/dev/null || fail "Nomarr refused or did not answer for $1"
}

case "${lidarr_eventtype:-}" in
    Test)
        nomarr "$NOMARR_URL/api/v1/info" >/dev/null \
            || fail "no answer with this key from $NOMARR_URL (is NOMARR_KEY right?)"
        echo "nomarr: $NOMARR_URL answers with this key"
        ;;
    AlbumDownload | Download)
        # Paths separated by '|', Lidarr's way (a '|' inside a name cannot be told apart).
        old_ifs=$IFS
        IFS='|'
        set -f
        # shellcheck disable=SC2086  # split on IFS on purpose
        set -- ${lidarr_addedtrackpaths:-}
        set +f
        IFS=$old_ifs
        for path in "$@"; do
            tag "$path"
        done
        ;;
    TrackRetag)
        tag "${lidarr_trackfile_path:-}"
        ;;
esac
exit 0
