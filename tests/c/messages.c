/*
 * messages: kp_pusher_send_message and its settings through the C API.
 *
 *   messages URL   publishes 60 frames (2 s) to URL with a message on frames 10 and 40 (the
 *                  second also as an AMF data message), a custom UUID and capture timestamps on
 *                  keyframes; checks the documented errors and the message counters. The Rust
 *                  side (tests/c_abi.rs) finds both messages in the server's recording.
 *
 * Exit status 0 only if every check passed.
 */
#define _POSIX_C_SOURCE 200809L

#include <kitepush.h>

#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 320
#define H 240
#define FPS 30
#define FRAMES 60

struct status {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int published, failed;
};

static void on_event(void *userdata, const kp_event *ev)
{
    struct status *st = (struct status *)userdata;
    pthread_mutex_lock(&st->lock);
    if (ev->kind == KP_EVENT_PUBLISHING)
        st->published = 1;
    else if (ev->kind == KP_EVENT_FAILED)
        st->failed = 1;
    pthread_cond_broadcast(&st->changed);
    pthread_mutex_unlock(&st->lock);
}

static int wait_published(struct status *st, int timeout_s)
{
    struct timespec deadline;
    int published;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;
    pthread_mutex_lock(&st->lock);
    while (!st->published && !st->failed)
        if (pthread_cond_timedwait(&st->changed, &st->lock, &deadline) != 0)
            break;
    published = st->published;
    pthread_mutex_unlock(&st->lock);
    return published;
}

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static uint8_t picture[W * H * 3 / 2];
static uint8_t too_big[4097];

static kp_video_frame i420_frame(int n)
{
    kp_video_frame f;
    memset(picture, (int)(n * 4 % 256), W * H);
    memset(picture + W * H, 128, W * H / 2);
    memset(&f, 0, sizeof f);
    f.format = KP_PIXEL_FORMAT_I420;
    f.width = W;
    f.height = H;
    f.planes[0] = picture;
    f.planes[1] = picture + W * H;
    f.planes[2] = picture + W * H * 5 / 4;
    f.strides[0] = W;
    f.strides[1] = f.strides[2] = W / 2;
    f.plane_sizes[0] = W * H;
    f.plane_sizes[1] = f.plane_sizes[2] = W * H / 4;
    return f;
}

int main(int argc, char **argv)
{
    /* Zero runs that emulation prevention must escape, and the counter the Rust side checks. */
    static const uint8_t first[] = {'c', '-', 'm', 's', 'g', ' ', '1', 0, 0, 0, 1, 0, 0, 3};
    static const char second[] = "c-msg 2: price 19.99";
    static const uint8_t uuid[16] = {'c', '-', 'a', 'b', 'i', '-', 'm', 'e', 's', 's', 'a', 'g', 'e', 's', '!', '!'};
    struct status st;
    kp_config *cfg;
    kp_pusher *p = NULL;
    kp_video_frame f;
    kp_stats stats;
    kp_destination_stats dstats;
    int n;

    if (argc != 2) {
        fprintf(stderr, "usage: %s URL\n", argv[0]);
        return 2;
    }
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.changed, NULL);

    cfg = kp_config_new();
    CHECK_RC(kp_config_set_message_uuid(NULL, uuid), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_capture_timestamps(cfg, 7), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_message_amf_name(cfg, NULL), KP_OK);
    CHECK_RC(kp_config_set_url(cfg, argv[1]), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W, H, FPS, 500, FPS), KP_OK);
    CHECK_RC(kp_config_disable_audio(cfg), KP_OK);
    CHECK_RC(kp_config_set_message_uuid(cfg, uuid), KP_OK);
    CHECK_RC(kp_config_set_capture_timestamps(cfg, KP_CAPTURE_TIMESTAMPS_KEYFRAMES), KP_OK);
    CHECK_RC(kp_config_set_event_callback(cfg, on_event, &st), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_config_free(cfg);
    if (!p)
        return 1;
    CHECK_RC(kp_pusher_send_message(p, first, sizeof first, 0), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_start(p), KP_OK);
    CHECK(wait_published(&st, 10));

    CHECK_RC(kp_pusher_send_message(NULL, first, sizeof first, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_send_message(p, NULL, 4, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_send_message(p, first, 0, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_send_message(p, too_big, sizeof too_big, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(kp_last_error_message(), "4096") != NULL);
    CHECK_RC(kp_pusher_send_message(p, first, sizeof first, 0x80), KP_ERR_INVALID_ARGUMENT);
    /* AMF twins are text: a message with a byte that is not UTF-8 is refused. */
    CHECK_RC(kp_pusher_send_message(p, too_big, 1, KP_MESSAGE_AMF), KP_OK);
    too_big[0] = 0xff;
    CHECK_RC(kp_pusher_send_message(p, too_big, 1, KP_MESSAGE_AMF), KP_ERR_INVALID_ARGUMENT);

    for (n = 0; n < FRAMES; n++) {
        if (n == 10)
            CHECK_RC(kp_pusher_send_message(p, first, sizeof first, KP_MESSAGE_SEI_ONLY), KP_OK);
        if (n == 40)
            CHECK_RC(kp_pusher_send_message(p, (const uint8_t *)second, strlen(second), KP_MESSAGE_AMF), KP_OK);
        f = i420_frame(n);
        CHECK_RC(kp_pusher_push_video(p, &f, (int64_t)n * 1000000 / FPS), KP_OK);
        sleep_ms(1000 / FPS);
    }
    CHECK_RC(kp_pusher_stop(p, 10000), KP_OK);
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK_RC(kp_pusher_get_stats(p, &stats), KP_OK);
    /* The one-byte AMF message of the error checks, and the two of the loop. */
    CHECK(stats.messages_accepted == 3);
    CHECK(stats.messages_sent == 3);
    CHECK(stats.messages_dropped == 0);
    memset(&dstats, 0, sizeof dstats);
    dstats.struct_size = sizeof dstats;
    CHECK_RC(kp_pusher_get_destination_stats(p, 0, &dstats), KP_OK);
    CHECK(dstats.messages_sent == 3 && dstats.messages_dropped == 0);
    CHECK_RC(kp_pusher_send_message(p, first, sizeof first, 0), KP_ERR_NOT_STARTED);
    kp_pusher_free(p);
    pthread_mutex_destroy(&st.lock);
    pthread_cond_destroy(&st.changed);
    printf("messages: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
