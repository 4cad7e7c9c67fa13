#!/usr/bin/env bash
# Runs the workloads of BENCHMARKS.md for Spool, Lua 5.4 and the LuaJIT
# interpreter (`luajit -joff`) side by side, then the Spool-only figures
# (io_bench, snapshot_bench), and prints one report: median wall time and
# median peak memory of each program, the ratios Spool / Lua 5.4 and
# Spool / LuaJIT -joff, and the Spool-only figures next to their targets.
#
# For each workload the three programs run alternately within a round (spool,
# lua5.4, luajit), one warm-up round and then RUNS timed rounds, so drift on a
# shared machine hits all of them alike. Every run's output is checked against
# the workload's expected line; a mismatch or a failed run is flagged in the
# table and makes the script exit 1 at the end.
#
# W0 (an empty script) measures start-up: each sample is W0_BATCH runs back to
# back, timed together and divided, over W0_RUNS rounds (a round takes a
# tenth of a second, and the median of a few samples of a millisecond-long
# start moves by a tenth from one pass to the next); its row is in
# milliseconds.
#
# Usage: examples/bench/run.sh [NAME...]
#   NAME: a workload (w1_fib, or its id w1), io_bench or snapshot_bench;
#   none: every workload and both Spool-only benchmarks.
# Environment: RUNS (timed rounds, default 5), W0_BATCH (default 20),
#   W0_RUNS (W0's timed rounds, default 15),
#   CARGO_TARGET_DIR (where the release build goes), SKIP_BUILD=1 (use the
#   binaries already built), LUA54 and LUAJIT (the peers' paths; empty
#   leaves a peer out).
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs="${RUNS:-5}"
w0_batch="${W0_BATCH:-20}"
w0_runs="${W0_RUNS:-15}"

# Workload name and the one line it must print ("" for no output at all).
declare -A expected=(
  [w0_empty]=""
  [w1_fib]=2178309
  [w2_loop]=990548
  [w3_strings]=2288889
  [w4_map]=999999000000
  [w5_nbody]=-0.169083713
  [w6_coroutine]=499999500000
  [w7_closures]=749998500000
  [w8_sieve]=148933
  [w9_records]=1499998500000
  [w10_channel]=124999750000
)
all_workloads=(w0_empty w1_fib w2_loop w3_strings w4_map w5_nbody w6_coroutine
  w7_closures w8_sieve w9_records w10_channel)
all_extras=(io_bench snapshot_bench)

