#!/usr/bin/env bash
# The one-shot run on a lent GPU machine (bench/README.md says how to start it): unpacks what
# bench/gpu/pack.sh carried, finds the NVIDIA Vulkan driver, checks that the WebGPU adapter is
# the GPU, then within a time budget (8 minutes by default), each step with its own limit:
#
#   1. adapter  the adapter (a software one fails unless --allow-software) and one kernel on it
#   2. golden   every golden folder, case by case (correctness on real hardware first)
#   3. tests    the GPU tests: kernels, device, models, TTS on tiny models
#   4. bench    the full benchmark suite with full-size random weights (generated first) and the
#               PyTorch + transformers peer, VALL-E with f16, q8 and q4 weights (--dtypes), the
#               LoRA training step on the f16 base (one 10 s item, AR and NAR); its results are
#               written after each section
#
# Writes to $OUT (bench/gpu/out when unset): summary.txt (each step: ok, FAILED, TIMEOUT or
# SKIPPED, its time and outcome), run.log (everything), golden.txt, tests.txt, bench.txt and
# results/<adapter>.json and .md. A step cut off by its limit leaves the earlier steps' results,
# and summary.txt is written whatever happens. Exit status 0 when every step passed.
#
#   bash bench/gpu/run.sh [--allow-software] [--quick] [--budget SECONDS] [--only golden,tests,bench]
#     [--bench-only kernels,valle,train,codec,e2e,peer] [--dtypes f16,q8,q4]
#
# --quick runs the bench's quick suite; --only picks steps (the adapter check always runs);
# --bench-only picks the bench's sections (its own --only); --dtypes the weight types of its VALL-E
# section (default f16,q8,q4).
# VALLE_GPU_CARRIED_LIBS=all uses every carried library even where the machine has its own (to
# try the carried Vulkan loader on a machine that has one).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
. bench/gpu/_common.sh
root=$PWD

allow_software=
quick=
budget=480
only=golden,tests,bench
bench_only=()
dtypes=f16,q8,q4
while [ $# -gt 0 ]; do
  case $1 in
    --allow-software) allow_software=--allow-software ;;
    --quick) quick=--quick ;;
    --budget) budget=${2:?--budget needs seconds}; shift ;;
    --only) only=${2:?--only needs a list of steps}; shift ;;
    --bench-only) bench_only=(--only "${2:?--bench-only needs a list of sections}"); shift ;;
    --dtypes) dtypes=${2:?--dtypes needs a list of weight types}; shift ;;
    *) echo "run.sh: unknown option $1 (see the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "${OUT:-}" ]; then
  OUT=$root/bench/gpu/out
  rm -rf "$OUT"
fi
mkdir -p "$OUT/results"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/run.log") 2>&1

t0=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/valle-gpu.XXXXXX")
names=() statuses=() seconds=() details=()
running=
adapter_name=
slug=

elapsed() { echo $(($(date +%s) - t0)); }

write_summary() {
  {
    echo "valle GPU run: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "machine: ${gpu_line:-no nvidia-smi}"
    echo "adapter: ${adapter_name:-?}"
    echo "options: budget ${budget}s${quick:+, quick bench}${allow_software:+, software allowed}, steps adapter,$only${bench_only[1]:+ (bench: ${bench_only[1]})}, dtypes $dtypes"
    echo "elapsed: $(elapsed)s"
    echo
    local i
    for i in "${!names[@]}"; do
      printf '%-22s %-8s %5ss  %s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}" "${details[$i]}"
    done
    [ -n "$running" ] && printf '%-22s %-8s\n' "$running" "RUNNING (or stopped here)"
  } >"$OUT/summary.txt"
}

record() { # name status seconds detail
  names+=("$1") statuses+=("$2") seconds+=("$3") details+=("$4")
  running=
  write_summary
}

# shellcheck disable=SC2317 # called by the EXIT trap
finish() {
  write_summary
  echo
  echo "== summary ($OUT/summary.txt)"
  cat "$OUT/summary.txt"
  rm -rf "$work"
}
trap finish EXIT
trap 'exit 143' TERM INT

