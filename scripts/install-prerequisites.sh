#!/usr/bin/env bash
# Installs what smtptape needs from Debian's packages (and PyPI), skipping what is already there.
#   scripts/install-prerequisites.sh            libpcap-dev to build; swaks, curl, msmtp, tcpdump,
#                                               python3 with aiosmtpd: the real clients and servers
#                                               the replay tests run (Tests/SMTPReplayTests)
#   scripts/install-prerequisites.sh --captures  + postfix, openssl (Captures/make-captures.sh)
#   scripts/install-prerequisites.sh --bench     + tshark, postfix, GNU time, valgrind (bench/)
#   scripts/install-prerequisites.sh --corpus    + tshark (scripts/check-corpus.sh)
# Fails if a tool it was asked for is still missing afterwards.
set -euo pipefail
packages=(libpcap-dev pkg-config tcpdump swaks msmtp curl)
python_packages=(aiosmtpd)
commands=(tcpdump swaks msmtp curl python3)   # tools that must be on PATH afterwards
for option in "$@"; do
  case "$option" in
    --captures) packages+=(postfix openssl) ;;
    --bench) packages+=(tshark postfix time valgrind); commands+=(tshark) ;;
    --corpus) packages+=(tshark); commands+=(tshark) ;;
    *) echo "usage: $0 [--captures] [--bench] [--corpus]" >&2; exit 64 ;;
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
command -v python3 > /dev/null || missing+=(python3 python3-pip)
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
