/// <reference lib="dom" />
/**
 * The training panel's live loss plot: an inline SVG with the loss of every step as a line, the
 * held-out loss as dots, and the range on the axis labels. No library: a few SVG elements
 * redrawn per step.
 */

import type { TrainProgress } from "../../src/train/mod.ts";

const SVG = "http://www.w3.org/2000/svg";
/** The drawing's size in viewBox units (the SVG scales to its box). */
const [WIDTH, HEIGHT, PAD] = [400, 140, 6];

/**
 * A loss curve drawn into an `<svg>`.
 *
 * @example
 * ```ts ignore
 * const plot = new LossPlot(document.querySelector("svg")!);
 * plot.reset();
 * plot.add({ step: 1, steps: 100, loss: 6.9 });
 * plot.add({ step: 2, steps: 100, loss: 6.5, evalLoss: 6.8 }); // a step that evaluated
 * ```
 */
export class LossPlot {
  #svg: SVGSVGElement;
  #steps = 1;
  #losses: [number, number][] = [];
  #evals: [number, number][] = [];
  #line: SVGPolylineElement;
  #dots: SVGGElement;
  #labels: SVGTextElement[];

  /** @param svg The element drawn into (its children are replaced). */
  constructor(svg: SVGSVGElement) {
    this.#svg = svg;
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
    svg.replaceChildren();
    this.#line = this.#child("polyline", { class: "loss", fill: "none" });
    this.#dots = this.#child("g", { class: "eval-loss" });
    this.#labels = ["top", "bottom", "steps"].map((name) => this.#child("text", { class: name }));
  }

  /** Clears the plot for a new run. */
  reset(): void {
    this.#losses = [];
    this.#evals = [];
    this.#draw();
  }

  /**
   * Adds a step's loss (and its held-out loss, on steps that evaluate) and redraws.
   *
   * @param progress The step's report: step (from 1), steps of the run, loss, held-out loss.
   */
  add(progress: Pick<TrainProgress, "step" | "steps" | "loss" | "evalLoss">): void {
    const { step, steps, loss, evalLoss } = progress;
    this.#steps = steps;
    this.#losses.push([step, loss]);
    if (evalLoss !== undefined) this.#evals.push([step, evalLoss]);
    this.#draw();
  }

  #draw(): void {
    const all = [...this.#losses, ...this.#evals].map(([, v]) => v);
    const [low, high] = all.length ? [Math.min(...all), Math.max(...all)] : [0, 1];
    const span = high - low || 1;
    const x = (step: number) => PAD + (WIDTH - 2 * PAD) * step / this.#steps;
    const y = (v: number) => PAD + (HEIGHT - 2 * PAD) * (high - v) / span;
    const at = ([s, v]: [number, number]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`;
    this.#line.setAttribute("points", this.#losses.map(at).join(" "));
    this.#dots.replaceChildren(...this.#evals.map(([s, v]) => {
      const dot = document.createElementNS(SVG, "circle");
      for (const [k, n] of [["cx", x(s)], ["cy", y(v)], ["r", 3]] as const) {
        dot.setAttribute(k, String(n));
      }
      return dot;
    }));
    const [top, bottom, steps] = this.#labels;
    this.#label(top, all.length ? high.toFixed(2) : "", PAD, PAD + 10);
    this.#label(bottom, all.length ? low.toFixed(2) : "", PAD, HEIGHT - PAD);
    const last = this.#losses.at(-1)?.[0] ?? 0;
    this.#label(steps, `step ${last}/${this.#steps}`, WIDTH - PAD, HEIGHT - PAD, "end");
  }

  #label(text: SVGTextElement, value: string, x: number, y: number, anchor = "start"): void {
    text.textContent = value;
    text.setAttribute("x", String(x));
    text.setAttribute("y", String(y));
    text.setAttribute("text-anchor", anchor);
  }

  #child<K extends "polyline" | "g" | "text">(
    name: K,
    attributes: Record<string, string>,
  ): SVGElementTagNameMap[K] {
    const element = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, v);
    this.#svg.append(element);
    return element;
  }
}
