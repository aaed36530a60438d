/* stress: a guest that misbehaves on purpose, to test the host's limits.
 * QUERY_STRING selects the failure: mode=loop (never returns), mode=alloc (grows
 * memory until refused), mode=trap (executes an unreachable instruction),
 * mode=exit (exits with status 3), mode=sleep&ms=N (answers "ok" after N ms,
 * a slow function for scaling tests). Anything else answers "ok". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile unsigned long sink;

int main(void) {
    const char *q = getenv("QUERY_STRING");
    if (!q) q = "";
    if (strstr(q, "mode=loop")) {
        for (;;) sink++;
    }
    if (strstr(q, "mode=alloc")) {
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) abort(); /* what a real program does when the allocator fails */
            memset(p, 1, 1 << 20);
            sink += (unsigned long)p[7];
        }
    }
    if (strstr(q, "mode=trap")) __builtin_trap();
    if (strstr(q, "mode=exit")) return 3;
    if (strstr(q, "mode=sleep")) {
        const char *ms = strstr(q, "ms=");
        long n = ms ? atol(ms + 3) : 100;
        struct timespec ts = { n / 1000, (n % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    printf("Content-Type: text/plain\n\nok\n");
    return 0;
}
