#!/usr/bin/env bash
# Runs a command with a local S3 server (moto) up and TIDEMARK_S3_ENDPOINT
# set, and stops the server afterwards, also when the command fails:
#
#   scripts/with-s3.sh cargo test -p tidemark --features aws --test s3
#   scripts/with-s3.sh cargo test -p tidemark-cli --test cli_s3
#   scripts/with-s3.sh cargo run --release -p tidemark-crash --features s3 --bin crash-check -- --s3 --seeds 50
set -euo pipefail
if [[ $# -eq 0 ]]; then
    echo "usage: scripts/with-s3.sh COMMAND [ARGS...]" >&2
    exit 2
fi
# shellcheck source=scripts/s3-server.sh
source "$(dirname "$0")/s3-server.sh"
trap s3_server_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
s3_server_start
"$@"
