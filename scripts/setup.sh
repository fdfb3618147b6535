#!/usr/bin/env bash
# Installs what the time bank needs on a Debian 12 machine, as root, from the package
# registries only. Idempotent: a second run installs nothing and takes a second.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

# System packages: a C toolchain for the crates that build C (SQLite), Python for the test
# scripts, PostgreSQL for the store tests and the production city server.
PACKAGES=(build-essential pkg-config libssl-dev ca-certificates python3 postgresql postgresql-client sqlite3)
# The desktop app (a later issue) adds: libwebkit2gtk-4.1-dev libgtk-3-dev
# libayatana-appindicator3-dev librsvg2-dev xvfb xauth webkit2gtk-driver dbus-x11 fonts-noto-cjk ...

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: these machines come with rustup and the toolchain named in rust-toolchain.toml;
# nothing can be downloaded from rustup's servers here, so say so plainly if it is missing.
if ! command -v cargo >/dev/null 2>&1; then
  if [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo (Rust) is not installed. Install Rust 1.95 with rustup or Debian's packages, then run this again." >&2
  exit 1
fi
