#!/usr/bin/env bash
# Wrapper: run kql_check.js with node (NODE env overrides). Same arguments,
# output and exit codes as kql_check.js; exits 2 when node is missing.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node="${NODE:-node}"
command -v "$node" >/dev/null || { echo "FAIL: node not found (set NODE)" >&2; exit 2; }
exec "$node" "$here/kql_check.js" "$@"
