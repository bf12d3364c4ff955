/*
 * formats: the camera pixel formats and the x264 settings through the C API.
 *
 *   formats URL   publishes 20 frames in each of YUY2, UYVY, RGBA, BGRA and NV21 (padded strides,
 *                 one stream), then 20 written in place into video slots
 *                 (kp_pusher_acquire_video_slot), to URL, checks the documented errors of packed frames, and the x264
 *                 setters; KP_ENCODER_X264 is either in this build (a pusher is created) or
 *                 refused with KP_ERR_UNSUPPORTED and a message naming the cargo feature.
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
#define PAD 16
#define PER_FORMAT 20

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

/* One packed picture of `bpp` bytes per pixel with a moving gradient, rows PAD bytes apart. */
static uint8_t packed[(W * 4 + PAD) * H];
static uint8_t planes[(W + PAD) * H * 2];

static kp_video_frame packed_frame(kp_pixel_format format, int bpp, int n)
{
    kp_video_frame f;
    size_t stride = (size_t)W * bpp + PAD, x, y;
    for (y = 0; y < H; y++)
        for (x = 0; x < (size_t)W * bpp; x++)
            packed[y * stride + x] = (uint8_t)(x + y + (size_t)n * 3);
    memset(&f, 0, sizeof f);
    f.format = format;
    f.width = W;
    f.height = H;
    f.planes[0] = packed;
    f.strides[0] = (uint32_t)stride;
    /* The last row without its padding, as Android's Image planes end. */
    f.plane_sizes[0] = stride * (H - 1) + (size_t)W * bpp;
    return f;
}

static kp_video_frame nv21_frame(int n)
{
    kp_video_frame f;
    size_t stride = W + PAD;
    memset(planes, (int)(n * 5 % 256), sizeof planes);
    memset(&f, 0, sizeof f);
    f.format = KP_PIXEL_FORMAT_NV21;
    f.width = W;
    f.height = H;
    f.planes[0] = planes;
    f.planes[1] = planes + stride * H;
    f.strides[0] = f.strides[1] = (uint32_t)stride;
    f.plane_sizes[0] = stride * H;
    f.plane_sizes[1] = stride * H / 2;
    return f;
}

static int accepted(kp_result r)
{
    return r == KP_OK || r == KP_ERR_QUEUE_FULL;
}

static void check_x264_config(const char *url)
{
    kp_config *cfg = kp_config_new();
    kp_pusher *p = NULL;
    kp_result r;
    CHECK_RC(kp_config_set_url(cfg, url), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W, H, FPS, 800, FPS), KP_OK);
    CHECK_RC(kp_config_disable_audio(cfg), KP_OK);
    CHECK_RC(kp_config_set_video_encoder(cfg, KP_ENCODER_X264), KP_OK);
    CHECK_RC(kp_config_set_x264_preset(cfg, "superfast", NULL, "main"), KP_OK);
    CHECK_RC(kp_config_set_x264_vbv(cfg, 1000, 500), KP_OK);
    CHECK_RC(kp_config_set_x264_threading(cfg, KP_X264_THREADING_SLICED), KP_OK);
    CHECK_RC(kp_config_set_x264_threading(cfg, 99), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_x264_bframes(cfg, 2), KP_OK);
    CHECK_RC(kp_config_set_video_threads(cfg, 2), KP_OK);
    r = kp_pusher_new(cfg, &p);
    if (r == KP_ERR_UNSUPPORTED) {
        CHECK(p == NULL);
        CHECK(strstr(kp_last_error_message(), "cargo feature `x264`") != NULL);
        printf("x264: not in this build (%s)\n", kp_last_error_message());
    } else {
        CHECK_RC(r, KP_OK);
        printf("x264: in this build\n");
        kp_pusher_free(p);
        p = NULL;
        /* Settings x264 refuses are caught when the pusher is made. */
        CHECK_RC(kp_config_set_x264_preset(cfg, "warp9", NULL, NULL), KP_OK);
        CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
        CHECK(p == NULL);
    }
    kp_config_free(cfg);
}

