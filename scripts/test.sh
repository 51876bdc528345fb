#!/usr/bin/env bash
# From a fresh clone: installs the prerequisites, builds everything (the tests run the smtptape
# executable too) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-prerequisites.sh --clients
swift build --build-tests
swift test --skip-build