workloads=()
extras=()
if [[ $# -eq 0 ]]; then
  workloads=("${all_workloads[@]}")
  extras=("${all_extras[@]}")
else
  for name in "$@"; do
    found=""
    for w in "${all_workloads[@]}"; do
      if [[ "$name" == "$w" || "$name" == "${w%%_*}" ]]; then found="$w"; fi
    done
    if [[ -n "$found" ]]; then
      workloads+=("$found")
    elif [[ " ${all_extras[*]} " == *" $name "* ]]; then
      extras+=("$name")
    else
      echo "unknown workload '$name'; known: ${all_workloads[*]} ${all_extras[*]}" >&2
      exit 2
    fi
  done
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
spool="$target_dir/release/spool"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "building spool (release)..." >&2
  (cd "$root" && cargo build --release -p spool-cli --bin spool >&2)
  if [[ ${#extras[@]} -gt 0 ]]; then
    echo "building ${extras[*]} (release)..." >&2
    example_args=()
    for e in "${extras[@]}"; do example_args+=(--example "$e"); done
    (cd "$root" && cargo build --release -p spool-examples "${example_args[@]}" >&2)
  fi
fi
[[ -x "$spool" ]] || { echo "no spool binary at $spool" >&2; exit 1; }

# The peers: a missing one leaves its columns as "-".
lua="${LUA54-$(command -v lua5.4 || true)}"
if [[ -z "$lua" ]]; then
  echo "lua5.4 not found ('apt-get install lua5.4'): its columns are '-'." >&2
fi
luajit="${LUAJIT-$(command -v luajit || true)}"
if [[ -z "$luajit" ]]; then
  echo "luajit not found ('apt-get install luajit'): its columns are '-'." >&2
fi

# Peak memory: GNU time's %M (KiB); without it the MiB columns are "-".
gnu_time=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then
  gnu_time=/usr/bin/time
else
  echo "GNU time (/usr/bin/time) not found: peak memory is not measured." >&2
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# The workloads run an installed copy of the binary, written whole as
# `install` or a package writes it, as the peers' are. The linker's own
# output file, the same bytes, starts about 5% slower while it stays in
# the page cache as written, like a copy written 4 KiB at a time
# (`dd bs=4k`; one written 1 MiB at a time starts as fast as the
# installed copy): an artifact of how the file was written, not of Spool.
install -m 755 "$spool" "$scratch/spool"
spool="$scratch/spool"

# now_ns: wall clock in nanoseconds (bash's $EPOCHREALTIME needs no fork).
now_ns() {
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    local t="${EPOCHREALTIME/./}"
    echo "${t}000"
  else
    date +%s%N
  fi
}

# expected_output WORKLOAD COUNT: the exact stdout of COUNT runs, into a file.
expected_output() {
  local line="${expected[$1]}" i
  : >"$scratch/expected"
  if [[ -n "$line" ]]; then
    for ((i = 0; i < $2; i++)); do printf '%s\n' "$line" >>"$scratch/expected"; done
  fi
}

# sample WORKLOAD BATCH CMD...: runs CMD and prints "SECONDS KIB STATUS", where
# SECONDS is the wall time per run, KIB the peak resident memory ("-" without
# GNU time) and STATUS "ok", "wrong" (unexpected output) or "fail" (non-zero
# exit). With BATCH > 1 the time is that of BATCH runs back to back, divided,
# and the memory comes from one more run.
sample() {
  local workload="$1" batch="$2"
  shift 2
  local start end kib="-" status=ok i
  : >"$scratch/out"
  if [[ "$batch" -gt 1 ]]; then
    start=$(now_ns)
    for ((i = 0; i < batch; i++)); do
      "$@" >>"$scratch/out" 2>"$scratch/err" || status=fail
    done
    end=$(now_ns)
    expected_output "$workload" "$batch"
    if [[ "$status" == ok ]] && ! cmp -s "$scratch/out" "$scratch/expected"; then status=wrong; fi
    : >"$scratch/out"
  fi
  local started ended
  started=$(now_ns)
  if [[ -n "$gnu_time" ]]; then
    "$gnu_time" -f %M -o "$scratch/rss" "$@" >"$scratch/out" 2>"$scratch/err" || status=fail
    kib=$(tail -n 1 "$scratch/rss")
    [[ "$kib" =~ ^[0-9]+$ ]] || kib="-"
  else
    "$@" >"$scratch/out" 2>"$scratch/err" || status=fail
  fi
  ended=$(now_ns)
  if [[ "$batch" -le 1 ]]; then start=$started end=$ended; fi
  expected_output "$workload" 1
  if [[ "$status" == ok ]] && ! cmp -s "$scratch/out" "$scratch/expected"; then status=wrong; fi
  echo "$(awk -v ns=$((end - start)) -v n="$batch" 'BEGIN { printf "%.6f", ns / n / 1e9 }') $kib $status"
}

# median VALUES...: the median of numbers ("-" when there are none).
median() {
  if [[ $# -eq 0 ]]; then
    echo "-"
    return
  fi
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# record PROGRAM WORKLOAD BATCH CMD...: one sample of PROGRAM (spool, lua or
# luajit), appended to its arrays; a wrong or failed run is reported and
# counted in PROGRAM_bad.
record() {
  local name="$1" workload="$2" batch="$3"
  shift 3
  local seconds kib status
  read -r seconds kib status <<<"$(sample "$workload" "$batch" "$@")"
  if [[ "$status" == fail ]]; then
    echo "  FAILED: $name $workload: $(head -c 300 "$scratch/err")" >&2
    eval "${name}_bad=1"
    return
  fi
  if [[ "$status" == wrong ]]; then
    echo "  WRONG OUTPUT: $name $workload printed '$(head -c 100 "$scratch/out")', expected '${expected[$workload]}'" >&2
    eval "${name}_bad=1"
  fi
  eval "${name}_times+=(\"$seconds\")"
  if [[ "$kib" != "-" ]]; then eval "${name}_kib+=(\"$kib\")"; fi
}

# fmt_time SECONDS SCALE DECIMALS: SECONDS times SCALE, or "-".
fmt_time() {
  if [[ "$1" == "-" ]]; then echo "-"; else awk -v s="$1" -v k="$2" -v d="$3" 'BEGIN { printf "%.*f", d, s * k }'; fi
}

to_mib() {
  if [[ "$1" == "-" ]]; then echo "-"; else awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; fi
}

ratio() {
  if [[ "$1" == "-" || "$2" == "-" ]]; then echo "-"; else awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; fi
}

any_bad=0
spawn_ms=""
declare -A spool_median lua_median

peer_names=""
if [[ -n "$lua" ]]; then peer_names="$("$lua" -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"; else peer_names="no lua5.4"; fi
if [[ -n "$luajit" ]]; then
  peer_names+=", $("$luajit" -v 2>&1 | head -n 1 | cut -d' ' -f1-2) -joff"
else
  peer_names+=", no luajit"
fi
echo "Spool $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') vs $peer_names;" \
  "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
if [[ ${#workloads[@]} -gt 0 ]]; then
  echo "Median of $runs alternating rounds after 1 warm-up; seconds (w0: $w0_runs rounds, ms per start, $w0_batch back to back per sample); peak RSS in MiB."
  echo
  row='%-15s %9s %9s %11s %10s %13s %10s %8s %11s%s\n'
  # shellcheck disable=SC2059
  printf "$row" workload spool lua5.4 luajit-joff spool/lua spool/luajit "spool MiB" "lua MiB" "luajit MiB" ""
  for workload in "${workloads[@]}"; do
    script="$here/$workload.spl"
    lua_script="$here/lua/$workload.lua"
    batch=1 scale=1 decimals=3 label="$workload" rounds="$runs"
    if [[ "$workload" == w0_empty ]]; then
      batch="$w0_batch" scale=1000 decimals=2 label="w0_empty (ms)" rounds="$w0_runs"
    fi
    spool_times=() spool_kib=() lua_times=() lua_kib=() luajit_times=() luajit_kib=()
    spool_bad=0 lua_bad=0 luajit_bad=0
    for ((round = 0; round <= rounds; round++)); do
      echo "  $workload round $round/$rounds" >&2
      record spool "$workload" "$batch" "$spool" run --max-instructions unlimited "$script"
      if [[ -n "$lua" ]]; then record lua "$workload" "$batch" "$lua" "$lua_script"; fi
      if [[ -n "$luajit" ]]; then record luajit "$workload" "$batch" "$luajit" -joff "$lua_script"; fi
      if [[ "$round" -eq 0 ]]; then
        # The first round is the warm-up: forget its figures (not its checks).
        spool_times=() spool_kib=() lua_times=() lua_kib=() luajit_times=() luajit_kib=()
      fi
    done
    spool_s=$(median "${spool_times[@]}")
    lua_s=-
    luajit_s=-
    lua_mib=-
    luajit_mib=-
    if [[ -n "$lua" ]]; then
      lua_s=$(median "${lua_times[@]}")
      lua_mib=$(to_mib "$(median "${lua_kib[@]}")")
    fi
    if [[ -n "$luajit" ]]; then
      luajit_s=$(median "${luajit_times[@]}")
      luajit_mib=$(to_mib "$(median "${luajit_kib[@]}")")
    fi
    if [[ "$workload" == w0_empty ]]; then
      # What starting any process costs here, for scale.
      true_times=()
      for ((round = 0; round < 3; round++)); do
        read -r seconds _ _ <<<"$(sample w0_empty "$batch" /bin/true)"
        true_times+=("$seconds")
      done
      spawn_ms=$(fmt_time "$(median "${true_times[@]}")" 1000 2)
    fi
    spool_median[$workload]=$spool_s
    lua_median[$workload]=$lua_s
    note=""
    for p in spool lua luajit; do
      if [[ "$(eval echo "\$${p}_bad")" -eq 1 ]]; then
        note+="  !! $p: wrong output or failed"
        any_bad=1
      fi
    done
    # shellcheck disable=SC2059
    printf "$row" "$label" "$(fmt_time "$spool_s" "$scale" "$decimals")" \
      "$(fmt_time "$lua_s" "$scale" "$decimals")" "$(fmt_time "$luajit_s" "$scale" "$decimals")" \
      "$(ratio "$spool_s" "$lua_s")" "$(ratio "$spool_s" "$luajit_s")" \
      "$(to_mib "$(median "${spool_kib[@]}")")" "$lua_mib" "$luajit_mib" "$note"
  done
  if [[ -n "$spawn_ms" ]]; then
    echo "w0 includes starting a process from this script: /bin/true takes $spawn_ms ms the same way."
  fi
  echo "Targets (BENCHMARKS.md): spool/lua <= 1.0 on every workload (stretch: spool/luajit <= 1.0);" \
    "w0 start-up <= Lua 5.4's; peak memory <= 2x Lua 5.4's."
fi

# extra_figure FILE KEY: the value of KEY on the "bench:" lines of FILE, or "-".
extra_figure() {
  local value
  value=$(grep '^bench:' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1 || true)
  echo "${value:--}"
}

# meets VALUE OP TARGET: "yes" or "no" ("-" without a value).
meets() {
  if [[ "$1" == "-" || "$3" == "-" ]]; then echo "-"; return; fi
  awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? v <= t : v >= t; print ok ? "yes" : "no" }'
}

have_w6=""
if [[ -n "${spool_median[w6_coroutine]:-}" && "${spool_median[w6_coroutine]}" != "-" ]]; then have_w6=1; fi
if [[ ${#extras[@]} -gt 0 || -n "$have_w6" ]]; then
  echo
  echo "Spool-only figures (io_bench and snapshot_bench give their best of 5 runs):"
  extra='%-52s %10s %12s %5s\n'
  # shellcheck disable=SC2059
  printf "$extra" figure spool target met
  for e in "${extras[@]}"; do
    binary="$target_dir/release/examples/$e"
    if [[ ! -x "$binary" ]] || ! "$binary" >"$scratch/$e.out" 2>"$scratch/$e.err"; then
      echo "  FAILED: $e: $(head -c 300 "$scratch/$e.err" 2>/dev/null)" >&2
      echo "!! $e failed or is not built"
      any_bad=1
      continue
    fi
    f="$scratch/$e.out"
    if [[ "$e" == io_bench ]]; then
      v=$(extra_figure "$f" io_ns_per_request)
      # shellcheck disable=SC2059
      printf "$extra" "I/O: whole run per request, ns (100 000 tasks x 3)" "$v" "<= 200" "$(meets "$v" "<=" 200)"
      v=$(extra_figure "$f" io_share_ns_per_request)
      # shellcheck disable=SC2059
      printf "$extra" "  of which suspending for I/O, ns" "$v" "-" "-"
      v=$(extra_figure "$f" bytes_per_suspended_task)
      # shellcheck disable=SC2059
      printf "$extra" "memory per suspended task, bytes" "$v" "<= 1024" "$(meets "$v" "<=" 1024)"
    else
      v=$(extra_figure "$f" deep_snapshot_mb_s)
      # shellcheck disable=SC2059
      printf "$extra" "snapshot, 10 000 tasks 20 frames deep, MB/s" "$v" ">= 300" "$(meets "$v" ">=" 300)"
      v=$(extra_figure "$f" deep_restore_mb_s)
      # shellcheck disable=SC2059
      printf "$extra" "restore, the same run, MB/s" "$v" ">= 300" "$(meets "$v" ">=" 300)"
      v=$(extra_figure "$f" deep_bytes_per_task)
      # shellcheck disable=SC2059
      printf "$extra" "  snapshot bytes per suspended task" "$v" "-" "-"
    fi
  done
  if [[ -n "$have_w6" ]]; then
    spool_ns=$(awk -v s="${spool_median[w6_coroutine]}" 'BEGIN { printf "%.0f", s * 1e9 / 1000000 }')
    lua_ns=-
    if [[ "${lua_median[w6_coroutine]:-}" != "" && "${lua_median[w6_coroutine]}" != "-" ]]; then
      lua_ns=$(awk -v s="${lua_median[w6_coroutine]}" 'BEGIN { printf "%.0f", s * 1e9 / 1000000 }')
    fi
    # shellcheck disable=SC2059
    printf "$extra" "coroutine yield + resume, ns (w6 time / 1 000 000)" "$spool_ns" "<= $lua_ns (lua)" "$(meets "$spool_ns" "<=" "$lua_ns")"
  fi
fi

if [[ "$any_bad" -eq 1 ]]; then
  echo
  echo "!! some runs failed or printed a wrong result (details above on stderr)"
  exit 1
fi
