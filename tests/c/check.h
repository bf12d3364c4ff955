/* Check macros shared by the C tests: count every check, print each failure with the SDK's last
 * error, and let main() return failures != 0. */
#ifndef KP_TEST_CHECK_H
#define KP_TEST_CHECK_H

#include <kitepush.h>
#include <stdio.h>

static int checks, failures;

static inline void check_failed(const char *file, int line, const char *what)
{
    failures++;
    fprintf(stderr, "%s:%d: FAIL %s (last error: \"%s\")\n", file, line, what, kp_last_error_message());
}

static inline void check_rc_failed(const char *file, int line, const char *what, int got, int want)
{
    failures++;
    fprintf(stderr, "%s:%d: FAIL %s: got %d (%s), want %d (%s); last error: \"%s\"\n", file, line, what,
            got, kp_result_str(got), want, kp_result_str(want), kp_last_error_message());
}

#define CHECK(cond)                                                                             \
    do {                                                                                        \
        checks++;                                                                               \
        if (!(cond))                                                                            \
            check_failed(__FILE__, __LINE__, #cond);                                            \
    } while (0)

#define CHECK_RC(call, want)                                                                    \
    do {                                                                                        \
        kp_result got_ = (call);                                                                \
        checks++;                                                                               \
        if (got_ != (want))                                                                     \
            check_rc_failed(__FILE__, __LINE__, #call, got_, (want));                           \
    } while (0)

#endif
