#!/usr/bin/env bash
# apt-ensure.sh PACKAGE PURPOSE FILE...: install a Debian package with apt when none of FILE
# exists (globs allowed), with sudo -n when not root. Without apt, or without the rights, it only
# says so: the tests that need the package skip, saying why.
set -uo pipefail
package="$1"; purpose="$2"; shift 2
APT_GET="${APT_GET:-apt-get}"
for file in "$@"; do
  for found in $file; do [ -e "$found" ] && exit 0; done
done
if ! command -v "$APT_GET" >/dev/null 2>&1; then
  echo "$package is missing and $APT_GET is not available: the $purpose will skip."; exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "$package is missing; not root and no sudo: the $purpose will skip" \
         "(install it with: apt-get install $package)."; exit 0
  fi
fi
echo "Installing $package for the $purpose: ${sudo:+$sudo }$APT_GET install -y $package"
export DEBIAN_FRONTEND=noninteractive
$sudo "$APT_GET" install -y "$package" \
  || { $sudo "$APT_GET" update && $sudo "$APT_GET" install -y "$package"; } \
  || echo "Could not install $package: the $purpose will skip."
exit 0
