/**
 * The source of a CPU pool worker, started from a string so that it needs no file of its own
 * (the library may be imported from a file, a URL or a bundle). The same text runs as a Node
 * `worker_threads` worker (Deno, where such a worker can be unref'd so that an idle pool never
 * keeps the process alive) and as a browser module worker.
 *
 * The worker instantiates the kernels over the shared memory, takes its own stack, reports
 * "ready", then stays in the module's `worker_loop` until the pool stops; a trap is reported
 * with its message.
 *
 * This module is browser compatible.
 *
 * @module
 */

/** The worker's JavaScript. */
export const WORKER_SOURCE: string = `
const start = async (message, post) => {
  const { module, memory, control, id, scratch, scratchBytes, stackTop } = message;
  try {
    const instance = await WebAssembly.instantiate(module, { env: { memory, now: () => performance.now() } });
    instance.exports.__stack_pointer.value = stackTop;
    post({ ready: true });
    instance.exports.worker_loop(control, id, scratch, scratchBytes);
    post({ stopped: true });
  } catch (error) {
    post({ error: String(error && error.stack || error) });
  }
};
if (typeof require === "function") {
  const { parentPort } = require("node:worker_threads");
  parentPort.once("message", (message) => start(message, (m) => parentPort.postMessage(m)));
} else {
  self.onmessage = (event) => start(event.data, (m) => self.postMessage(m));
}
`;
