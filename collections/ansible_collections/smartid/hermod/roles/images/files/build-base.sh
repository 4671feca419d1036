#!/usr/bin/env bash
# Build the Debian base image of the bundle without any registry:
# debootstrap the host's Debian release from its configured apt mirror, then `docker import`.
# Usage: build-base.sh <image-ref> <suite> <mirror or ""> <packages-comma-separated>
# Made once: a no-op when <image-ref> already exists.
set -euo pipefail
image_ref="$1"; suite="$2"; mirror="${3:-}"; packages="$4"

# No mirror given: use the host's own apt mirror (deb822 sources first, then sources.list).
if [[ -z "$mirror" ]]; then
  mirror="$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2; exit}')"
  [[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
  [[ -n "$mirror" ]] || mirror="http://deb.debian.org/debian"
fi

if docker image inspect "$image_ref" >/dev/null 2>&1; then
  echo "base image $image_ref present"
  exit 0
fi

rootfs="$(mktemp -d /var/tmp/smartid-base.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# Keep the image small and free of host leftovers.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
rm -f "$rootfs/etc/apt/sources.list"
cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  - "$image_ref" >/dev/null
echo "base image $image_ref built"
