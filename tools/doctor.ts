/**
 * Checks what this machine offers @valle/core: a WebGPU adapter with shader-f16 (else the CPU
 * backend serves), and with --for-tests what the tests need besides: Chromium for the browser
 * tests and Debian's native espeak-ng 1.51 library for the phonemizer cross-check. It installs
 * what is missing (Mesa's lavapipe through Vulkan when there is no GPU, Chromium, libespeak-ng1)
 * only when asked to (--install, which --for-tests implies), with apt-get, as root on
 * Debian/Ubuntu; otherwise it prints what to install.
 *
 *   deno task doctor [--install]        check (and install) what speaking uses
 *   deno run -A tools/doctor.ts --for-tests   (in `deno task test`) check and install test needs
 */

const forTests = Deno.args.includes("--for-tests");
const install = forTests || Deno.args.includes("--install");
const chromiumPath = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

interface Probe {
  adapter?: string;
  f16?: boolean;
}

/** Asks a fresh Deno process for an adapter (a new process sees packages installed meanwhile). */
async function probe(): Promise<Probe> {
  const code = `const a = await navigator.gpu?.requestAdapter();
console.log(JSON.stringify(a ? { adapter: a.info.description || a.info.vendor, f16: a.features.has("shader-f16") } : {}));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "null",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
  }).output();
  try {
    return JSON.parse(new TextDecoder().decode(out.stdout).trim() || "{}");
  } catch {
    return {};
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function aptInstall(packages: string[]): Promise<boolean> {
  if (!install) return false;
  const root = Deno.build.os === "linux" && Deno.uid() === 0 && await exists("/usr/bin/apt-get");
  if (!root) return false;
  console.error(`doctor: installing ${packages.join(" ")} with apt-get`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const run = (args: string[]) =>
    new Deno.Command("apt-get", { args, env, stdout: "null" }).output();
  await run(["update", "-qq"]);
  return (await run(["install", "-y", "-qq", ...packages])).success;
}

let gpu = await probe();
if (!gpu.adapter || !gpu.f16) {
  // No adapter, or Deno fell back to GL (no shader-f16): Vulkan lavapipe is missing.
  if (await aptInstall(["mesa-vulkan-drivers", "libvulkan1"])) gpu = await probe();
}
if (!gpu.adapter) {
  const fix = "a GPU driver (Vulkan, Metal or D3D12), or on Debian/Ubuntu without a GPU, for " +
    "the kernel tests: sudo apt-get install mesa-vulkan-drivers libvulkan1";
  if (forTests) {
    console.error(`doctor: no WebGPU adapter. The tests need one: ${fix}`);
    Deno.exit(1);
  }
  console.error(
    `doctor: no WebGPU adapter: @valle/core speaks on its CPU backend (WebAssembly). For WebGPU: ${fix}`,
  );
  Deno.exit(0);
}
if (forTests && !gpu.f16) {
  console.error(
    `doctor: adapter "${gpu.adapter}" lacks shader-f16, which the f16 tests need. On Linux this ` +
      "means Deno fell back to OpenGL: sudo apt-get install mesa-vulkan-drivers libvulkan1",
  );
  Deno.exit(1);
}
const espeak151 = "/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1.1.51";
if (forTests && !await exists(espeak151) && !(await aptInstall(["libespeak-ng1"]))) {
  console.error(
    `doctor: ${espeak151} not found: the phonemizer cross-check against native espeak-ng 1.51 ` +
      "needs Debian 12's libespeak-ng1",
  );
  Deno.exit(1);
}
if (forTests && !await exists(chromiumPath) && !(await aptInstall(["chromium"]))) {
  console.error(
    `doctor: Chromium not found at ${chromiumPath} (browser tests). Install Debian's chromium ` +
      "or set CHROMIUM_PATH",
  );
  Deno.exit(1);
}
console.error(`doctor: WebGPU adapter "${gpu.adapter}", shader-f16 ${gpu.f16}`);
