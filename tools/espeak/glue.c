/*
 * The little that espeak-ng 1.51 needs beside its own sources to link as a WASI reactor for the
 * phonemizer path (see build.sh). SPDX-License-Identifier: GPL-3.0-or-later, like espeak-ng.
 *
 * - malloc/free are exported so the host can pass text and the pointer that
 *   espeak_TextToPhonemes advances.
 * - tmpnam and system are only reached when espeak converts a sound-icon file with sox
 *   (soundicon.c), which the phonemizer never does; WASI has neither, so they fail as a libc
 *   without them would.
 */

#include <stdio.h>
#include <stdlib.h>

__attribute__((export_name("malloc"))) void *glue_malloc(size_t size) { return malloc(size); }

__attribute__((export_name("free"))) void glue_free(void *pointer) { free(pointer); }

char *tmpnam(char *name) {
	(void)name;
	return NULL;
}

int system(const char *command) {
	(void)command;
	return -1;
}