# Runs a step under `timeout`, its output to the log, to $work/step.log and (unless "-") to
# $OUT/<file>. Sets step_status (ok, FAILED, TIMEOUT, SKIPPED) and step_seconds.
step() { # name cap logfile command…
  local name=$1 cap=$2 file=$3
  shift 3
  local left=$((budget - $(elapsed)))
  local limit=$((cap < left ? cap : left))
  : >"$work/step.log"
  step_seconds=0
  if [ "$limit" -lt 5 ]; then
    step_status=SKIPPED
    echo "no time left for $name in the ${budget}s budget" >"$work/step.log"
    return
  fi
  running=$name
  write_summary
  echo
  echo "== $name (limit ${limit}s): $*"
  local logs=("$work/step.log")
  [ "$file" != - ] && logs+=("$OUT/$file")
  local start
  start=$(date +%s)
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "${logs[@]}"
  local rc=${PIPESTATUS[0]}
  step_seconds=$(($(date +%s) - start))
  echo "== $name: exit $rc after ${step_seconds}s"
  case $rc in
    0) step_status=ok ;;
    124 | 137) step_status=TIMEOUT ;;
    *) step_status=FAILED ;;
  esac
}

# The last line of the step's output matching a pattern.
last_line() { grep -E "$1" "$work/step.log" | tail -1; }

# --- setup: Deno, DENO_DIR, libraries, the Vulkan driver -----------------------------------
echo "== setup"
running=setup
gpu_line=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
echo "nvidia-smi: ${gpu_line:-not found}"
s=$(date +%s)
setup_error=
mkdir -p "$work/bin" "$work/lib"
if [ ! -f "$CARRY/deno.xz" ]; then
  setup_error="no $CARRY/deno.xz: run bash bench/gpu/pack.sh and carry $CARRY"
elif command -v xz >/dev/null; then
  xz -dc "$CARRY/deno.xz" >"$work/bin/deno"
else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$CARRY/deno.xz" "$work/bin/deno"
fi
if [ -z "$setup_error" ]; then
  chmod +x "$work/bin/deno"
  (cd "$work/bin" && sha256sum --quiet -c "$root/$CARRY/deno.sha256") ||
    setup_error="the unpacked Deno does not match $CARRY/deno.sha256"
fi
deno=$work/bin/deno
export PATH=$work/bin:$PATH
export DENO_DIR=$work/deno_dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 PYTHONUNBUFFERED=1
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=/tmp/xdg-runtime-$(id -u)
  export XDG_RUNTIME_DIR
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
mkdir -p "$DENO_DIR"
[ -f "$CARRY/deno_dir.tar" ] && tar -xf "$CARRY/deno_dir.tar" -C "$DENO_DIR"

