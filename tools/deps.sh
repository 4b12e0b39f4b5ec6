#!/bin/sh
# Check that Debian packages are installed; install the missing ones with
# apt-get when run as root, else print the apt-get line to run and fail.
#
# usage: tools/deps.sh package...
set -u
if ! command -v dpkg >/dev/null 2>&1; then
    echo "deps: dpkg not found (not Debian?); make sure these are installed: $*" >&2
    exit 0
fi
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing Debian packages:$missing"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q$missing
else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
