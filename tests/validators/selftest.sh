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
kpy="$venvs/kql/bin/python"
ss="$s/sentinel"
check ok   "kql_check accepts samples/sentinel/*.kql"   node "$here/kql_check.js" "$ss"/*.kql
for f in "$s"/broken/sentinel/*.kql; do
  check fail "kql_check rejects broken/sentinel/$(basename "$f")" node "$here/kql_check.js" "$f"
done
check ok   "sentinel_yaml accepts samples/sentinel/*.yaml" "$kpy" "$here/sentinel_yaml.py" "$ss"/*.yaml
check fail "sentinel_yaml rejects broken/sentinel/*.yaml"  "$kpy" "$here/sentinel_yaml.py" "$s"/broken/sentinel/*.yaml
kqleval() { # kqleval <expected verdicts> <query> <records> <table>
  check ok "kql_eval $(basename "$2") on $(basename "$3") ($4)" bash -c \
    '[ "$("$0" "$1/kql_eval.py" "$2" "$3" --table "$4" | tr "\n" " ")" = "$5" ]' "$kpy" "$here" "$2" "$3" "$4" "$1"
}
kqleval "true true false false false false " "$ss/aksaudit_cronjob_job_write.kql" "$ss/aks_records.ndjson" AKSAudit
kqleval "true true false false false true "  "$ss/azurediagnostics_cronjob_job_write.kql" "$ss/aks_records.ndjson" AzureDiagnostics
kqleval "true true false false "             "$ss/azureactivity_cronjob_job_write.kql" "$ss/activity_records.ndjson" AzureActivity
kqleval "true false true false "             "$ss/gcpauditlogs_cronjob_job_write.kql" "$ss/gcp_records.ndjson" GCPAuditLogs
check fail "kql_eval rejects broken/sentinel/misspelt_column.kql" \
  "$kpy" "$here/kql_eval.py" "$s/broken/sentinel/misspelt_column.kql" "$ss/aks_records.ndjson" --table AKSAudit

# --- Elastic ES|QL (esql_parse.py, esql_eval.py)
epy="$venvs/esql/bin/python"
es="$s/esql"
check ok   "esql_parse accepts samples/esql/*.esql"     "$epy" "$here/esql_parse.py" "$es"/*.esql
for f in "$s"/broken/esql/*.esql; do
  check fail "esql_parse rejects broken/esql/$(basename "$f")" "$epy" "$here/esql_parse.py" "$f"
done
check ok   "toml_check accepts samples/esql/*.toml (esql)" "$py" "$here/toml_check.py" "$es"/*.toml
for f in "$s"/broken/esql/*.toml; do
  check fail "toml_check rejects broken/esql/$(basename "$f")" "$py" "$here/toml_check.py" "$f"
done
check ok   "esql_eval verdicts on samples/esql"         bash -c \
  '[ "$("$0" "$1/esql_eval.py" --types "$2/types.json" "$2/kubernetes_cronjob_or_job_created_or_modified.esql" "$2/docs.ndjson" | tr "\n" " ")" = "true true false false false false false false " ]' \
  "$epy" "$here" "$es"
check ok   "esql_eval --selftest (null, multivalue, case, LIKE/RLIKE, CIDR)" "$epy" "$here/esql_eval.py" --selftest

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