# Carried libraries, only those the machine lacks.
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
has_lib() { "$ldconfig" -p 2>/dev/null | grep -q "[[:space:]]$1 ("; }
used=()
for f in "$root/$CARRY"/lib/*.so.*; do
  [ -e "$f" ] || continue
  so=$(basename "$f")
  if [ "${VALLE_GPU_CARRIED_LIBS:-}" = all ] || ! has_lib "$so"; then
    ln -s "$f" "$work/lib/$so"
    used+=("$so")
  fi
done
echo "carried libraries used: ${used[*]:-none (the machine has them all)}"

# The NVIDIA Vulkan driver: an ICD json in the usual places, or one written for libGLX_nvidia.
lib_dirs=(/usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /lib/x86_64-linux-gnu)
find_lib() { # soname → its path, from ldconfig or the usual driver folders
  "$ldconfig" -p 2>/dev/null | awk -v so="$1" '$1 == so { print $NF; exit }' | grep . && return
  local d
  for d in "${lib_dirs[@]}"; do [ -e "$d/$1" ] && { echo "$d/$1"; return; }; done
  return 1
}
icd_dirs=()
xdg_config=${XDG_CONFIG_DIRS:-/etc/xdg} xdg_data=${XDG_DATA_DIRS:-/usr/local/share:/usr/share}
for d in ${xdg_config//:/ } /etc ${xdg_data//:/ } /usr/local/share /usr/share \
  /usr/local/nvidia/share /usr/local/nvidia/etc; do
  [[ " ${icd_dirs[*]} " == *" $d/vulkan/icd.d "* ]] || icd_dirs+=("$d/vulkan/icd.d")
done
nvidia_icd=
for d in "${icd_dirs[@]}"; do
  for f in "$d"/*.json; do
    [ -f "$f" ] || continue
    echo "vulkan: ICD $f ($(sed -n 's/.*"library_path"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | head -1))"
    case $(basename "$f") in nvidia*) nvidia_icd=${nvidia_icd:-$f} ;; esac
  done
done
driver_dir=
if [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  echo "vulkan: using the given VK_DRIVER_FILES=${VK_DRIVER_FILES:-} VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-}"
elif [ -n "$nvidia_icd" ]; then
  export VK_DRIVER_FILES=$nvidia_icd VK_ICD_FILENAMES=$nvidia_icd
  driver=$(sed -n 's/.*"library_path"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$nvidia_icd" | head -1)
  case $driver in
    /*) [ -e "$driver" ] && driver_dir=$(dirname "$driver") ;;
    *) path=$(find_lib "$driver") && driver_dir=$(dirname "$path") ;;
  esac
  echo "vulkan: NVIDIA ICD $nvidia_icd, driver $driver ${driver_dir:+in $driver_dir}${driver_dir:-NOT FOUND}"
elif path=$(find_lib libGLX_nvidia.so.0); then
  driver_dir=$(dirname "$path")
  printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "%s", "api_version": "1.3.0" } }\n' \
    "$path" >"$work/nvidia_icd.json"
  export VK_DRIVER_FILES=$work/nvidia_icd.json VK_ICD_FILENAMES=$work/nvidia_icd.json
  echo "vulkan: no NVIDIA ICD json; wrote one for $path"
else
  echo "vulkan: no NVIDIA driver (no nvidia_icd.json, no libGLX_nvidia.so.0): the loader's defaults apply"
fi
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
export LD_LIBRARY_PATH=$work/lib${driver_dir:+:$driver_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export DENO_WEBGPU_BACKEND=${DENO_WEBGPU_BACKEND:-vulkan}
echo "env: LD_LIBRARY_PATH=$LD_LIBRARY_PATH DENO_WEBGPU_BACKEND=$DENO_WEBGPU_BACKEND"
if [ -z "$setup_error" ] && ! "$deno" --version >/dev/null; then
  setup_error="the unpacked Deno does not run"
fi
if [ -n "$setup_error" ]; then
  echo "setup: $setup_error"
  record setup FAILED $(($(date +%s) - s)) "$setup_error"
  exit 1
fi
record setup ok $(($(date +%s) - s)) "$("$deno" --version | head -1), ${#used[@]} carried libraries used"

# --- 1. adapter -------------------------------------------------------------------------------
step adapter 60 - env VK_LOADER_DEBUG=error,warn \
  "$deno" run -A --cached-only bench/gpu/adapter.ts $allow_software
adapter_name=$(grep -m1 '^adapter: ' "$work/step.log" | sed 's/^adapter: //')
slug=$(grep -o '"slug":"[^"]*"' "$work/step.log" | tail -1 | cut -d'"' -f4)
record adapter "$step_status" "$step_seconds" "$(last_line '^adapter: |Error: ' | sed 's/^adapter: //' | cut -c1-200)"
if [ "$step_status" != ok ]; then
  echo "adapter check failed: the GPU steps are skipped"
  exit 1
fi
step gpu-info 60 - "$deno" run -A --cached-only examples/gpu_info.ts
record gpu-info "$step_status" "$step_seconds" "$(last_line '^kernel ' | cut -c1-200)"
failed=0
[ "$step_status" = ok ] || failed=1

# --- 2. golden --------------------------------------------------------------------------------
if [[ ,$only, == *,golden,* ]]; then
  golden_end=$(($(elapsed) + budget * 5 / 16))
  folders=()
  for m in "$CARRY"/golden/*/manifest.json; do [ -f "$m" ] && folders+=("$(dirname "$m")"); done
  if [ ${#folders[@]} -eq 0 ]; then
    for m in tests/fixtures/*/manifest.json; do [ -f "$m" ] && folders+=("$(dirname "$m")"); done
  fi
  for folder in "${folders[@]}"; do
    echo "== $folder" >>"$OUT/golden.txt"
    step "golden $(basename "$folder")" $((golden_end - $(elapsed))) golden.txt \
      "$deno" run -A --cached-only tools/golden.ts "$folder"
    record "golden $(basename "$folder")" "$step_status" "$step_seconds" "$(last_line '^golden: ')"
    [ "$step_status" = ok ] || failed=1
  done
fi

# --- 3. tests ---------------------------------------------------------------------------------
if [[ ,$only, == *,tests,* ]]; then
  step tests $((budget / 2)) tests.txt \
    "$deno" test -A --no-check --cached-only --parallel "${RUN_TESTS[@]}"
  record tests "$step_status" "$step_seconds" "$(last_line '^(ok|FAILED) \| ')"
  [ "$step_status" = ok ] || failed=1
fi

# --- 4. bench ---------------------------------------------------------------------------------
if [[ ,$only, == *,bench,* ]]; then
  touch "$work/bench-start"
  # WebGPU only: the CPU backend's suite and its peer would take minutes the CUDA peer needs.
  step bench "$budget" bench.txt "$deno" run -A --cached-only bench/run.ts --backends webgpu \
    --dtypes "$dtypes" $quick "${bench_only[@]}"
  status=$step_status
  results=()
  for ext in json md; do
    f=bench/results/$slug.$ext
    if [ -n "$slug" ] && [ "$f" -nt "$work/bench-start" ]; then
      cp "$f" "$OUT/results/"
      results+=("$f")
    fi
  done
  digest=
  if [ ${#results[@]} -gt 0 ]; then
    # shellcheck disable=SC2016 # JavaScript, not shell
    digest=$("$deno" eval --cached-only '
      const r = JSON.parse(Deno.readTextFileSync(Deno.args[0]));
      const p = r.peers?.cuda ?? {};
      const parts = [r.complete ? "complete" : "INCOMPLETE"];
      for (const key of ["webgpu", "webgpu q8", "webgpu q4"]) {
        const v = r.backends?.[key]?.valle;
        if (v) parts.push(`AR step ${v.model.weights} ${v.stepMs} ms`);
      }
      for (const t of r.backends?.webgpu?.train ?? []) {
        for (const s of t.steps) parts.push(`train ${s.kind} step ${s.medianStepMs} ms`);
        parts.push(`train peak ${Math.round(t.peakBytes / 2 ** 20)} MiB`);
      }
      const peak = r.backends?.webgpu?.peak;
      if (peak) parts.push(`peaks ${peak.fmaGflops} GFLOP/s, ${peak.readGBs} GB/s`);
      for (const row of r.backends?.webgpu?.attention ?? []) {
        parts.push(`${row.attention} ${row["GFLOP/s"]} GFLOP/s (${row["% of peak"]})`);
      }
      if (p.arStepMs !== undefined) parts.push(`peer AR step ${p.arStepMs} ms`);
      if (p.unavailable) parts.push(`peer unavailable: ${p.unavailable}`);
      console.log(parts.join(", "));' "bench/results/$slug.json" 2>&1 | tail -1)
  fi
  record bench "$status" "$step_seconds" "${digest:-no results written}${results:+; $OUT/results/$slug.json and .md}"
  [ "$status" = ok ] || failed=1
fi

exit "$failed"
