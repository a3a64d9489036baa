/**
 * Lists the npm packages that the given entry points import statically, with their dependencies
 * (one `name@version` a line), for `bench/gpu/pack.sh`. Packages reached only through dynamic
 * imports are loaded when that code runs (none today); they are named on stderr. As soon as a run needs one npm package, Deno
 * installs the lockfile's whole npm snapshot, so pack.sh carries all of them when this list is not
 * empty and none when it is. Run with DENO_DIR set to a cache that holds them (`deno cache` the
 * same entry points first).
 *
 *   deno run -A bench/gpu/npm_deps.ts <entry.ts> […]
 */

import { pathToFileURL } from "node:url";

interface Dependency {
  code?: { specifier: string };
  isDynamic?: boolean;
}
interface Module {
  specifier: string;
  kind?: string;
  npmPackage?: string;
  dependencies?: Dependency[];
}
interface Info {
  modules: Module[];
  redirects: Record<string, string>;
  npmPackages: Record<string, { dependencies: string[] }>;
}

if (Deno.args.length === 0) {
  console.error("usage: deno run -A bench/gpu/npm_deps.ts <entry.ts> […]");
  Deno.exit(2);
}
const root = await Deno.makeTempFile({ suffix: ".ts" });
await Deno.writeTextFile(
  root,
  Deno.args.map((file) => `import "${pathToFileURL(file).href}";\n`).join(""),
);
const out = await new Deno.Command(Deno.execPath(), {
  args: ["info", "--json", root],
  stderr: "inherit",
}).output();
await Deno.remove(root);
if (!out.success) Deno.exit(1);
const info: Info = JSON.parse(new TextDecoder().decode(out.stdout));
const modules = new Map(info.modules.map((m) => [m.specifier, m]));

/** Npm packages of the modules reachable from the root, through static imports only or any. */
function reachable(staticOnly: boolean): Set<string> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const stack = [pathToFileURL(root).href];
  while (stack.length) {
    const specifier = stack.pop()!;
    const resolved = info.redirects[specifier] ?? specifier;
    if (seen.has(resolved)) continue;
    seen.add(resolved);
    const module = modules.get(resolved);
    if (module?.npmPackage) packages.add(module.npmPackage);
    for (const dep of module?.dependencies ?? []) {
      if (dep.code && !(staticOnly && dep.isDynamic)) stack.push(dep.code.specifier);
    }
  }
  // With their dependencies.
  for (const id of packages) {
    for (const dep of info.npmPackages[id]?.dependencies ?? []) packages.add(dep);
  }
  return packages;
}

const needed = reachable(true);
for (const id of reachable(false)) {
  if (!needed.has(id)) console.error(`npm_deps: ${id} is imported only dynamically`);
}
for (const id of needed) console.log(id);
