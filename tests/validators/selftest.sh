#!/usr/bin/env bash
# Check the validator wrappers themselves: each must pass its good sample in
# samples/ and reject the matching broken one in samples/broken/.
# Needs the venvs from .ci/setup-validators. Prints "N passed, N failed".
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venvs="${DETC_VENV_DIR:-$root/.venv}"
s="$here/samples"
pass=0 fail=0

check() { # check <expect: ok|fail> <label> <command...>
  local expect="$1" label="$2" out rc=0; shift 2
  out="$("$@" 2>&1)" || rc=$?
  if { [ "$expect" = ok ] && [ $rc -eq 0 ]; } || { [ "$expect" = fail ] && [ $rc -ne 0 ]; }; then
    echo "ok   $label"; pass=$((pass + 1))
  else
    echo "FAIL $label (exit $rc, expected $expect)"; echo "$out" | sed 's/^/    /'; fail=$((fail + 1))
  fi
}

py="$venvs/panther/bin/python"
check ok   "contentctl accepts samples/splunk"          "$here/contentctl.sh" "$s/splunk"
check fail "contentctl rejects broken/splunk"           "$here/contentctl.sh" "$s/broken/splunk"
check ok   "panther accepts samples/panther"            "$here/panther.sh" "$s/panther"
check fail "panther rejects broken/panther"             "$here/panther.sh" "$s/broken/panther"
check ok   "sigma accepts samples/sigma"                "$here/sigma.sh" "$s/sigma"
check fail "sigma rejects broken/sigma (issue)"         "$here/sigma.sh" "$s/broken/sigma"
check fail "sigma rejects broken/sigma_convert"         "$here/sigma.sh" "$s/broken/sigma_convert"
check ok   "eql_parse accepts samples/elastic/*.eql"    "$py" "$here/eql_parse.py" "$s"/elastic/*.eql
check fail "eql_parse rejects broken/eql/*.eql"         "$py" "$here/eql_parse.py" "$s"/broken/eql/*.eql
check ok   "toml_check accepts samples/elastic/*.toml"  "$py" "$here/toml_check.py" "$s"/elastic/*.toml
check fail "toml_check rejects broken/elastic/*.toml"   "$py" "$here/toml_check.py" "$s"/broken/elastic/*.toml
check ok   "eql_eval verdicts on samples/elastic"       bash -c \
  '[ "$("$0" "$1/eql_eval.py" "$2/elastic/kubernetes_cronjob_or_job_created_or_modified.eql" "$2/elastic/events.ndjson" | tr "\n" " ")" = "true true false false " ]' \
  "$py" "$here" "$s"

# --- Sentinel KQL (kql_check.js, kql_eval.py, sentinel_yaml.py)

# --- Elastic ES|QL (esql_parse.py, esql_eval.py)

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
