/* SPDX-License-Identifier: MIT */
/*
 * path.c - key decoding. The kernel's RESOLVE_BENEATH (openat2) is the real
 * guard against escapes (symlinks, races); refusing ".." here only makes the
 * answer a clean 400 instead of a resolution error.
 */
#include <string.h>

#include "path.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int decode(const char *in, size_t n, char *out, size_t cap, size_t *outn)
{
	size_t o = 0;

	for (size_t i = 0; i < n && in[i] != '?' && in[i] != '#'; i++) {
		char c = in[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -400;
			hi = hexval(in[i + 1]);
			lo = hexval(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -400;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0')
			return -400;
		if (o + 1 >= cap)
			return -400;
		out[o++] = c;
	}
	out[o] = '\0';
	*outn = o;
	return 0;
}

/* Drop empty segments, refuse dot segments and temporary names. */
static int normalise(char *s)
{
	char *r = s, *w = s;

	while (*r) {
		char *seg;
		size_t len;

		while (*r == '/')
			r++;
		if (!*r)
			break;
		seg = r;
		while (*r && *r != '/')
			r++;
		len = r - seg;
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return -400;
		if (len >= strlen(OBJD_TMP_PREFIX) &&
		    !memcmp(seg, OBJD_TMP_PREFIX, strlen(OBJD_TMP_PREFIX)))
			return -404;
		if (w != s)
			*w++ = '/';
		memmove(w, seg, len);
		w += len;
	}
	*w = '\0';
	return w == s ? -404 : 0;
}

int key_from_target(const char *target, size_t n, char *out, size_t cap)
{
	size_t len;
	int err;

	if (cap == 0)
		return -400;
	err = decode(target, n, out, cap, &len);
	if (err)
		return err;
	return normalise(out);
}

void key_split(char *key, const char **dir, const char **base)
{
	char *slash = strrchr(key, '/');

	if (!slash) {
		*dir = ".";
		*base = key;
		return;
	}
	*slash = '\0';
	*dir = key;
	*base = slash + 1;
}
