/**
 * The formatting that Python's `phonemizer` (3.3, espeak backend) wraps around espeak-ng, copied
 * rule for rule: punctuation marks are cut out before espeak and pasted back verbatim with the
 * whitespace around them, the text between marks is phonemized chunk by chunk, and each espeak
 * result is cleaned the way `EspeakBackend._postprocess_line` does (`preserve_punctuation=True`,
 * `with_stress=True`, `strip=True`, word separator " ", `language_switch="keep-flags"`). It does not
 * call espeak itself: the caller passes the function that turns one chunk into phonemes.
 *
 * This module is browser compatible.
 *
 * @module
 */

/** Python's `str.isspace()` characters, which its `re` module's `\s` and `str.strip()` use. */
const SPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/** phonemizer 3.3's default marks: `;:,.!?¡¿—…"«»“”(){}[]`. */
const MARKS = ';:,.!?¡¿—…"«»“”(){}\\[\\]';
/** `(\s*[marks]+\s*)+`, the regex phonemizer cuts marks with. */
const MARKS_RE = new RegExp(`(?:[${SPACE}]*[${MARKS}]+[${SPACE}]*)+`, "gu");
const STRIP_RE = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "gu");

/** Python's `str.strip()`: JS `trim()` differs on U+FEFF, U+001C–U+001F and U+0085. */
function pyStrip(text: string): string {
  return text.replace(STRIP_RE, "");
}

/**
 * Cleans one espeak result as `EspeakBackend._postprocess_line` does: strip, newlines to spaces,
 * one pass of double spaces to one, `_` runs (espeak's phone separator) dropped, stress kept.
 */
function postprocess(raw: string): string {
  const line = pyStrip(raw).replaceAll("\n", " ").replaceAll("  ", " ")
    .replace(/_+/g, "_").replaceAll("_ ", " ");
  if (!line) return "";
  return line.split(" ").map((word) => pyStrip(word).replaceAll("_", "")).join(" ");
}

/** Where a mark sits in the text: begin, inside, end (phonemizer's `_MarkIndex.position`). */
type Position = "B" | "I" | "E";

/**
 * Phonemizes `text` the way `EspeakBackend.phonemize([text], strip=True)[0]` does.
 *
 * @param text The text, one utterance (newlines inside it are kept as text).
 * @param convert Phonemizes one chunk with no marks: espeak's clause results joined with " ".
 * @returns The phoneme string, or `undefined` where phonemizer returns no line at all (empty text).
 */
export async function phonemizeLikePhonemizer(
  text: string,
  convert: (chunk: string) => Promise<string>,
): Promise<string | undefined> {
  const matches = [...text.matchAll(MARKS_RE)];
  if (matches.length === 1 && matches[0][0] === text) return text;
  // Punctuation.preserve: cut the text at each mark; empty chunks are dropped.
  const marks: { mark: string; position: Position }[] = [];
  const chunks: string[] = [];
  let rest = 0;
  for (const [i, m] of matches.entries()) {
    const position = i === 0 && m.index === 0
      ? "B"
      : i === matches.length - 1 && m.index + m[0].length === text.length
      ? "E"
      : "I";
    marks.push({ mark: m[0], position });
    chunks.push(text.slice(rest, m.index));
    rest = m.index + m[0].length;
  }
  chunks.push(text.slice(rest));
  const pieces: string[] = [];
  for (const chunk of chunks) if (chunk) pieces.push(postprocess(await convert(chunk)));
  return restore(pieces, marks);
}

/** `Punctuation.restore` for one line with `strip=True` and word separator " ". */
function restore(
  pieces: string[],
  marks: { mark: string; position: Position }[],
): string | undefined {
  const out: string[] = [];
  for (const [i, { mark, position }] of marks.entries()) {
    if (!pieces.length) {
      // Nothing left to attach to: the remaining marks go out alone, joined.
      out.push(marks.slice(i).map((m) => m.mark).join(""));
      break;
    }
    if (pieces[0].endsWith(" ")) pieces[0] = pieces[0].slice(0, -1);
    if (position === "B") pieces[0] = mark + pieces[0];
    else if (position === "E") out.push(pieces.shift() + mark);
    else if (pieces.length === 1) pieces[0] += mark;
    else pieces.splice(0, 2, pieces[0] + mark + pieces[1]);
  }
  out.push(...pieces);
  return out.length ? out[0] : undefined;
}
