#!/usr/bin/env bash
# Whole-process speed and memory of `detc build`, beside pySigma.
#
# usage: benches/process.sh [N ...]        (default: 300 3000 30000)
#   RUNS=5            timed runs per size (min, median and max are printed)
#   SIGMA_MAX=3000    largest corpus pySigma converts (it is ~100x slower)
#   DETC_VENV_DIR     where the project's venvs are (default: .venv)
#
# For each N it writes N generated rules (examples/gen_corpus, see
# benches/corpus/mod.rs), then times with /usr/bin/time, as whole processes:
#   - `detc build` of the N rules to every default target, into a fresh
#     output directory (removed before each run, outside the timing);
#   - pySigma (`sigma convert -t splunk --without-pipeline`, sigma-cli from
#     the project's sigma venv) over the Sigma files that build wrote: the
#     same rules, one target, in the same run, interleaved with detc's runs;
# and `detc build` of one rule (the flagship, rules/k8s_cronjob_job_write.rule).
# It prints wall time (min / median / max), the median CPU time (user + sys:
# steady where wall time suffers from other load or a hypervisor's steal),
# peak resident memory and the ratio of the wall-time medians. It installs nothing: pySigma comes from the venv that
# .ci/setup-validators creates; without it the pySigma column is skipped.
# Not part of .ci/run (it takes minutes); `cargo bench` has the per-stage figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(300 3000 30000)
runs="${RUNS:-5}"
sigma_max="${SIGMA_MAX:-3000}"
sigma="${DETC_VENV_DIR:-$root/.venv}/sigma/bin/sigma"
[ -x /usr/bin/time ] || { echo "process.sh: /usr/bin/time is missing (GNU time)" >&2; exit 2; }

CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo build --quiet --release --bin detc --example gen_corpus
detc="$root/target/release/detc"
gen="$root/target/release/examples/gen_corpus"
work="$(mktemp -d "${TMPDIR:-/tmp}/detc-process.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# time_cmd LOG CMD...: run CMD, append "wall_seconds peak_kb cpu_seconds" to LOG; fail if CMD fails.
time_cmd() {
  local log="$1"; shift
  /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >"$work/out" 2>&1 || {
    cat "$work/out" >&2; echo "process.sh: failed: $*" >&2; exit 1; }
  awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$work/time" >>"$log"
}
# stats LOG: "min median max peakMB cpu" of the runs in LOG (peak: the
# largest; cpu: the median CPU seconds).
stats() {
  local cpu
  cpu="$(sort -n -k3 "$1" | awk '{ c[NR] = $3 } END { printf "%.2f", c[int((NR + 1) / 2)] }')"
  sort -n -k1 "$1" | awk -v cpu="$cpu" '{ w[NR] = $1; if ($2 > m) m = $2 }
    END { printf "%.2f %.2f %.2f %.0f %s\n", w[1], w[int((NR + 1) / 2)], w[NR], m / 1024, cpu }'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# The CPU time the hypervisor gave to other guests (steal), as a share of all.
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t }' /proc/stat; }
read -r steal0 total0 < <(cpu_ticks)
echo "detc $("$detc" --version | cut -d' ' -f2), targets: all defaults; $runs runs per size"
if [ -x "$sigma" ]; then
  echo "pySigma: $("$(dirname "$sigma")/python" -c 'import importlib.metadata as m; print("sigma-cli", m.version("sigma-cli"), "pySigma", m.version("pySigma"))') (sigma convert -t splunk --without-pipeline)"
else
  echo "pySigma: $sigma not found (run .ci/setup-validators): skipped"
fi
echo
printf '| %-7s | %-24s | %-8s | %-9s | %-24s | %-8s | %-9s | %-8s |\n' rules "detc build s (min/med/max)" "detc CPU" "detc MB" "pySigma s (min/med/max)" "pySigma CPU" "pySigma MB" "ratio"
printf '|---|---|---|---|---|---|---|---|\n'

one() { # the flagship alone
  : >"$work/one.log"
  for _ in $(seq "$runs"); do
    rm -rf "$work/one"
    time_cmd "$work/one.log" "$detc" build "$root/rules/k8s_cronjob_job_write.rule" --out "$work/one" --lock "$work/no.lock"
  done
  read -r a b c m u < <(stats "$work/one.log")
  printf '| %-7s | %-24s | %-8s | %-9s | %-24s | %-8s | %-9s | %-8s |\n' "1" "$a / $b / $c" "$u" "$m" "-" "-" "-" "-"
}
one

for n in "${sizes[@]}"; do
  rm -rf "$work/corpus"
  "$gen" "$n" "$work/corpus" >/dev/null
  : >"$work/detc.log"; : >"$work/sigma.log"
  compare=0
  [ -x "$sigma" ] && [ "$n" -le "$sigma_max" ] && compare=1
  for _ in $(seq "$runs"); do
    rm -rf "$work/dist"
    time_cmd "$work/detc.log" "$detc" build "$work/corpus/rules" --out "$work/dist" --lock "$work/no.lock"
    if [ "$compare" = 1 ]; then
      time_cmd "$work/sigma.log" "$sigma" convert -t splunk --without-pipeline "$work/dist/sigma"
    fi
  done
  read -r a b c m u < <(stats "$work/detc.log")
  if [ "$compare" = 1 ]; then
    read -r sa sb sc sm su < <(stats "$work/sigma.log")
    ratio="$(awk -v s="$sb" -v d="$b" 'BEGIN { printf "%.1fx", s / d }')"
    printf '| %-7s | %-24s | %-8s | %-9s | %-24s | %-8s | %-9s | %-8s |\n' "$n" "$a / $b / $c" "$u" "$m" "$sa / $sb / $sc" "$su" "$sm" "$ratio"
  else
    printf '| %-7s | %-24s | %-8s | %-9s | %-24s | %-8s | %-9s | %-8s |\n' "$n" "$a / $b / $c" "$u" "$m" "-" "-" "-" "-"
  fi
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r steal1 total1 < <(cpu_ticks)
echo "steal during the runs: $(awk -v s=$((steal1 - steal0)) -v t=$((total1 - total0)) 'BEGIN { printf "%.0f%%", t ? 100 * s / t : 0 }') of the machine's CPU time"
