#!/usr/bin/env bash
# Builds espeak-ng 1.51 to WebAssembly (WASI, reactor) from Debian 12's source package and takes
# the data files the text front end needs from Debian's compiled data package, so that
# src/text/espeak151/ gives byte for byte what Python's phonemizer gets from Debian's native
# libespeak-ng 1.51 (the engine the VALL-E phoneme corpus was made with).
#
#   tools/espeak/build.sh                      # then: deno run -A tools/espeak/gen_module.ts
#
# Versions: espeak-ng 1.51+dfsg-10+deb12u2 (source package espeak-ng, binary espeak-ng-data),
# clang/lld 14.0.6 with wasi-libc 0.0~git20220510.9886d3d and libclang-rt-14-dev-wasm32,
# binaryen 108 (wasm-opt), patchutils (filterdiff), all from Debian 12 (bookworm). Run as root
# on Debian 12: the script installs that toolchain and downloads the two packages with apt-get
# (the `Types: deb-src` stanza must be enabled for `apt-get source`); it uses no other network.
#
# Source: `apt-get source` fetches the .dsc, the upstream tarball and Debian's patches, and
# dpkg-source unpacks them with the patches applied. Where the mirror lacks the upstream tarball
# (espeak-ng_1.51+dfsg.orig.tar.gz), set ESPEAK_UPSTREAM to a checkout of upstream tag 1.51
# (commit 2e9a5fccbb0095e87b2769e9249ea1f821918ecd of github.com/espeak-ng/espeak-ng, only its
# src/ is used): the src/ parts of Debian's patches (debian.tar.xz, in series order) are then
# applied to it, each required to apply cleanly.
#
# Build: the library sources that autotools compiles for Debian (Makefile.am), configured
# without klatt, speechPlayer, mbrola, sonic, pcaudiolib and async (none of them is on the
# phonemizer path), with Debian's own include flags (src/include/compat maps isw* to ucd-tools
# as natively; wchar.h comes first because wasi-libc's also declares isw*), each file compiled
# with -Oz, linked with dead-code removal so that only what espeak_Initialize,
# espeak_SetVoiceByName, espeak_TextToPhonemes and espeak_Info reach is kept, then stripped.
# No LTO: espeak 1.51 compares pointers into different buffers (dictionary.c, `word_end <
# translator->clause_end` for `$atend` words such as English "a"), so its output depends on the
# stack layout; LTO's cross-file inlining changed that layout and with it the output ("aª" read
# ˈeɪ ˈeɪ instead of native's ɐ ˈeɪ), per-file compilation keeps native's.
# glue.c exports malloc/free and stubs two libc calls WASI lacks (see there).
#
# Verified against Debian's native libespeak-ng 1.51 (same calls, Python ctypes): identical on
# 36,512 random mixed-script texts and 58,442 mostly-Latin ones (corpus words, symbols, digits,
# accents; all six voices), on the corpus in every voice and on a character sweep, except only
# Georgian words holding Cyrillic letters (ru_dict, below). Texts on which native 1.51 reads
# freed memory (AddressSanitizer; a word spelled across two foreign alphabets) are not
# reproducible natively either; the WebAssembly build agreed on 98.6% of those 5,046.
#
# Output ($OUT, default build/espeak/, ignored by git): espeak-ng.wasm and espeak-ng-data/ with
# only what the six voices read (strace of native espeak-ng and the source's language switches):
# phoneme tables, intonations, the voices' lang/ files (plus gmw/en, loaded by
# espeak_Initialize), their dictionaries, and the dictionaries espeak switches to from them
# (letters and words of other scripts, German's Polish letters). Not shipped: ru_dict (2 MB,
# reached only from Georgian words that contain Cyrillic), the voices/ variants and mbrola files.

set -euo pipefail

VERSION=1.51+dfsg-10+deb12u2
UPSTREAM_COMMIT=2e9a5fccbb0095e87b2769e9249ea1f821918ecd
TOOLS=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 binaryen dpkg-dev patchutils)
VOICES=(gmw/en gmw/en-US gmw/de roa/fr jpx/ja sit/cmn-Latn-pinyin ko)
DICTIONARIES=(en de fr ja cmn ko pl el hy hi bn pa gu ta te kn ml si ka)
DATA_FILES=(phontab phonindex phondata intonations)

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$ROOT/build/espeak}
WORK=$OUT.work

missing=()
for pkg in "${TOOLS[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

rm -rf "$WORK" "$OUT"
mkdir -p "$WORK/apt" "$OUT/espeak-ng-data"
cd "$WORK/apt"

# --- data: Debian's compiled espeak-ng-data package ---------------------------------------------
apt-get download -q "espeak-ng-data=$VERSION" 2>&1 |
  grep -v '^W: Download is performed unsandboxed' >&2 || true
