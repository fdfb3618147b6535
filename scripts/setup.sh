#!/usr/bin/env bash
# Installs what the time bank needs on a Debian 12 machine, from the package registries only.
# Run as root (or as a user with sudo). Idempotent: when everything is there it installs
# nothing, does not even run `apt-get update`, and takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }
die() {
  echo "setup: $*" >&2
  exit 1
}

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
else
  SUDO=(sudo)
fi

# --- System packages ------------------------------------------------------------------------
# A C toolchain and OpenSSL headers for the crates that build C code (SQLite is bundled),
# ca-certificates so that cargo can reach crates.io, python3 for the scripts' JSON parsing
# and the CLI story, PostgreSQL for the store tests and the production city server.
PACKAGES=(build-essential pkg-config libssl-dev ca-certificates curl)

# --- Desktop app ------------------------------------------------------------------------------
# From ../shared/recipes/linux-desktop-build-and-test.md (libappindicator3-dev has no
# candidate on bookworm; the ayatana package replaces it; fonts-noto-cjk renders Chinese;
# webkit2gtk-driver is WebKitWebDriver for the end-to-end tests; dunst prints notifications;
# chromium runs the UI's browser tests; nodejs/npm build the web-view).
PACKAGES+=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev
  libsoup-3.0-dev libjavascriptcoregtk-4.1-dev xvfb xauth webkit2gtk-driver dbus-x11
  at-spi2-core fonts-noto-cjk libnotify-bin imagemagick x11-utils xdotool chromium dunst)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ! command -v psql >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
  missing+=(postgresql)
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ ${#SUDO[@]} -gt 0 ]] && ! command -v sudo >/dev/null 2>&1; then
    die "missing Debian packages (${missing[*]}); run this script as root"
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  APT=(apt-get -qq -o DPkg::Lock::Timeout=300)
  # An install cut short (a power cut, a killed run) leaves dpkg "interrupted", and apt then
  # refuses every install until it is finished; finishing it is a no-op otherwise.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive dpkg --configure -a
  "${SUDO[@]}" "${APT[@]}" update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends \
    "${missing[@]}" >/dev/null
  say "installed ${missing[*]}"
fi

# --- Rust --------------------------------------------------------------------------------------
# These machines come with rustup and the toolchain named in rust-toolchain.toml. Nothing can
# be downloaded from rustup's servers here, so a missing toolchain is reported, not fetched.
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  die "cargo (Rust) is not installed or not on PATH. Install Rust 1.95 with rustup (with the
       rustfmt and clippy components), then run this again. If Rust is installed for another
       user, keep their PATH: sudo env \"PATH=\$PATH\" bash scripts/run.sh"
fi
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if command -v rustup >/dev/null 2>&1 && [[ -n "$channel" ]]; then
  if ! rustup toolchain list | grep -q "^$channel"; then
    die "the Rust toolchain $channel named in rust-toolchain.toml is not installed
       (rustup toolchain list), and rustup cannot download it from this machine.
       Install it where rustup's servers are reachable: rustup toolchain install $channel -c rustfmt -c clippy"
  fi
  for component in rustfmt clippy; do
    if ! rustup component list --installed --toolchain "$channel" | grep -q "^$component"; then
      die "the $component component of Rust $channel is missing: rustup component add $component --toolchain $channel"
    fi
  done
fi
rustc_version=$(rustc --version | awk '{print $2}')
if [[ "$(printf '%s\n' 1.94.0 "$rustc_version" | sort -V | head -n 1)" != 1.94.0 ]]; then
  die "rustc $rustc_version is too old: the workspace needs Rust 1.94 or newer (SeaORM 2.0)"
fi

# --- Node.js and the web-view's packages -------------------------------------------------------
# These machines come with Node 20 and npm 11; on a plain Debian machine Debian's nodejs/npm
# are installed instead (Vite 8 needs Node 20.19+ and npm 10+; Debian 12 ships Node 18, so the
# machine's own Node is preferred when present).
if ! command -v npm >/dev/null 2>&1; then
  say "installing nodejs npm"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 install -y --no-install-recommends nodejs npm >/dev/null
fi
if [[ ! -d ui/node_modules ]] || [[ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]]; then
  say "installing the UI's npm packages"
  # `npm install`, not `npm ci`: Vite names a Windows-only optional package that this
  # registry does not have, which `npm ci` refuses while `npm install` skips it. The lock file
  # still fixes every version.
  (cd ui && npm install --no-audit --no-fund --loglevel=error)
fi

# --- tauri-driver (WebDriver for the desktop app's end-to-end tests) ---------------------------
if ! command -v tauri-driver >/dev/null 2>&1; then
  say "installing tauri-driver (about 40 s)"
  cargo install tauri-driver --version '^2' --locked --quiet
fi
