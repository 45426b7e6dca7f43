#!/usr/bin/env bash
# Installs the Debian 12 packages multinode needs, only those that are missing.
# Usage: scripts/bootstrap.sh [build|test|bench]   (default: test)
set -euo pipefail
what="${1:-test}"

build_packages=(cmake ninja-build g++ libboost1.81-dev libboost-json1.81-dev pkgconf libhiredis-dev libcli11-dev zlib1g-dev)
test_packages=(googletest libgtest-dev libgmock-dev curl clang clang-format libclang-rt-14-dev node-llhttp nodejs npm
  python3 python3-websockets python3-prometheus-client chromium iproute2 redis-server)
bench_packages=(wrk nginx-light h2o nodejs procps python3 liburing-dev)

case "$what" in
  build) wanted=("${build_packages[@]}") ;;
  test) wanted=("${build_packages[@]}" "${test_packages[@]}") ;;
  bench) wanted=("${build_packages[@]}" "${test_packages[@]}" "${bench_packages[@]}") ;;
  *) echo "bootstrap.sh: unknown set '$what' (use build, test or bench)" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
  # nodejs may come from another Debian-compatible source; a working `node` is enough.
  if [ "$package" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
  if [ "$package" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  case "$status" in *"ok installed"*) ;; *) missing+=("$package") ;; esac
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap.sh: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Node.js packages of the tests and benchmarks (Node's ws, playwright-core), from
# the committed lockfile, when node_modules is missing or older than the lockfile.
if [ "$what" != build ]; then
  cd "$(dirname "$0")/.."
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "bootstrap.sh: npm ci (package-lock.json)" >&2
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
fi
