#!/usr/bin/env bash
# Run the unit tests of generated Panther rules with panther-analysis-tool 1.11.1.
#
# usage: tests/validators/panther.sh <dist_panther_dir>
#   <dir>/**/<stem>.yml + <stem>.py, and the global helpers they import
#   (<dir>/global_helpers/*.yml + .py, `AnalysisType: global`)
#
# Runs `pat --skip-version-check test --path <dir> --minimum-tests 2`
# (schema check of every YAML, then every test; each rule needs >= 2 tests,
# at least one expected true and one expected false) and fails unless pat
# exits 0 and reports Failed: 0, Invalid: 0 and one passed rule per rule YAML
# file (global helper specs are not rules).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${DETC_VENV_DIR:-$root/.venv}/panther"
die() { echo "panther.sh: FAIL: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 <dist_panther_dir>"
[ -d "$1" ] || die "no such directory: $1"
[ -x "$venv/bin/pat" ] || die "$venv/bin/pat missing: run .ci/setup-validators"
# (grep -L exits 1 when every file is listed, that is when there is no global helper)
n_yml="$(find "$1" \( -name '*.yml' -o -name '*.yaml' \) -exec grep -L '^AnalysisType: global' {} + | wc -l || true)"
[ "$n_yml" -gt 0 ] || die "no rule YAML files under $1"

log="$(mktemp "${TMPDIR:-/tmp}/detc-pat.XXXXXX")"
trap 'rm -f "$log"' EXIT
rc=0
"$venv/bin/pat" --skip-version-check test --path "$1" --minimum-tests 2 >"$log" 2>&1 || rc=$?
# pat colours its output even when not on a tty
sed -i -e 's/\x1b\[[0-9;]*m//g' "$log"
count() { sed -n "s/^[[:space:]]*$1: \([0-9]*\)$/\1/p" "$log" | tail -n 1; }
passed="$(count Passed)"; failed="$(count Failed)"; invalid="$(count Invalid)"

if [ "$rc" -ne 0 ] || [ "${failed:-x}" != 0 ] || [ "${invalid:-x}" != 0 ] \
   || [ "${passed:-0}" -ne "$n_yml" ]; then
  cat "$log" >&2
  die "pat test: exit $rc, passed=${passed:-?} failed=${failed:-?} invalid=${invalid:-?}, rule files=$n_yml ($1)"
fi
grep -E '^[^[:space:]].*' "$log" | grep -v -E '^(INFO|-+|Test Summary)' | sed 's/^/  rule /' || true
echo "panther: OK: $passed rules passed all tests (pat test --minimum-tests 2) in $1"
