# Sourced by scripts/demo and scripts/test: makes sure this machine has what Outpost needs.
#   - Python 3.11+ with venv (Debian: python3, python3-venv)
#   - a virtual environment in .venv with the project installed (editable) and its extras
#   - the Debian packages listed in OUTPOST_APT_PACKAGES, when their commands are missing
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
cd "$ROOT"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root to run: $* (install sudo or run as root)"; return 1; fi
}

APT_UPDATED=0
apt_install() {
    # apt_install PACKAGE... : install Debian packages that are not installed yet.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null || { say "missing ${missing[*]} and no apt-get: install them by hand"; return 1; }
    if [ "$APT_UPDATED" -eq 0 ]; then say "apt-get update"; as_root apt-get update -qq; APT_UPDATED=1; fi
    say "installing Debian packages: ${missing[*]}"
    # Services stay stopped: Outpost starts its own servers on free loopback ports.
    as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

have_postgres() {
    # Whether PostgreSQL's server executables (initdb, postgres) are installed: both on PATH, or in
    # Debian's /usr/lib/postgresql/VERSION/bin, which is not on PATH. simulators/infra/postgres.py
    # looks in the same places. Debian's package also makes and starts a system cluster on install;
    # the tests never use it, they run throwaway clusters of their own.
    if command -v initdb >/dev/null && command -v postgres >/dev/null; then return 0; fi
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

find_python() {
    for candidate in "${OUTPOST_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

ensure_venv() {
    local extras="$1" python stamp
    if ! python="$(find_python)"; then
        apt_install python3 python3-venv
        python="$(find_python)" || { say "Python 3.11 or newer is required"; exit 1; }
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        if ! "$python" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$python" -m venv "$VENV"
        fi
    fi
    # Reinstall only when the packaging (pyproject.toml, setup.py) or the requested extras changed.
    stamp="$VENV/.outpost-installed"
    local want
    want="$extras $(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing Outpost and its Python dependencies into .venv ($extras)"
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
        echo "$want" > "$stamp"
    fi
}

ensure_firmware_tools() {
    # The MicroPython interpreter the firmware is tested under (the official WebAssembly port, run
    # by Node.js) and the MicroPython stubs it is type-checked against; both under .cache/.
    command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
    local wasm="$ROOT/.cache/micropython-wasm" stubs="$ROOT/.cache/micropython-stubs"
    if [ ! -f "$wasm/node_modules/@micropython/micropython-webassembly-pyscript/micropython.wasm" ]; then
        say "installing MicroPython (WebAssembly port) into $wasm"
        npm install --silent --no-audit --no-fund --prefix "$wasm" "@micropython/micropython-webassembly-pyscript@1.27.0" >/dev/null
    fi
    if [ ! -d "$stubs/micropython_esp32_stubs-1.27.0.post1.dist-info" ]; then
        say "installing MicroPython stubs into $stubs"
        rm -rf "$stubs"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --target "$stubs" \
            "micropython-esp32-stubs==1.27.0.post1" "micropython-stdlib-stubs==1.27.0.post2"
    fi
}

ensure_camera_test_tools() {
    # A real RTSP server for the camera tests and benchmarks (simulators/infra/rtsp.py): GStreamer's gst-rtsp-server, run
    # under Debian's python3 with its GObject bindings (the venv cannot import them), and the H.264
    # encoder (x264enc, through gst-launch-1.0) that writes the tests' clips (tests/video_clips.py).
    # h264parse is in plugins-bad, x264enc in plugins-ugly; nothing is decoded or re-encoded on serving.
    apt_install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
        gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-tools
    # Installed, so the camera tests must run: they fail instead of skipping if the server cannot start.
    export OUTPOST_REQUIRE_RTSP_SERVER=1
}
