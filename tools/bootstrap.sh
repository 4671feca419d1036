#!/usr/bin/env bash
# Prepare the controller for one purpose, and only what that purpose needs:
#   tools/bootstrap.sh controller   what `make deploy` needs: Debian tooling and Ansible
#                                   (requirements/controller.txt)
#   tools/bootstrap.sh test         what `make test` needs besides: the test tools
#                                   (requirements/test.txt, which includes the service's own
#                                   images/messaging/requirements.txt) and PostgreSQL server
#                                   binaries for the database tests
#   tools/bootstrap.sh dev          developer tools on top (requirements/dev.txt)
# The virtualenv is $VENV (default .venv). Idempotent and quiet when everything is in place:
# a purpose is installed again only when one of the requirement files it installs from changed.
set -euo pipefail
cd "$(dirname "$0")/.."

purpose="${1:-controller}"
venv="${VENV:-.venv}"

# The requirement files of each purpose, including those pulled in with -r: the stamp covers
# all of them, so a change in any one installs again.
files_of() {
  case "$1" in
    controller) echo requirements/controller.txt ;;
    test) echo "$(files_of controller) requirements/test.txt images/messaging/requirements.txt" ;;
    dev) echo "$(files_of test) requirements/dev.txt" ;;
  esac
}
# shellcheck disable=SC2046  # the file list is split on purpose
hash_of() { cat $(files_of "$1") | sha256sum | cut -d' ' -f1; }
stamp_of() { echo "$venv/.bootstrap-$1.sha256"; }

case "$purpose" in
  controller | test | dev) ;;
  *)
    echo "bootstrap: unknown purpose '$purpose' (controller, test or dev)" >&2
    exit 2
    ;;
esac

apt_packages=(debootstrap iproute2 git ca-certificates)
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
# The database tests start throwaway clusters with the server binaries of whichever PostgreSQL
# version is installed (/usr/lib/postgresql/<version>/bin).
if [[ $purpose != controller ]] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  apt_packages+=(postgresql)
fi

missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: please install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

want="$(hash_of "$purpose")"
if [[ ! -x $venv/bin/python || "$(cat "$(stamp_of "$purpose")" 2>/dev/null)" != "$want" ]]; then
  echo "bootstrap: installing the $purpose requirements into $venv"
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet -r "requirements/$purpose.txt"
  # A larger purpose includes the smaller ones: record those as installed too, so that
  # `make deploy` after `make test` installs nothing.
  for included in controller test dev; do
    hash_of "$included" >"$(stamp_of "$included")"
    [[ $included == "$purpose" ]] && break
  done
fi
