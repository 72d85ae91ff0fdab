#!/usr/bin/env bash
# Runs the whole suite N times to catch the rare glibc abort at exit (docs/testing.md, "An abort
# at exit"), each run from a fresh clone of this repository (cold Deno type-check and code caches)
# with a fresh Mesa shader cache, Vulkan and GL alternating, core dumps on. Each run's exit status
# and summary go to $OUT/runs.txt; a run that dies by a signal keeps its log and clone, and its core
# (if the kernel's core_pattern writes one: `echo '/tmp/cores/core.%e.%p' > /proc/sys/kernel/core_pattern`).
# Stop between runs with `touch $OUT/stop`.
#
#   tools/abort_stress.sh [N=10] [OUT=/tmp/abort-stress]
set -uo pipefail
runs=${1:-10}
out=${2:-/tmp/abort-stress}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
ulimit -c unlimited
for i in $(seq 1 "$runs"); do
  [ -e "$out/stop" ] && break
  clone="$out/clone_$i"
  rm -rf "$clone" "$out/mesa_$i"
  git clone -q "$repo" "$clone"
  backend=$([ $((i % 2)) -eq 0 ] && echo gl || echo vulkan)
  start=$(date +%s)
  (
    cd "$clone" || exit 1
    [ "$backend" = gl ] && export DENO_WEBGPU_BACKEND=gl
    MESA_SHADER_CACHE_DIR="$out/mesa_$i" CI=true REQUIRE_WEBGPU=1 deno task test >"$out/run_$i.log" 2>&1
  )
  status=$?
  summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out/run_$i.log" | grep -E '^(ok|FAILED) \|' | tail -n 1)
  echo "$(date +%T) run $i $backend status $status $(($(date +%s) - start))s $summary" >>"$out/runs.txt"
  if [ "$status" -ge 128 ]; then
    grep -nE "corrupted|double free|free\(\)|malloc" "$out/run_$i.log" | head -3 >>"$out/runs.txt"
  else
    rm -rf "$clone" "$out/mesa_$i" "$out/run_$i.log"
  fi
done
