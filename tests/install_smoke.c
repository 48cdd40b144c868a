/* Description: a program built against an installed ringctx (pkg-config)
 * creates, cancels and queries contexts; prints "1 passed, 0 failed". */
#include <errno.h>
#include <stdio.h>
#include <ringctx.h>

int main(int argc, char **argv)
{
	rctx_t *c = rctx_with_cancel(rctx_background());
	int ok = c && rctx_err(c) == 0 && rctx_cancel(c) == 1 &&
		 rctx_err(c) == -ECANCELED && rctx_sleep(c, 1000000000) == -ECANCELED;

	rctx_release(c);
	printf("install (%s): %d passed, %d failed\n", argc > 1 ? argv[1] : "", ok, !ok);
	return !ok;
}