static void check_formats(const char *url)
{
    struct status st;
    kp_config *cfg = kp_config_new();
    kp_pusher *p = NULL;
    kp_video_frame f;
    kp_stats stats;
    int64_t pts = 0;
    int n, k;
    static const struct {
        kp_pixel_format format;
        int bpp;
    } packed_formats[] = {
        {KP_PIXEL_FORMAT_YUY2, 2},
        {KP_PIXEL_FORMAT_UYVY, 2},
        {KP_PIXEL_FORMAT_RGBA, 4},
        {KP_PIXEL_FORMAT_BGRA, 4},
    };

    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.changed, NULL);
    CHECK_RC(kp_config_set_url(cfg, url), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W, H, FPS, 600, FPS), KP_OK);
    CHECK_RC(kp_config_disable_audio(cfg), KP_OK);
    CHECK_RC(kp_config_set_event_callback(cfg, on_event, &st), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_config_free(cfg);
    if (!p)
        goto out;
    CHECK_RC(kp_pusher_start(p), KP_OK);
    CHECK(wait_published(&st, 10));

    for (k = 0; k < 5; k++) {
        for (n = 0; n < PER_FORMAT; n++) {
            f = k < 4 ? packed_frame(packed_formats[k].format, packed_formats[k].bpp, n) : nv21_frame(n);
            CHECK(accepted(kp_pusher_push_video(p, &f, pts)));
            pts += 1000000 / FPS;
            sleep_ms(1000 / FPS);
        }
        if (k < 4) {
            /* One byte short, a stride narrower than a row, and a plane 1 where none belongs. */
            f = packed_frame(packed_formats[k].format, packed_formats[k].bpp, 0);
            f.plane_sizes[0] -= 1;
            CHECK_RC(kp_pusher_push_video(p, &f, pts), KP_ERR_BAD_FRAME_SIZE);
            f = packed_frame(packed_formats[k].format, packed_formats[k].bpp, 0);
            f.strides[0] = (uint32_t)(W * packed_formats[k].bpp - 2);
            CHECK_RC(kp_pusher_push_video(p, &f, pts), KP_ERR_BAD_FRAME_SIZE);
            f = packed_frame(packed_formats[k].format, packed_formats[k].bpp, 0);
            f.width = W / 2; /* consistent in itself, but not the configured size */
            CHECK_RC(kp_pusher_push_video(p, &f, pts), KP_ERR_BAD_DIMENSIONS);
        }
    }
    f = packed_frame(KP_PIXEL_FORMAT_BGRA, 4, 0);
    f.format = KP_PIXEL_FORMAT_BGRA + 1;
    CHECK_RC(kp_pusher_push_video(p, &f, pts), KP_ERR_BAD_PIXEL_FORMAT);

    /* Written in place: a slot lent by the pusher, the frame drawn straight into its planes. */
    for (n = 0; n < PER_FORMAT; n++) {
        kp_video_slot *slot = NULL, *second = NULL, *third = NULL;
        kp_video_slot_layout layout, other;
        size_t row;
        memset(&layout, 0, sizeof layout);
        layout.struct_size = sizeof layout;
        other = layout;
        CHECK_RC(kp_pusher_acquire_video_slot(p, &slot, &layout), KP_OK);
        if (!slot)
            break;
        CHECK(layout.width == W && layout.height == H && layout.strides[0] == W && layout.strides[1] == W / 2);
        CHECK(layout.plane_sizes[0] == (size_t)W * H && layout.plane_sizes[2] == (size_t)W * H / 4);
        for (row = 0; row < H; row++)
            memset(layout.planes[0] + row * layout.strides[0], (int)((row + (size_t)n * 7) % 220 + 16), W);
        memset(layout.planes[1], 90, layout.plane_sizes[1]);
        memset(layout.planes[2], 160, layout.plane_sizes[2]);
        if (n == 0) {
            /* Two may be out at once, not three; one given back unused is not sent. */
            CHECK_RC(kp_pusher_acquire_video_slot(p, &second, &other), KP_OK);
            CHECK_RC(kp_pusher_acquire_video_slot(p, &third, &other), KP_ERR_INVALID_STATE);
            CHECK(third == NULL);
            kp_video_slot_free(second);
            CHECK_RC(kp_pusher_acquire_video_slot(p, NULL, &other), KP_ERR_INVALID_ARGUMENT);
        }
        CHECK(accepted(kp_pusher_submit_video_slot(p, slot, pts)));
        pts += 1000000 / FPS;
        sleep_ms(1000 / FPS);
    }

    CHECK_RC(kp_pusher_stop(p, 10000), KP_OK);
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK_RC(kp_pusher_get_stats(p, &stats), KP_OK);
    printf("formats: sent %llu video frames, rejected %llu\n", (unsigned long long)stats.video_frames_sent,
           (unsigned long long)stats.frames_rejected);
    CHECK(stats.video_frames_sent == 6 * PER_FORMAT);
    /* 3 bad frames per packed format; the unknown format is refused at the ABI edge, before the
       pusher sees (and counts) a frame; the third slot is refused (counted) as well. */
    CHECK(stats.frames_rejected == 13);
    kp_pusher_free(p);
out:
    pthread_cond_destroy(&st.changed);
    pthread_mutex_destroy(&st.lock);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: formats URL\n");
        return 2;
    }
    check_x264_config(argv[1]);
    check_formats(argv[1]);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
