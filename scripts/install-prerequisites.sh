#!/usr/bin/env bash
# Installs what smtptape needs from Debian's packages (and PyPI), skipping what is already there.
#   scripts/install-prerequisites.sh            libpcap-dev: enough to build, run and test
#   scripts/install-prerequisites.sh --captures  + tcpdump, swaks, msmtp, curl, postfix, aiosmtpd (Captures/make-captures.sh)
#   scripts/install-prerequisites.sh --bench     + tcpdump, tshark, postfix, GNU time, valgrind, aiosmtpd (bench/)
#   scripts/install-prerequisites.sh --corpus    + tshark, python3 (scripts/check-corpus.sh)
# Fails if a tool it was asked for is still missing afterwards.
set -euo pipefail
packages=(libpcap-dev pkg-config)
python_packages=()
commands=()   # tools that must be on PATH afterwards
for option in "$@"; do
  case "$option" in
    --captures) packages+=(tcpdump swaks msmtp curl postfix openssl); python_packages+=(aiosmtpd) ;;
    --bench) packages+=(tcpdump tshark postfix time valgrind); python_packages+=(aiosmtpd); commands+=(tshark) ;;
    --corpus) packages+=(tshark); commands+=(tshark python3) ;;
    *) echo "usage: $0 [--captures] [--bench] [--corpus]" >&2; exit 64 ;;
  esac
done
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# python3 may come from elsewhere (pyenv); only install Debian's when there is none on PATH.
for tool in "${commands[@]}"; do
  if [ "$tool" = python3 ] && ! command -v python3 > /dev/null; then missing+=(python3); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  # Postfix asks how to configure itself; smtptape only uses its smtp-sink and smtp-source.
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  # wireshark-common (tshark) asks whether non-root users may capture; they may not.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" > /dev/null
fi
for package in "${python_packages[@]}"; do
  python3 -c "import $package" 2>/dev/null || python3 -m pip install -q "$package"
done
for tool in "${commands[@]}"; do
  command -v "$tool" > /dev/null || { echo "install-prerequisites: $tool is still missing" >&2; exit 1; }
done
