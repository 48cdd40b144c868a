/* SPDX-License-Identifier: MIT */
/*
 * Description: libFuzzer target for ringctx-objd's request parser
 * (tools/objd/http.c) and key decoding (tools/objd/path.c): any bytes, as
 * one buffer and as every prefix a recv could deliver, must give a head
 * length within the buffer, "more", or an HTTP error status; a Range must
 * resolve inside the object; a decoded key never holds a NUL, a "." or ".."
 * segment, or a leading '/'.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "path.h"

static void check_key(const struct http_req *r)
{
	char key[OBJD_KEY_MAX];
	size_t n;

	if (key_from_target(r->target.p, r->target.n, key, sizeof(key)))
		return;
	n = strlen(key);
	if (n == 0 || key[0] == '/' || key[n - 1] == '/' || strstr(key, "//"))
		abort();
	for (char *s = key; s; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL)
		if ((s[0] == '.' && (s[1] == '/' || !s[1])) ||
		    (s[0] == '.' && s[1] == '.' && (s[2] == '/' || !s[2])))
			abort();
}

static void check_range(const struct http_req *r, uint64_t size)
{
	uint64_t a = 0, b = 0;
	int res = http_range(r->range, size, &a, &b);

	if (res == 1 && (a > b || b >= size))
		abort();
	if (res != 0 && res != 1 && res != -416)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_limits lim = { 256, 1024 };
	struct http_req r;
	int res, full;

	full = http_parse((const char *)data, size, &lim, &r);
	if (full > 0) {
		if ((size_t)full > size || (size_t)full > lim.max_head)
			abort();
		check_key(&r);
		check_range(&r, 0);
		check_range(&r, 1);
		check_range(&r, size);
	} else if (full != 0 && full != -400 && full != -414 && full != -417 &&
		   full != -431 && full != -505) {
		abort();
	}
	/* A complete head is found in every longer prefix at the same place. */
	for (size_t n = 0; n < size && n < 64; n++) {
		res = http_parse((const char *)data, n, &lim, &r);
		if (full > 0 && res > 0 && res != full)
			abort();
	}
	return 0;
}
