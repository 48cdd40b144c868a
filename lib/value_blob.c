/* SPDX-License-Identifier: MIT */
/*
 * TEMPORARY, minimal rctx__value_blob(): a value node followed by its value
 * in one allocation, which obj_free() releases with the node. A weak
 * definition, so that the real one in lib/context.c takes its place as soon
 * as it lands; then delete this file and lib/value_blob.h.
 */
#include <stdalign.h>

#include "internal.h"
#include "value_blob.h"

#define BLOB_OFFSET \
	((sizeof(struct rctx_value) + alignof(max_align_t) - 1) & \
	 ~(alignof(max_align_t) - 1))

__attribute__((weak))
struct rctx *rctx__value_blob(struct rctx *parent, const void *key, size_t size,
			      void **blob)
{
	struct rctx_value *v;

	if (size > SIZE_MAX - BLOB_OFFSET)
		return NULL;
	v = rctx__malloc(BLOB_OFFSET + size);
	if (!v)
		return NULL;
	hdr_init(&v->hdr, RCTX_VALUE, parent, 1);
	v->hdr.pool = 0; /* plain malloc: obj_free() gives it back to free() */
	v->hdr.home = 0;
	v->canc = rctx_governor(parent);
	v->key = key;
	v->val = (char *)v + BLOB_OFFSET;
	*blob = v->val;
	return &v->hdr;
}
