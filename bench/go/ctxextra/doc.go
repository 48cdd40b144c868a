// Package ctxextra holds Go benchmarks that ringctx's bench_context runs but
// Go 1.19's src/context/benchmark_test.go does not have, in the same style.
package ctxextra
