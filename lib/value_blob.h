/* SPDX-License-Identifier: MIT */
/*
 * TEMPORARY: the declaration of rctx__value_blob() until lib/context.c and
 * lib/internal.h provide it; then delete this file and lib/value_blob.c.
 */
#ifndef RINGCTX_VALUE_BLOB_H
#define RINGCTX_VALUE_BLOB_H

#include <stddef.h>

struct rctx;

/*
 * A value context under parent whose value is a block of size bytes in the
 * node's own allocation (freed with it): *blob points to it and
 * rctx_value(ctx, key) returns it. The caller fills the block before
 * publishing the context. NULL on out-of-memory.
 */
struct rctx *rctx__value_blob(struct rctx *parent, const void *key, size_t size,
			      void **blob);

#endif /* RINGCTX_VALUE_BLOB_H */
