# shellcheck shell=bash disable=SC2034 # sourced: the names are used by pack.sh and run.sh
# Shared by bench/gpu/pack.sh and bench/gpu/run.sh: what the GPU run executes, so that pack.sh
# carries exactly what it imports. Sourced from the repository root.

# The Deno that runs there: the binary of the npm package @deno/linux-x64-glibc.
DENO_VERSION=2.9.6
# Everything the device gets besides the working tree (ignored by git, named in `carry`).
CARRY=bench/gpu/carry
# The scripts the run starts.
RUN_SCRIPTS=(bench/gpu/adapter.ts examples/gpu_info.ts tools/golden.ts bench/run.ts)
# The test folders it runs: kernels, the device, the models and the TTS pipeline on tiny models
# (not the browser, CLI or text tests, which need Chromium or native espeak-ng, not a GPU).
RUN_TESTS=(tests/ops tests/gpu tests/models tests/tts)

# Prints the test files of RUN_TESTS, one per line.
run_test_files() {
  find "${RUN_TESTS[@]}" -name '*_test.ts' | sort
}
