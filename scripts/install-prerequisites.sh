#!/usr/bin/env bash
# Installs what smtptape needs from Debian's packages (and PyPI), skipping what is already there.
#   scripts/install-prerequisites.sh            libpcap-dev: enough to build and run
#   scripts/install-prerequisites.sh --clients  + swaks, curl, msmtp, tcpdump, python3 with aiosmtpd,
#                                               postfix (its smtp-sink): the real clients and servers
#                                               of the replay and live-capture tests
#                                               (scripts/test.sh; without them those tests skip)
#   scripts/install-prerequisites.sh --captures  + those and postfix, openssl (Captures/make-captures.sh)
#   scripts/install-prerequisites.sh --bench     + tcpdump, tshark, postfix, GNU time, valgrind, aiosmtpd (bench/)
#   scripts/install-prerequisites.sh --corpus    + tshark, python3 (scripts/check-corpus.sh)
# Fails if a tool it was asked for is still missing afterwards.
set -euo pipefail
packages=(libpcap-dev pkg-config)
python_packages=()
commands=()   # tools that must be on PATH afterwards
clients() {
  packages+=(tcpdump swaks msmtp curl postfix tshark); python_packages+=(aiosmtpd); commands+=(tcpdump swaks msmtp curl python3 tshark)
}
for option in "$@"; do
  case "$option" in
    --clients) clients ;;
    --captures) clients; packages+=(postfix openssl) ;;
    --bench) packages+=(tcpdump tshark postfix time valgrind); python_packages+=(aiosmtpd); commands+=(tshark) ;;
    --corpus) packages+=(tshark); commands+=(tshark python3) ;;
    *) echo "usage: $0 [--clients] [--captures] [--bench] [--corpus]" >&2; exit 64 ;;
  esac
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
updated=""
apt_install() {
  echo "installing: $*" >&2
  if [ -z "$updated" ]; then $sudo apt-get update -qq; updated=yes; fi
  # Postfix asks how to configure itself; smtptape only uses its smtp-sink and smtp-source.
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  # wireshark-common (tshark) asks whether non-root users may capture; they may not.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" > /dev/null
}
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# python3 may come from elsewhere (pyenv); only install Debian's when there is none on PATH.
if [[ " ${commands[*]} " == *" python3 "* ]] && ! command -v python3 > /dev/null; then missing+=(python3); fi
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
for package in "${python_packages[@]}"; do
  python3 -c "import $package" 2>/dev/null && continue
  # Debian's own python3 refuses pip (PEP 668, externally managed): take Debian's python3-NAME then.
  python3 -m pip install -q "$package" 2>/dev/null || apt_install "python3-$package"
  python3 -c "import $package" 2>/dev/null || { echo "install-prerequisites: python3 module $package is still missing" >&2; exit 1; }
done
for tool in "${commands[@]}"; do
  command -v "$tool" > /dev/null || { echo "install-prerequisites: $tool is still missing" >&2; exit 1; }
done
