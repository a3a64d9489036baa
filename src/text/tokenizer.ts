/**
 * The model's phoneme tokenizer: IPA text → token ids, exactly as HF `tokenizers` encodes with the
 * reference model's `data/tokenizer.json` (a BPE with no normalizer and no pre-tokenizer). It does
 * not phonemize; see `phonemize` for text → IPA.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { MERGES, SYMBOL_IDS } from "./_phoneme_vocab.ts";

/** The tokenizer's added tokens: split out of the input before BPE, in id order 0–3. */
const ADDED_TOKENS: readonly string[] = ["<unk>", "<bos>", "</eos>", "<mask>"];
const UNK = 0;
const BOS = 1;
const EOS = 2;

const symbolIds: ReadonlyMap<number, number> = new Map(SYMBOL_IDS);
/** `left * 65536 + right` → [rank, merged id]. */
const mergeRanks: ReadonlyMap<number, readonly [number, number]> = new Map(
  MERGES.map(([left, right, merged], rank) => [left * 65536 + right, [rank, merged]]),
);

/** BPE over one piece of text without added tokens: code points → ids, then merges by rank. */
function encodePiece(text: string, out: number[]): void {
  const ids: number[] = [];
  for (const ch of text) ids.push(symbolIds.get(ch.codePointAt(0)!) ?? UNK);
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    let bestId = 0;
    for (let i = 0; i + 1 < ids.length; i++) {
      const merge = mergeRanks.get(ids[i] * 65536 + ids[i + 1]);
      if (merge && merge[0] < bestRank) [best, bestRank, bestId] = [i, merge[0], merge[1]];
    }
    if (best < 0) break;
    ids.splice(best, 2, bestId);
  }
  out.push(...ids);
}

/**
 * Encodes a phoneme string into the model's token ids, wrapped as `1 … 2` (`<bos>` … `</eos>`).
 *
 * Each code point maps to its id (characters outside the vocabulary become `<unk>` = 0, one per
 * code point), then the adjacent id pair with the lowest merge rank is merged repeatedly, leftmost
 * first on ties. Literal `<unk>`, `<bos>`, `</eos>` and `<mask>` in the input become ids 0–3 and no
 * merge crosses them.
 *
 * @param phonemes IPA text as `phonemize` returns it.
 * @returns The token ids, starting with 1 and ending with 2.
 *
 * @example Tokenize the model's own sample sentence
 * ```ts
 * import { tokenizePhonemes } from "@valle/core";
 * const ids = tokenizePhonemes("həlˈoʊ wˈɜːld.");
 * console.assert(ids.join(" ") === "1 22 111 100 4 37 115 169 11 2");
 * ```
 */
export function tokenizePhonemes(phonemes: string): number[] {
  const out = [BOS];
  let start = 0;
  while (start < phonemes.length) {
    let at = phonemes.length;
    let added = -1;
    for (let id = 0; id < ADDED_TOKENS.length; id++) {
      const i = phonemes.indexOf(ADDED_TOKENS[id], start);
      if (i >= 0 && i < at) [at, added] = [i, id];
    }
    encodePiece(phonemes.slice(start, at), out);
    if (added < 0) break;
    out.push(added);
    start = at + ADDED_TOKENS[added].length;
  }
  out.push(EOS);
  return out;
}
