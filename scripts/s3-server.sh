# shellcheck shell=bash
# A local S3 server (moto) for tidemark's tests. Source this file, then:
#
#   s3_server_start   # installs moto into a venv under the target directory
#                     # (once; reused while the pinned version matches),
#                     # starts it on a free loopback port and exports
#                     # TIDEMARK_S3_ENDPOINT=http://127.0.0.1:PORT
#   s3_server_stop    # stops it (safe to call twice; use it in a trap)
#
# test.sh and scripts/with-s3.sh use it. The server also exits by itself
# when the shell that started it is gone.

# The one place moto's version is pinned.
TIDEMARK_MOTO_VERSION="5.2.5"

_s3_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_s3_target="${CARGO_TARGET_DIR:-$_s3_root/target}"
_s3_venv="$_s3_target/s3-venv"
_s3_pid=""
_s3_log=""
_s3_dir=""

_s3_venv_ready() {
    [[ -x "$_s3_venv/bin/python" ]] &&
        [[ "$(cat "$_s3_venv/.moto-version" 2>/dev/null)" == "$TIDEMARK_MOTO_VERSION" ]]
}

s3_server_install() {
    if _s3_venv_ready; then
        return 0
    fi
    echo "s3-server: installing moto[server]==$TIDEMARK_MOTO_VERSION into $_s3_venv" >&2
    rm -rf "$_s3_venv"
    mkdir -p "$_s3_target"
    python3 -m venv "$_s3_venv" || { echo "s3-server: python3 -m venv failed (needs Python 3 with venv)" >&2; return 1; }
    "$_s3_venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$TIDEMARK_MOTO_VERSION" ||
        { echo "s3-server: pip install moto[server]==$TIDEMARK_MOTO_VERSION failed" >&2; return 1; }
    echo "$TIDEMARK_MOTO_VERSION" >"$_s3_venv/.moto-version"
}

s3_server_start() {
    s3_server_install || return 1
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/tidemark-s3.XXXXXX")"
    _s3_dir="$dir"
    _s3_log="$dir/moto.log"
    "$_s3_venv/bin/python" "$_s3_root/scripts/moto-server.py" "$dir/port" "$$" >"$_s3_log" 2>&1 &
    _s3_pid=$!
    local waited=0
    while [[ ! -s "$dir/port" ]]; do
        if ! kill -0 "$_s3_pid" 2>/dev/null; then
            echo "s3-server: moto exited before it was ready; its log ($_s3_log):" >&2
            cat "$_s3_log" >&2
            _s3_pid=""
            rm -rf "$_s3_dir"
            _s3_dir=""
            return 1
        fi
        if ((waited >= 600)); then
            echo "s3-server: moto did not start within 60 s; its log ($_s3_log):" >&2
            cat "$_s3_log" >&2
            s3_server_stop
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    export TIDEMARK_S3_ENDPOINT="http://127.0.0.1:$(cat "$dir/port")"
    echo "s3-server: moto $TIDEMARK_MOTO_VERSION (pid $_s3_pid) at $TIDEMARK_S3_ENDPOINT, log $_s3_log" >&2
}

s3_server_stop() {
    if [[ -n "$_s3_pid" ]]; then
        kill "$_s3_pid" 2>/dev/null || true
        wait "$_s3_pid" 2>/dev/null || true
        echo "s3-server: stopped moto (pid $_s3_pid)" >&2
        _s3_pid=""
    fi
    if [[ -n "$_s3_dir" ]]; then
        rm -rf "$_s3_dir"
        _s3_dir=""
    fi
    unset TIDEMARK_S3_ENDPOINT
}
