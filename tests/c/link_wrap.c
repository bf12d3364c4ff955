/* Link tests of the cleaned static archive (tests/c_link.rs): the C example (examples/c/push.c,
 * compiled with -Dmain=kp_example_main) linked together with what a firmware build brings along.
 *   -DCOLLIDE          defines names the bundled OpenH264 also defines (ThreadCreate, ...)
 *   -DNIGHTLY          calls into a second Rust static library, built with the nightly toolchain
 *   -DSYSTEM_OPENH264  calls the system OpenH264 (-lopenh264) and prints its version; the example
 *                      logs the version of the OpenH264 kitepush encodes with
 */
#include <stdint.h>
#include <stdio.h>

int kp_example_main(int argc, char **argv);

#ifdef COLLIDE
/* Firmware helpers whose names OpenH264's platform layer uses too. */
int ThreadCreate(void) { return 1; }
int EventCreate(void) { return 2; }
int GetCPUCount(void) { return 3; }
uint32_t BitMask(uint32_t bits) { return bits ? (1u << (bits - 1)) : 0; }
#endif

#ifdef NIGHTLY
uint32_t nightly_lib_answer(void);
#endif

#ifdef SYSTEM_OPENH264
#include <wels/codec_api.h>
#endif

int main(int argc, char **argv)
{
#ifdef COLLIDE
    printf("firmware helpers: %d %d %d %u\n", ThreadCreate(), EventCreate(), GetCPUCount(), (unsigned)BitMask(4));
#endif
#ifdef NIGHTLY
    printf("nightly library: %u\n", (unsigned)nightly_lib_answer());
#endif
#ifdef SYSTEM_OPENH264
    {
        OpenH264Version v = WelsGetCodecVersion();
        printf("system OpenH264 %u.%u.%u\n", v.uMajor, v.uMinor, v.uRevision);
    }
#endif
    fflush(stdout);
    return kp_example_main(argc, argv);
}
