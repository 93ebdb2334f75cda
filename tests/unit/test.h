/* test.h: a tiny test harness.
 *
 * A test file defines functions `static void test_<behaviour>(void)` and a
 * main() that runs them with RUN(test_x). CHECK prints file:line, the test's
 * name and a message saying what differs, and the test binary exits 1 at the
 * end if any check failed (meson counts it as a failure). */
#ifndef FVLM_TEST_H
#define FVLM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures, t_checks;
static const char *t_current = "?";

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        t_checks++;                                                             \
        if (!(cond)) {                                                          \
            t_failures++;                                                       \
            fprintf(stderr, "%s:%d: %s: FAILED: ", __FILE__, __LINE__, t_current); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                      \
    CHECK((long long)(a) == (long long)(b), "%s = %lld, expected %s = %lld", #a, \
          (long long)(a), #b, (long long)(b))

#define CHECK_STR(a, b)                                                         \
    do {                                                                        \
        const char *sa_ = (a), *sb_ = (b);                                      \
        CHECK(sa_ && sb_ && strcmp(sa_, sb_) == 0, "%s = \"%s\", expected \"%s\"", #a, \
              sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                      \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                   \
    do {                                                                        \
        double da_ = (a), db_ = (b);                                            \
        CHECK(fabs(da_ - db_) <= (tol), "%s = %.9g, expected %.9g (tolerance %g)", #a, \
              da_, db_, (double)(tol));                                         \
    } while (0)

/* An FvErr-returning call that must succeed. */
#define CHECK_OK(call, err)                                                     \
    do {                                                                        \
        int rc_ = (call);                                                       \
        CHECK(rc_ == 0, "%s failed: %s", #call, (err)->msg);                    \
    } while (0)

#define RUN(fn)                                                                 \
    do {                                                                        \
        t_current = #fn;                                                        \
        fn();                                                                   \
    } while (0)

static inline int test_finish(void)
{
    if (t_failures) {
        fprintf(stderr, "%d of %d checks failed\n", t_failures, t_checks);
        return 1;
    }
    printf("%d checks passed\n", t_checks);
    return 0;
}

/* Path of ../shared/<rel> beside the source tree, or NULL when absent (tests
 * that need it skip: meson's exit code 77). */
static inline const char *shared_path(const char *rel, char *buf, size_t n)
{
    const char *root = getenv("FVLM_SHARED");
    if (root)
        snprintf(buf, n, "%s/%s", root, rel);
    else
        snprintf(buf, n, "%s/../shared/%s", FVLM_SOURCE_ROOT, rel);
    FILE *f = fopen(buf, "rb");
    if (!f)
        return NULL;
    fclose(f);
    return buf;
}

#endif
