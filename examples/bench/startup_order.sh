#!/usr/bin/env bash
# Regenerates repl/startup-order.txt, the order the linker lays out the
# functions a short `spool run` executes, then those the benchmark
# workloads go on to execute (repl/build.rs passes it to lld as
# --symbol-ordering-file): together they fill a few dozen pages of the
# executable instead of being spread over all of its code, which the kernel
# maps in 64 KiB blocks around each page first touched. That is most of
# the memory a short script uses, and some of its start-up time.
#
# Run it after changes that rename or add functions on the start-up path
# (a stale list only loses part of the benefit: names the linker does not
# find are skipped). Needs valgrind and python3.
#
# Usage: examples/bench/startup_order.sh
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
spool="$target_dir/release/spool"
(cd "$root" && cargo build --release -p spool-cli --bin spool >&2)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# An empty script first, then one that prints, then the language tour;
# then the workloads, so that the code a longer run keeps executing (the
# interpreter, the collector, the scheduler, the library's natives) is laid
# out together after the start-up path rather than spread over the whole
# executable, which a long run would otherwise keep mapped in memory.
scripts=("$here/w0_empty.spl" "$root/examples/hello.spl" "$root/examples/tour.spl")
for workload in "$here"/w[1-9]*.spl; do
  scripts+=("$workload")
done
index=0
for script in "${scripts[@]}"; do
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$index.out" \
    "$spool" run "$script" </dev/null >/dev/null 2>"$work/$index.log" || true
  index=$((index + 1))
done

# Each profile's functions of the spool executable, in the order the
# profile names them, each once.
python3 - "$spool" "$work" "${#scripts[@]}" >"$root/repl/startup-order.txt" <<'PY'
import re, sys
binary, work, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = set()
for index in range(count):
    objects, functions, current = {}, {}, ""
    for line in open(f"{work}/{index}.out"):
        # Names are given once, where first used (also as a callee's).
        match = re.match(r"^(c?)(ob|fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not match:
            continue
        callee, kind, key, name = match.groups()
        table = objects if kind == "ob" else functions
        if name:
            table[key] = name
        if callee:
            continue
        if kind == "ob":
            current = objects.get(key, "")
        elif current == binary:
            function = re.sub(r"'\d+$", "", functions[key])
            if function not in seen:
                seen.add(function)
                print(function)
PY
echo "repl/startup-order.txt: $(wc -l <"$root/repl/startup-order.txt") functions" >&2
