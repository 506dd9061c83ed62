#!/usr/bin/env bash
# Validate a generated Splunk content folder with Splunk's contentctl 5.6.2.
#
# usage: tests/validators/contentctl.sh <dist_splunk_dir>
#   <dir>/detections/*.yml  contentctl detection YAML
#   <dir>/macros/*.yml      macros the searches use (filter macros optional)
#   <dir>/data_sources/*.yml, <dir>/stories/*.yml  the data sources and stories
#                           the detections reference
#
# Builds a throwaway contentctl app (init --bare, app label "DETC"), adds the
# content tree's own stories and data sources (nothing else: a tree that
# references content it does not carry fails, as it would for a user), runs
# `contentctl validate` and `contentctl build`, then checks that every
# detection's stanza in the built savedsearches.conf carries the expected
# cron_schedule / dispatch.earliest_time / dispatch.latest_time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${DETC_VENV_DIR:-$root/.venv}/splunk"
die() { echo "contentctl.sh: FAIL: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 <dist_splunk_dir>"
src="$(cd "$1" 2>/dev/null && pwd)" || die "no such directory: $1"
[ -x "$venv/bin/contentctl" ] || die "$venv/bin/contentctl missing: run .ci/setup-validators"
shopt -s nullglob
dets=("$src"/detections/*.yml)
macros=("$src"/macros/*.yml)
sources=("$src"/data_sources/*.yml)
stories=("$src"/stories/*.yml)
[ ${#dets[@]} -gt 0 ] || die "no detections/*.yml in $src"
[ ${#sources[@]} -gt 0 ] || die "no data_sources/*.yml in $src"
[ ${#stories[@]} -gt 0 ] || die "no stories/*.yml in $src"

work="$(mktemp -d "${TMPDIR:-/tmp}/detc-contentctl.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"

# contentctl prints ANSI colours and progress bars even when not on a tty.
run() { # run <log> <args...>: quiet on success, cleaned-up log on failure
  local log="$1"; shift
  if ! "$venv/bin/contentctl" "$@" >"$log" 2>&1; then
    sed -e 's/\x1b\[[0-9;]*m//g' "$log" | grep -v 'Progress: \[' | grep -v '^[[:space:]]*$' >&2
    return 1
  fi
}

run init.log init --bare || die "contentctl init --bare failed"
# Stanza names are "<app label> - <name> - Rule" and may be at most 81
# characters, so a 4-character label allows the full 67-character name.
sed -i 's/^  label: .*/  label: DETC/' contentctl.yml
cp "${stories[@]}" stories/
cp "${sources[@]}" data_sources/
cp "${dets[@]}" detections/cloud/
[ ${#macros[@]} -eq 0 ] || cp "${macros[@]}" macros/

run validate.log validate || die "contentctl validate rejected $src (see above)"
echo "contentctl validate: OK (${#dets[@]} detections, ${#macros[@]} macros)"
run build.log build || die "contentctl build failed for $src (see above)"
echo "contentctl build: OK"

conf="dist/ContentPack/default/savedsearches.conf"
[ -f "$conf" ] || die "build produced no $conf"
"$venv/bin/python" - "$conf" deployments "${dets[@]}" <<'PY' || die "savedsearches.conf check failed"
import pathlib, re, sys
import yaml

conf, deployments, dets = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
stanzas, cur = {}, None
for line in open(conf, encoding="utf-8"):
    m = re.match(r"^\[(.*)\]\s*$", line)
    if m:
        cur = stanzas.setdefault(m.group(1), {})
    elif cur is not None and " = " in line:
        k, v = line.rstrip("\n").split(" = ", 1)
        cur[k.strip()] = v
defaults = {}
for f in deployments.glob("*.yml"):
    d = yaml.safe_load(f.read_text())
    defaults[d["type"]] = d["scheduling"]
bad = 0
for path in dets:
    det = yaml.safe_load(open(path, encoding="utf-8"))
    sched = (det.get("deployment") or {}).get("scheduling") or defaults[det["type"]]
    name = f"DETC - {det['name']} - Rule"
    got = stanzas.get(name)
    if got is None:
        print(f"  missing stanza [{name}]", file=sys.stderr); bad += 1; continue
    errs = 0
    for key, conf_key in (("cron_schedule", "cron_schedule"),
                          ("earliest_time", "dispatch.earliest_time"),
                          ("latest_time", "dispatch.latest_time")):
        if got.get(conf_key) != str(sched[key]):
            print(f"  [{name}] {conf_key} = {got.get(conf_key)!r}, expected {sched[key]!r}",
                  file=sys.stderr); errs += 1
    bad += errs
    if not errs:
        print(f"  [{name}] cron_schedule = {got['cron_schedule']}, "
              f"earliest {got['dispatch.earliest_time']}, latest {got['dispatch.latest_time']}")
sys.exit(1 if bad else 0)
PY
echo "contentctl: OK: $src"
