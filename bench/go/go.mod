module ringctx.bench/go

go 1.19
