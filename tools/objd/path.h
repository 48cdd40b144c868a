/* SPDX-License-Identifier: MIT */
/*
 * path.h - from a request target to an object key beneath the root.
 */
#ifndef OBJD_PATH_H
#define OBJD_PATH_H

#include <stddef.h>

/* Prefix of the temporary files of PUTs in progress: never served. */
#define OBJD_TMP_PREFIX ".objd-tmp."
#define OBJD_KEY_MAX 4096

/*
 * Decode the path of a request target (query dropped, percent-decoded) into
 * a key relative to the root: "a/b/c", no leading '/', no empty, "." or ".."
 * segment. Returns 0, -400 (bad escape, NUL, a "." or ".." segment, a key too
 * long for cap) or -404 (the root itself, or a temporary file's name).
 */
int key_from_target(const char *target, size_t n, char *out, size_t cap);

/*
 * Split a key in place into its directory ("." at the top) and base name.
 * *dir and *base point into key, or at a static ".".
 */
void key_split(char *key, const char **dir, const char **base);

#endif
