/// <reference lib="dom" />
/** How the page shows a failure: the library's message, or what else went wrong. */

import { ValleError } from "../../mod.ts";

/**
 * Logs `error` and shows it in `element` (unhidden): a {@linkcode ValleError}'s message as it
 * is, anything else as "Something went wrong: …".
 *
 * @example
 * ```ts ignore
 * run().catch((e) => showError(document.getElementById("error")!, e));
 * ```
 */
export function showError(element: HTMLElement, error: unknown): void {
  console.error(error);
  element.hidden = false;
  element.textContent = error instanceof ValleError
    ? error.message
    : `Something went wrong: ${error instanceof Error ? error.message : String(error)}`;
}
