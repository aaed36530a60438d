/* echo: a C guest that returns the request body unchanged, with its content type.
 * Build: clang-14 --target=wasm32-wasi -Os -s -o echo.wasm echo.c */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *type = getenv("CONTENT_TYPE");
    printf("Content-Type: %s\n\n", (type && *type) ? type : "application/octet-stream");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        fwrite(buf, 1, n, stdout);
    }
    return 0;
}
