#!/usr/bin/env bash
# Runs the workloads of BENCHMARKS.md for Spool and Lua 5.4 side by side and
# prints a table of median wall seconds, median peak RSS and the ratio
# Spool / Lua.
#
# The two programs of a workload run alternately (one warm-up, then RUNS timed
# runs each), so drift on a shared machine hits both alike. Every run's output
# is checked against the expected result.
#
# Usage: examples/bench/run.sh [WORKLOAD...]     e.g. run.sh w1_fib w5_nbody
# Environment: RUNS (default 5), CARGO_TARGET_DIR (where the release build goes).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs="${RUNS:-5}"

# Workload name and the one line it must print.
declare -A expected=(
  [w1_fib]=2178309
  [w2_loop]=990548
  [w3_strings]=2288889
  [w4_map]=999999000000
  [w5_nbody]=-0.169083713
  [w6_coroutine]=499999500000
  [w7_closures]=749998500000
)
all_workloads=(w1_fib w2_loop w3_strings w4_map w5_nbody w6_coroutine w7_closures)
if [[ $# -gt 0 ]]; then workloads=("$@"); else workloads=("${all_workloads[@]}"); fi

echo "building spool (release)..." >&2
(cd "$root" && cargo build --release -p spool-cli --bin spool >&2)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
spool="$target_dir/release/spool"
[[ -x "$spool" ]] || { echo "no spool binary at $spool" >&2; exit 1; }

lua=""
if command -v lua5.4 >/dev/null 2>&1; then
  lua="$(command -v lua5.4)"
else
  echo "lua5.4 not found: install it with 'apt-get install lua5.4' to compare; measuring Spool alone." >&2
fi

gnu_time=""
if [[ -x /usr/bin/time ]]; then
  gnu_time=/usr/bin/time
else
  echo "/usr/bin/time not found: peak memory is not measured." >&2
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# run_once CMD... : runs the command, prints "SECONDS KIB OUTPUT" (KIB is "-"
# without GNU time; SECONDS is "fail" when the command fails).
run_once() {
  local start end kib output
  start=$(date +%s%N)
  if [[ -n "$gnu_time" ]]; then
    if ! "$gnu_time" -f %M -o "$scratch/rss" "$@" >"$scratch/out" 2>"$scratch/err"; then
      echo "fail - -"
      return
    fi
    kib=$(tail -n 1 "$scratch/rss")
  else
    if ! "$@" >"$scratch/out" 2>"$scratch/err"; then
      echo "fail - -"
      return
    fi
    kib="-"
  fi
  end=$(date +%s%N)
  output=$(head -n 1 "$scratch/out")
  echo "$(awk -v ns=$((end - start)) 'BEGIN { printf "%.4f", ns / 1e9 }') $kib $output"
}

# median VALUES... : the median of numbers ("-" when there are none).
median() {
  if [[ $# -eq 0 ]]; then
    echo "-"
    return
  fi
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# record NAME WORKLOAD CMD... : runs CMD once and appends its figures to the arrays of NAME.
# Sets the global "failed" when the output is wrong.
record() {
  local name="$1" workload="$2"
  shift 2
  local result seconds kib output
  result=$(run_once "$@")
  read -r seconds kib output <<<"$result"
  if [[ "$seconds" == fail ]]; then
    echo "  $name $workload failed: $(head -c 300 "$scratch/err")" >&2
    failed=1
    return
  fi
  if [[ "$output" != "${expected[$workload]}" ]]; then
    echo "  $name $workload printed '$output', expected '${expected[$workload]}'" >&2
    failed=1
  fi
  eval "${name}_times+=(\"$seconds\")"
  if [[ "$kib" != "-" ]]; then
    eval "${name}_kib+=(\"$kib\")"
  fi
}

to_mib() {
  if [[ "$1" == "-" ]]; then echo "-"; else awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; fi
}

ratio() {
  if [[ "$1" == "-" || "$2" == "-" ]]; then echo "-"; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; fi
}

printf '%-14s %10s %10s %8s %11s %11s\n' workload "spool s" "lua s" ratio "spool MiB" "lua MiB"
for workload in "${workloads[@]}"; do
  script="$here/$workload.spl"
  lua_script="$here/lua/$workload.lua"
  [[ -f "$script" ]] || { echo "unknown workload $workload" >&2; continue; }
  spool_times=() spool_kib=() lua_times=() lua_kib=() failed=0
  for run in $(seq 0 "$runs"); do
    echo "  $workload run $run/$runs" >&2
    record spool "$workload" "$spool" run --max-instructions unlimited "$script"
    if [[ -n "$lua" ]]; then
      record lua "$workload" "$lua" "$lua_script"
    fi
    if [[ "$run" -eq 0 ]]; then
      # The first round is the warm-up: forget it.
      spool_times=() spool_kib=() lua_times=() lua_kib=()
    fi
  done
  spool_s=$(median "${spool_times[@]}")
  lua_s=$(median "${lua_times[@]}")
  spool_mib=$(to_mib "$(median "${spool_kib[@]}")")
  lua_mib=$(to_mib "$(median "${lua_kib[@]}")")
  note=""
  if [[ "$failed" -eq 1 ]]; then note="  (some runs failed or printed a wrong result)"; fi
  printf '%-14s %10s %10s %8s %11s %11s%s\n' "$workload" "$spool_s" "$lua_s" \
    "$(ratio "$spool_s" "$lua_s")" "$spool_mib" "$lua_mib" "$note"
done
