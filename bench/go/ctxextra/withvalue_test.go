package ctxextra

import (
	"context"
	"fmt"
	"testing"
)

type key int

// BenchmarkWithValue: per op, build a chain of `depth` WithValue contexts on
// Background (what bench_context's WithValue does with rctx_with_value).
func BenchmarkWithValue(b *testing.B) {
	for _, depth := range []int{10, 20, 30, 50, 100} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ctx := context.Background()
				for d := 0; d < depth; d++ {
					ctx = context.WithValue(ctx, key(d), d)
				}
				sink = ctx
			}
		})
	}
}

var sink context.Context
