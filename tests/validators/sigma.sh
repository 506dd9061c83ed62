#!/usr/bin/env bash
# Validate generated Sigma rules with sigma-cli 3.1.0 (pySigma 1.5.1), offline.
#
# usage: tests/validators/sigma.sh <dist_sigma_dir>
#   <dir>/**/*.yml  one Sigma rule per file
#
# 1. sigma check -i -x attacktag -x d3_fendtag <dir>: fails on parse errors,
#    condition errors AND validation issues; the two excluded validators are
#    the ones that download ATT&CK/D3FEND data.
# 2. sigma convert -t splunk --without-pipeline and -t eql --without-pipeline:
#    every rule file must convert to a non-empty query.
# 3. The EQL output is parsed with eql 1.0.1; a failure there is reported as a
#    warning only (pySigma's EQL backend has its own bugs).
# 4. Each pySigma pipeline detc ships in <dir>/pipelines/*.yaml (not read as
#    rules: sigma's file pattern is *.yml) converts every rule with
#    `-p <file>` for each backend its `allowed_backends` line names.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${DETC_VENV_DIR:-$root/.venv}/sigma"
die() { echo "sigma.sh: FAIL: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 <dist_sigma_dir>"
[ -d "$1" ] || die "no such directory: $1"
[ -x "$venv/bin/sigma" ] || die "$venv/bin/sigma missing: run .ci/setup-validators"
mapfile -t rules < <(find "$1" -name '*.yml' | sort)
[ ${#rules[@]} -gt 0 ] || die "no *.yml rules under $1"

work="$(mktemp -d "${TMPDIR:-/tmp}/detc-sigma.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if ! "$venv/bin/sigma" check -i -x attacktag -x d3_fendtag "$1" >"$work/check.log" 2>&1; then
  cat "$work/check.log" >&2
  die "sigma check found errors or issues in $1"
fi
grep -q '^Found 0 errors, 0 condition errors and 0 issues\.$' "$work/check.log" || {
  cat "$work/check.log" >&2; die "sigma check did not report a clean summary for $1"; }
echo "sigma check: OK (${#rules[@]} rules, 0 errors, 0 issues)"

for target in splunk eql; do
  if ! "$venv/bin/sigma" convert -t "$target" --without-pipeline --fail-unsupported \
       -od "$work/$target" "$1" >"$work/$target.log" 2>&1; then
    cat "$work/$target.log" >&2
    die "sigma convert -t $target failed for $1"
  fi
  for r in "${rules[@]}"; do
    out="$work/$target/$(basename "${r%.*}").txt"
    [ -s "$out" ] || die "sigma convert -t $target produced no query for $r"
    echo "  $target: $(basename "$r"): $(head -c 160 "$out")"
  done
done
echo "sigma convert: OK (splunk, eql)"

# With --output-dir the EQL backend writes the condition without "any where".
for f in "$work"/eql/*.txt; do
  q="$(cat "$f")"; case "$q" in *" where "*) ;; *) q="any where $q" ;; esac
  printf '%s\n' "$q" > "$f.eql"
done
"$venv/bin/python" "$here/eql_parse.py" "$work"/eql/*.eql >"$work/eql_parse.log" 2>&1 \
  || { echo "sigma.sh: WARNING: pySigma's EQL output does not parse with eql 1.0.1:" >&2
       cat "$work/eql_parse.log" >&2; }
shopt -s nullglob
for p in "$1"/pipelines/*.yaml; do
  backends="$(sed -n 's/^allowed_backends: \[\(.*\)\]$/\1/p' "$p" | tr -d ' ' | tr ',' ' ')"
  [ -n "$backends" ] || die "$p: no allowed_backends line"
  for b in $backends; do
    if ! "$venv/bin/sigma" convert -t "$b" -p "$p" --fail-unsupported "$1" >"$work/pipeline.log" 2>&1; then
      cat "$work/pipeline.log" >&2
      die "sigma convert -t $b -p $p failed"
    fi
  done
  echo "sigma convert -p pipelines/$(basename "$p"): OK ($backends)"
done
echo "sigma: OK: $1"