dpkg-deb -x espeak-ng-data_"${VERSION}"_*.deb "$WORK/data"
DATA=$(echo "$WORK"/data/usr/lib/*/espeak-ng-data)

# --- source: Debian's source package ------------------------------------------------------------
apt-get source -q --download-only "espeak-ng=$VERSION" 2>&1 |
  grep -v '^W: Download is performed unsandboxed' >&2 || true
ORIG=espeak-ng_${VERSION%%-*}.orig.tar.gz
DEBIAN_TARBALL=espeak-ng_$VERSION.debian.tar.xz
[ -f "$DEBIAN_TARBALL" ] || { echo "build.sh: apt-get source gave no $DEBIAN_TARBALL" >&2; exit 1; }
SRC=$WORK/source
if [ -f "$ORIG" ]; then
  dpkg-source -x "espeak-ng_$VERSION.dsc" "$SRC" >&2
elif [ -n "${ESPEAK_UPSTREAM:-}" ]; then
  grep -q 'AC_INIT(\[eSpeak NG\], \[1.51\]' "$ESPEAK_UPSTREAM/configure.ac" || {
    echo "build.sh: $ESPEAK_UPSTREAM is not espeak-ng 1.51 (configure.ac)" >&2
    exit 1
  }
  echo "build.sh: $ORIG not on the mirror: using $ESPEAK_UPSTREAM + Debian's patches" >&2
  mkdir -p "$SRC"
  cp -r "$ESPEAK_UPSTREAM/src" "$SRC/src"
  tar -xJf "$DEBIAN_TARBALL" -C "$SRC"
  while read -r patch; do
    filterdiff -p1 -i 'src/*' "$SRC/debian/patches/$patch" >"$WORK/src.patch"
    [ -s "$WORK/src.patch" ] || continue
    patch -d "$SRC" -p1 -s --no-backup-if-mismatch <"$WORK/src.patch" >&2
    echo "build.sh: applied the src/ part of debian/patches/$patch" >&2
  done <"$SRC/debian/patches/series"
else
  echo "build.sh: $ORIG is not on the mirror; set ESPEAK_UPSTREAM to a checkout of" \
    "espeak-ng tag 1.51 ($UPSTREAM_COMMIT)" >&2
  exit 1
fi

# --- compile -------------------------------------------------------------------------------------
S=$SRC/src
cat >"$WORK/config.h" <<'EOF'
/* What configure finds for wasm32-wasi, less the options this build leaves out. */
#define PACKAGE_VERSION "1.51"
#define HAVE_ENDIAN_H 1
#define HAVE_STDINT_H 1
#define HAVE_INTTYPES_H 1
#define HAVE_UNISTD_H 1
EOF
sources=()
for f in case categories ctype proplist scripts tostring; do
  sources+=("$S/ucd-tools/src/$f.c")
done
# Makefile.am's src_libespeak_ng_la_SOURCES less the phoneme-table and mbrola compilers, which the
# phonemizer never reaches (compiledict.c stays: dictionary.c's trace output uses it).
for f in compiledict dictionary encoding error espeak_api ieee80 intonation mnemonics numbers \
  readclause phoneme phonemelist setlengths soundicon spect speech ssml synthdata synthesize \
  synth_mbrola translate tr_languages voices wavegen; do
  sources+=("$S/libespeak-ng/$f.c")
done
exports=()
for f in espeak_Initialize espeak_SetVoiceByName espeak_TextToPhonemes espeak_Info; do
  exports+=("-Wl,--export=$f")
done
clang-14 --target=wasm32-wasi -Oz -std=c99 -ffile-prefix-map="$SRC"=. \
  -I"$WORK" -I"$S/include" -I"$S/include/compat" -I"$S/ucd-tools/src/include" \
  -D_BSD_SOURCE -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200112L -DLIBESPEAK_NG_EXPORT \
  -include wchar.h \
  -DPATH_ESPEAK_DATA='"/espeak-ng-data"' -Wno-everything \
  -mexec-model=reactor "${exports[@]}" -Wl,-z,stack-size=1048576 -Wl,--strip-all \
  -o "$WORK/linked.wasm" "${sources[@]}" "$HERE/glue.c"
wasm-opt -Oz --strip-debug --strip-producers "$WORK/linked.wasm" -o "$OUT/espeak-ng.wasm"

# --- data files ----------------------------------------------------------------------------------
for f in "${DATA_FILES[@]}"; do cp "$DATA/$f" "$OUT/espeak-ng-data/$f"; done
for d in "${DICTIONARIES[@]}"; do cp "$DATA/${d}_dict" "$OUT/espeak-ng-data/${d}_dict"; done
for v in "${VOICES[@]}"; do
  mkdir -p "$(dirname "$OUT/espeak-ng-data/lang/$v")"
  cp "$DATA/lang/$v" "$OUT/espeak-ng-data/lang/$v"
done

(cd "$OUT" && find . -type f | sort | xargs sha256sum) >&2
echo "build.sh: wrote $OUT" >&2
