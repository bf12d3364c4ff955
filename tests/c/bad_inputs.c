/*
 * bad_inputs: checks the kitepush C API's documented answers to misuse.
 *
 *   bad_inputs            checks that need no server (a pusher aimed at a closed port is started)
 *   bad_inputs URL        also publishes to URL, injects bad calls mid-stream and keeps pushing
 *
 * Exit status 0 only if every check passed. Every failed check prints the call, the code it got,
 * the code it wanted and the library's last error message.
 */
#define _POSIX_C_SOURCE 200809L

#include <kitepush.h>

#include "check.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 320
#define H 240
#define FPS 30
#define RATE 48000
#define CH 2
#define CHUNK 960 /* 20 ms */
#define CLOSED_PORT_URL "rtmp://127.0.0.1:1/live/bad_inputs"


/* ---- events, written on the SDK thread ---- */

struct status {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int published, failed, stopped;
};

static void on_event(void *userdata, const kp_event *ev)
{
    struct status *st = (struct status *)userdata;
    printf("event kind=%d code=%d value=%lld %s\n", (int)ev->kind, (int)ev->code,
           (long long)ev->value, ev->message);
    fflush(stdout);
    pthread_mutex_lock(&st->lock);
    if (ev->kind == KP_EVENT_PUBLISHING)
        st->published = 1;
    else if (ev->kind == KP_EVENT_FAILED)
        st->failed = 1;
    else if (ev->kind == KP_EVENT_STOPPED)
        st->stopped = 1;
    pthread_cond_broadcast(&st->changed);
    pthread_mutex_unlock(&st->lock);
}

/* Waits for PUBLISHING or FAILED, up to timeout_s; returns 1 if publishing. */
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

/* ---- media ---- */

static uint8_t pixels[W * H * 3 / 2];
static int16_t pcm[CHUNK * CH];

static kp_video_frame good_frame(void)
{
    kp_video_frame f;
    memset(&f, 0, sizeof f);
    f.format = KP_PIXEL_FORMAT_I420;
    f.width = W;
    f.height = H;
    f.planes[0] = pixels;
    f.planes[1] = pixels + W * H;
    f.planes[2] = pixels + W * H * 5 / 4;
    f.strides[0] = W;
    f.strides[1] = f.strides[2] = W / 2;
    f.plane_sizes[0] = W * H;
    f.plane_sizes[1] = f.plane_sizes[2] = W * H / 4;
    return f;
}

/* A good frame may be dropped when the encoder is behind: that is not a failure. */
static int accepted(kp_result r)
{
    return r == KP_OK || r == KP_ERR_QUEUE_FULL;
}

/* Bad frames whose rejection is the pusher's job (counted in stats.frames_rejected); returns how
   many calls were made. Timestamps are after `pts` so only the frame itself is wrong. */
static int push_bad_frames(kp_pusher *p, int64_t pts)
{
    kp_video_frame f;
    int n = 0;

    f = good_frame(); /* Y plane shorter than stride * height */
    f.plane_sizes[0] = W * H - 1;
    CHECK_RC(kp_pusher_push_video(p, &f, pts + 1), KP_ERR_BAD_FRAME_SIZE);
    n++;

    f = good_frame(); /* stride narrower than a row */
    f.strides[0] = W - 2;
    CHECK_RC(kp_pusher_push_video(p, &f, pts + 2), KP_ERR_BAD_FRAME_SIZE);
    n++;

    f = good_frame(); /* chroma plane too small */
    f.plane_sizes[2] = W * H / 4 - 1;
    CHECK_RC(kp_pusher_push_video(p, &f, pts + 3), KP_ERR_BAD_FRAME_SIZE);
    n++;

    f = good_frame(); /* odd size */
    f.width = W - 1;
    CHECK_RC(kp_pusher_push_video(p, &f, pts + 4), KP_ERR_BAD_DIMENSIONS);
    n++;

    f = good_frame(); /* even, fits its buffers, but not the configured size */
    f.width = W / 2;
    f.height = H / 2;
    f.strides[0] = W / 2;
    f.strides[1] = f.strides[2] = W / 4;
    CHECK_RC(kp_pusher_push_video(p, &f, pts + 5), KP_ERR_BAD_DIMENSIONS);
    n++;

    f = good_frame(); /* NV12 needs its interleaved chroma plane to be W * H / 2 */
    f.format = KP_PIXEL_FORMAT_NV12;
    f.planes[2] = NULL;
    f.strides[1] = W;
    f.strides[2] = 0;
    f.plane_sizes[1] = W * H / 4;
    f.plane_sizes[2] = 0;
    CHECK_RC(kp_pusher_push_video(p, &f, pts + 6), KP_ERR_BAD_FRAME_SIZE);
    n++;
    return n;
}

/* Bad calls rejected at the C boundary, whatever the pusher's state (a NULL pusher is reported
   first). */
static void push_bad_pointers(kp_pusher *p)
{
    kp_video_frame f;
    kp_result bad_format = p ? KP_ERR_BAD_PIXEL_FORMAT : KP_ERR_INVALID_ARGUMENT;

    CHECK_RC(kp_pusher_push_video(p, NULL, 0), KP_ERR_INVALID_ARGUMENT);
    f = good_frame();
    f.planes[1] = NULL; /* NULL with a non-zero size */
    CHECK_RC(kp_pusher_push_video(p, &f, 0), KP_ERR_INVALID_ARGUMENT);
    f = good_frame();
    f.format = 77;
    CHECK_RC(kp_pusher_push_video(p, &f, 0), bad_format);
    f.format = -1;
    CHECK_RC(kp_pusher_push_video(p, &f, 0), bad_format);
    CHECK_RC(kp_pusher_push_audio(p, NULL, CHUNK, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_push_audio(p, (const int16_t *)(const void *)(pixels + 1), 1, 0),
             KP_ERR_INVALID_ARGUMENT); /* misaligned */
    CHECK_RC(kp_pusher_push_audio(p, pcm, (size_t)-1, 0), KP_ERR_INVALID_ARGUMENT); /* overflow */
    CHECK_RC(kp_pusher_push_h264(p, NULL, 10, 0, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_push_aac(p, NULL, 10, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_push_opus(p, NULL, 10, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_get_stats(p, NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_get_destination_stats(p, 0, NULL), KP_ERR_INVALID_ARGUMENT);
}

static kp_config *make_config(const char *url, struct status *st)
{
    kp_config *cfg = kp_config_new();
    CHECK(cfg != NULL);
    if (!cfg)
        exit(1);
    CHECK_RC(kp_config_set_url(cfg, url), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W, H, FPS, 500, 0), KP_OK);
    CHECK_RC(kp_config_set_audio(cfg, RATE, CH, 96), KP_OK);
    CHECK_RC(kp_config_set_timeouts(cfg, 2000, 2000), KP_OK);
    if (st)
        CHECK_RC(kp_config_set_event_callback(cfg, on_event, st), KP_OK);
    return cfg;
}

/* ---- checks without a pusher ---- */

static void check_static(void)
{
    int code, major = -1, minor = -1, patch = -1;
    kp_config *cfg;
    kp_pusher *p = NULL;
    kp_stats stats;
    static const char *const bad_urls[] = {
        "",
        "http://h/app/key",
        "rtmp://",
        "rtmp://host",
        "rtmp://host/app",
        "rtmp://host:0/app/key",
        "rtmp://host:99999/app/key",
        "rtmp://:1935/app/key",
        "rtmp://user:pw@host/app/key",
        "rtmp://host/app/ke y",
    };
    size_t i;
    const unsigned char bad_utf8[] = {'r', 't', 'm', 'p', 0xff, 0};

    /* version */
    CHECK(kp_version() != NULL && strcmp(kp_version(), KP_VERSION_STRING) == 0);
    CHECK(sscanf(kp_version(), "%d.%d.%d", &major, &minor, &patch) == 3);
    CHECK(major == KP_VERSION_MAJOR && minor == KP_VERSION_MINOR && patch == KP_VERSION_PATCH);

    /* result strings */
    for (code = KP_OK; code <= KP_ERR_INTERNAL; code++) {
        const char *s = kp_result_str(code);
        CHECK(s != NULL && s[0] != '\0');
    }
    CHECK(kp_result_str(-5) != NULL && kp_result_str(1000) != NULL);
    CHECK(strcmp(kp_result_str(KP_ERR_PAUSED), kp_result_str(1000)) != 0);
    CHECK(strcmp(kp_result_str(1000), kp_result_str(KP_ERR_INTERNAL)) != 0);
    CHECK(kp_last_error_message() != NULL);

    /* NULL everywhere */
    CHECK_RC(kp_config_set_url(NULL, "rtmp://h/a/k"), KP_ERR_INVALID_ARGUMENT);
    CHECK(kp_last_error_message()[0] != '\0');
    CHECK_RC(kp_config_set_video(NULL, W, H, FPS, 500, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_video_encoder(NULL, KP_ENCODER_OPENH264), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_video_threads(NULL, 1), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_disable_video(NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_audio(NULL, RATE, CH, 96), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_audio_encoder(NULL, KP_AUDIO_ENCODER_FDK_AAC), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_disable_audio(NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_timeouts(NULL, 1, 1), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_event_callback(NULL, on_event, NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_new(NULL, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK(p == NULL);
    CHECK_RC(kp_pusher_start(NULL), KP_ERR_INVALID_ARGUMENT);
    push_bad_pointers(NULL);
    CHECK_RC(kp_pusher_push_video(NULL, NULL, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_push_audio(NULL, pcm, CHUNK, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_push_h264(NULL, pixels, 4, 0, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_push_aac(NULL, pixels, 4, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_push_opus(NULL, pixels, 4, 0), KP_ERR_INVALID_ARGUMENT);
    {
        kp_video_slot *slot = NULL;
        kp_video_slot_layout layout;
        memset(&layout, 0, sizeof layout);
        layout.struct_size = sizeof layout;
        CHECK_RC(kp_pusher_acquire_video_slot(NULL, &slot, &layout), KP_ERR_INVALID_ARGUMENT);
        CHECK(slot == NULL);
        CHECK_RC(kp_pusher_submit_video_slot(NULL, NULL, 0), KP_ERR_INVALID_ARGUMENT);
        kp_video_slot_free(NULL);
    }
    CHECK_RC(kp_pusher_stop(NULL, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_pause(NULL, KP_PAUSE_STILL_IMAGE), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_resume(NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_set_pause_image(NULL, NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_set_video_bitrate(NULL, 500), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_request_keyframe(NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_network_changed(NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_srt(NULL, 120, NULL, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_refused_retry(NULL, true, 250, 5000), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_srt_stream_id(NULL, KP_SRT_STREAM_ID_SRS, "live/x"), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_set_audio_muted(NULL, true), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_pause_fps(NULL, 5.0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_encode_ladder(NULL, true, 0, 0.0f), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_add_encode_rung(NULL, 640, 360, 15.0f, KP_ENCODE_COMPLEXITY_LOW), KP_ERR_INVALID_ARGUMENT);
    CHECK(kp_pusher_get_state(NULL) == KP_STATE_FAILED);
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK_RC(kp_pusher_get_stats(NULL, &stats), KP_ERR_INVALID_ARGUMENT);
    {
        kp_destination_stats ds;
        memset(&ds, 0, sizeof ds);
        ds.struct_size = sizeof ds;
        CHECK_RC(kp_pusher_get_destination_stats(NULL, 0, &ds), KP_ERR_INVALID_ARGUMENT);
    }
    CHECK_RC(kp_config_add_backup_url(NULL, "rtmp://h/a/k"), KP_ERR_INVALID_ARGUMENT);
    {
        uint32_t index = 77;
        CHECK_RC(kp_config_add_destination(NULL, "rtmp://h/a/k", &index), KP_ERR_INVALID_ARGUMENT);
        CHECK(index == 77);
    }
    CHECK_RC(kp_config_add_destination_backup_url(NULL, 0, "rtmp://h/a/k"), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_reconnect(NULL, 0, 0.0, 0, 0, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_primary_retry_interval(NULL, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_url_refresh_callback(NULL, NULL, NULL, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_set_log_callback(NULL, NULL, 42), KP_ERR_INVALID_ARGUMENT);
    kp_config_free(NULL);
    kp_pusher_free(NULL);

    /* config values */
    cfg = make_config(CLOSED_PORT_URL, NULL);
    CHECK_RC(kp_pusher_new(cfg, NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_url(cfg, NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_url(cfg, (const char *)bad_utf8), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_video_encoder(cfg, 99), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_audio_encoder(cfg, -1), KP_ERR_INVALID_ARGUMENT);
    for (i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        p = NULL;
        CHECK_RC(kp_config_set_url(cfg, bad_urls[i]), KP_OK);
        CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_URL);
        CHECK(p == NULL); /* outputs are written only on success */
        CHECK(strstr(kp_last_error_message(), "URL") != NULL);
    }
    CHECK_RC(kp_config_set_url(cfg, "rtmp://h/live/topsecretkey"), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W + 1, H, FPS, 500, 0), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_BAD_DIMENSIONS);
    CHECK(strstr(kp_last_error_message(), "topsecretkey") == NULL);
    CHECK_RC(kp_config_set_video(cfg, W, H, -1.0, 500, 0), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_video(cfg, W, H, FPS, 500, 0), KP_OK);
    CHECK_RC(kp_config_set_pause_fps(cfg, 61.0), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(kp_last_error_message(), "pause frame rate") != NULL);
    CHECK_RC(kp_config_set_pause_fps(cfg, 0.0), KP_OK); /* the default */
    /* encode ladder: an unknown complexity at once; a rung larger than the configured video, and
       one not cheaper than the one before it, at kp_pusher_new */
    CHECK_RC(kp_config_set_encode_ladder(cfg, true, 0, 0.0f), KP_OK);
    CHECK_RC(kp_config_add_encode_rung(cfg, W, H, FPS / 2, 7), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_add_encode_rung(cfg, W * 2, H, FPS / 2, KP_ENCODE_COMPLEXITY_LOW), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(kp_last_error_message(), "ladder") != NULL);
    CHECK_RC(kp_config_set_encode_ladder(cfg, true, 0, 0.0f), KP_OK); /* forgets that rung */
    CHECK_RC(kp_config_add_encode_rung(cfg, W, H, FPS / 2, KP_ENCODE_COMPLEXITY_LOW), KP_OK);
    CHECK_RC(kp_config_add_encode_rung(cfg, W, H, FPS / 2, KP_ENCODE_COMPLEXITY_LOW), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_encode_ladder(cfg, false, 0, 0.0f), KP_OK);
    /* SRT: FFmpeg's microseconds in a libsrt URL, a short passphrase, an unknown key length or preset */
    CHECK_RC(kp_config_set_url(cfg, "srt://127.0.0.1:9000?latency=120000"), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_URL);
    CHECK(strstr(kp_last_error_message(), "microseconds") != NULL);
    CHECK_RC(kp_config_set_url(cfg, "srt://127.0.0.1:9000?streamid=%23!::r=live/x,m=publish"), KP_OK);
    CHECK_RC(kp_config_set_srt(cfg, 120, "short", 0), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(kp_last_error_message(), "passphrase") != NULL && strstr(kp_last_error_message(), "short") == NULL);
    CHECK_RC(kp_config_set_srt(cfg, 120, "a-long-enough-secret", 20), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_srt(cfg, 120, (const char *)bad_utf8, 16), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_srt_stream_id(cfg, 7, "live/x"), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_srt_stream_id(cfg, KP_SRT_STREAM_ID_MEDIAMTX, "cam1"), KP_OK);
    CHECK_RC(kp_config_set_srt(cfg, 0, NULL, 0), KP_OK); /* the defaults */
    CHECK(p == NULL);
    CHECK_RC(kp_config_set_url(cfg, "rtmp://h/live/topsecretkey"), KP_OK);
    CHECK_RC(kp_config_disable_video(cfg), KP_OK);
    CHECK_RC(kp_config_disable_audio(cfg), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT); /* no tracks */
    CHECK(p == NULL);
    kp_config_free(cfg);
}

/* ---- backups, destinations and the reconnect policy: refused at once or by kp_pusher_new ---- */

static size_t keep_url(void *userdata, uint32_t destination, uint32_t url_index, char *buf,
                       size_t buf_len)
{
    (void)userdata;
    (void)destination;
    (void)url_index;
    (void)buf;
    (void)buf_len;
    return 0;
}

/* A config that kp_pusher_new accepts, with one extra destination (index 1). */
static kp_config *destinations_config(void)
{
    uint32_t index = 0;
    kp_config *cfg = make_config(CLOSED_PORT_URL, NULL);
    CHECK_RC(kp_config_add_destination(cfg, "rtmp://127.0.0.1:1/live/second", &index), KP_OK);
    CHECK(index == 1);
    return cfg;
}

static void check_destinations(void)
{
    const unsigned char bad_utf8[] = {'r', 't', 'm', 'p', 0xff, 0};
    kp_config *cfg;
    kp_pusher *p = NULL;
    uint32_t index = 77;
    int i;

    /* refused at once: NULLs, bytes that are not UTF-8, destinations that do not exist */
    cfg = destinations_config();
    CHECK_RC(kp_config_add_backup_url(cfg, NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_add_backup_url(cfg, (const char *)bad_utf8), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_add_destination(cfg, NULL, &index), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_add_destination(cfg, (const char *)bad_utf8, &index), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_add_destination(cfg, "rtmp://h/live/k", NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK(index == 77); /* outputs are written only on success */
    CHECK_RC(kp_config_add_destination_backup_url(cfg, 1, NULL), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_add_destination_backup_url(cfg, 2, "rtmp://h/live/k"), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_add_destination_backup_url(cfg, 0xFFFFFFFFu, "rtmp://h/live/k"),
             KP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(kp_last_error_message(), "destination") != NULL);
    /* none of the refused calls changed the config: it still makes a pusher */
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_pusher_free(p);
    p = NULL;
    kp_config_free(cfg);

    /* a bad backup URL is reported by kp_pusher_new, like a bad primary, without the key */
    cfg = destinations_config();
    CHECK_RC(kp_config_add_backup_url(cfg, "http://backup/live/topsecretkey"), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_URL);
    CHECK(p == NULL);
    CHECK(strstr(kp_last_error_message(), "topsecretkey") == NULL);
    kp_config_free(cfg);
    cfg = destinations_config();
    CHECK_RC(kp_config_add_destination_backup_url(cfg, 0, "rtmp://backup"), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_URL);
    kp_config_free(cfg);
    cfg = destinations_config();
    CHECK_RC(kp_config_add_destination_backup_url(cfg, 1, "rtmp://backup:99999/live/k"), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_URL);
    kp_config_free(cfg);
    cfg = destinations_config();
    CHECK_RC(kp_config_add_destination(cfg, "", &index), KP_OK);
    CHECK(index == 2);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_URL);
    CHECK(p == NULL);
    kp_config_free(cfg);

    /* limits: 8 destinations, 8 URLs per destination */
    cfg = destinations_config();
    for (i = 2; i < 8; i++)
        CHECK_RC(kp_config_add_destination(cfg, "rtmp://h/live/k", &index), KP_OK);
    CHECK(index == 7);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_pusher_free(p);
    p = NULL;
    CHECK_RC(kp_config_add_destination(cfg, "rtmp://h/live/k", &index), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK(p == NULL);
    kp_config_free(cfg);
    cfg = destinations_config();
    for (i = 0; i < 8; i++)
        CHECK_RC(kp_config_add_destination_backup_url(cfg, 1, "rtmp://b/live/k"), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK(p == NULL);
    kp_config_free(cfg);

    /* reconnect values out of range are refused by kp_pusher_new */
    cfg = destinations_config();
    CHECK_RC(kp_config_set_reconnect(cfg, 0, 0.5, 0, 0, 0), KP_OK); /* shrinking delays */
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_reconnect(cfg, 0, 11.0, 0, 0, 0), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_reconnect(cfg, 0, NAN, 0, 0, 0), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_config_set_reconnect(cfg, 40000, 0.0, 0, 0, 0), KP_OK); /* above max_delay 30 s */
    CHECK_RC(kp_pusher_new(cfg, &p), KP_ERR_INVALID_ARGUMENT);
    CHECK(p == NULL);
    /* all zero: the defaults; then a URL refresh callback and a primary retry interval */
    CHECK_RC(kp_config_set_reconnect(cfg, 0, 0.0, 0, 0, 0), KP_OK);
    CHECK_RC(kp_config_set_primary_retry_interval(cfg, 0), KP_OK);
    CHECK_RC(kp_config_set_url_refresh_callback(cfg, keep_url, NULL, 0), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_pusher_free(p);
    kp_config_free(cfg);
}

/* A loopback socket that listens and never answers: the kernel completes the TCP handshake, so
 * a pusher aimed at it stays CONNECTING (waiting for the RTMP handshake) until its timeout. */
static int silent_listener(char *url, size_t len)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        perror("silent listener");
        exit(2);
    }
    snprintf(url, len, "rtmp://127.0.0.1:%u/live/bad_inputs", (unsigned)ntohs(a.sin_port));
    return fd;
}

/* ---- a pusher that is created, started against a server that never answers, and stopped ---- */

static void check_lifecycle(void)
{
    char url[64];
    int listener = silent_listener(url, sizeof url);
    kp_config *cfg = make_config(url, NULL);
    kp_pusher *p = NULL;
    kp_video_frame f = good_frame();
    unsigned char old[24];
    kp_stats stats;
    kp_destination_stats ds;
    size_t k;

    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_config_free(cfg); /* the pusher holds a copy */
    if (!p)
        return;
    CHECK(kp_pusher_get_state(p) == KP_STATE_IDLE);
    CHECK_RC(kp_pusher_push_video(p, &f, 0), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_push_audio(p, pcm, CHUNK, 0), KP_ERR_NOT_STARTED);
    push_bad_pointers(p);

    /* controls before start: pause and keyframes need a running pusher, the rest is kept */
    CHECK_RC(kp_pusher_pause(p, KP_PAUSE_STILL_IMAGE), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_resume(p), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_request_keyframe(p), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_network_changed(p), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_set_video_bitrate(p, 0), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_set_video_bitrate(p, 200001), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_set_video_bitrate(p, 800), KP_OK);
    CHECK_RC(kp_pusher_set_audio_muted(p, true), KP_OK);
    CHECK_RC(kp_pusher_set_audio_muted(p, false), KP_OK);
    CHECK_RC(kp_pusher_set_pause_image(p, NULL), KP_ERR_INVALID_ARGUMENT);
    {
        kp_video_frame small = f;
        small.width = W / 2;
        CHECK_RC(kp_pusher_set_pause_image(p, &small), KP_ERR_BAD_DIMENSIONS);
        small = f;
        small.format = 42;
        CHECK_RC(kp_pusher_set_pause_image(p, &small), KP_ERR_BAD_PIXEL_FORMAT);
    }
    CHECK_RC(kp_pusher_set_pause_image(p, &f), KP_OK);

    /* stats: too small, exact, and an older (shorter) struct */
    memset(&stats, 0xAB, sizeof stats);
    stats.struct_size = 0;
    CHECK_RC(kp_pusher_get_stats(p, &stats), KP_ERR_INVALID_ARGUMENT);
    stats.struct_size = 4;
    CHECK_RC(kp_pusher_get_stats(p, &stats), KP_ERR_INVALID_ARGUMENT);
    CHECK(stats.state == (kp_state)0xABABABAB); /* nothing written on failure */
    stats.struct_size = sizeof stats;
    CHECK_RC(kp_pusher_get_stats(p, &stats), KP_OK);
    CHECK(stats.struct_size == sizeof stats && stats.state == KP_STATE_IDLE);
    CHECK(stats.video_frames_in == 0 && stats.queue_ms == 0);
    memset(old, 0xCD, sizeof old);
    {
        uint32_t sz = 16; /* struct_size, state, video_frames_in */
        memcpy(old, &sz, sizeof sz);
    }
    CHECK_RC(kp_pusher_get_stats(p, (kp_stats *)(void *)old), KP_OK);
    for (k = 16; k < sizeof old; k++)
        CHECK(old[k] == 0xCD);
    CHECK(stats.destination_count == 1 && stats.url_index == 0 && stats.reconnects == 0);

    /* destination stats: too small, unknown destination, exact */
    memset(&ds, 0xAB, sizeof ds);
    ds.struct_size = 4;
    CHECK_RC(kp_pusher_get_destination_stats(p, 0, &ds), KP_ERR_INVALID_ARGUMENT);
    ds.struct_size = 0;
    CHECK_RC(kp_pusher_get_destination_stats(p, 0, &ds), KP_ERR_INVALID_ARGUMENT);
    ds.struct_size = sizeof ds;
    CHECK_RC(kp_pusher_get_destination_stats(p, 1, &ds), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_get_destination_stats(p, 0xFFFFFFFFu, &ds), KP_ERR_INVALID_ARGUMENT);
    CHECK(ds.state == (kp_state)0xABABABAB); /* nothing written on failure */
    CHECK_RC(kp_pusher_get_destination_stats(p, 0, &ds), KP_OK);
    CHECK(ds.struct_size == sizeof ds && ds.state == KP_STATE_IDLE && ds.url_index == 0);
    CHECK(ds.video_frames_sent == 0 && ds.reconnects == 0 && ds.outage_ms_total == 0);

    CHECK_RC(kp_pusher_start(p), KP_OK);
    CHECK_RC(kp_pusher_start(p), KP_ERR_INVALID_STATE);
    /* pushes are accepted while connecting (and reconnecting) */
    CHECK(accepted(kp_pusher_push_video(p, &f, 1000000)));
    CHECK_RC(kp_pusher_push_video(p, &f, 1000000), KP_ERR_NON_MONOTONIC_TIMESTAMP);
    CHECK_RC(kp_pusher_push_video(p, &f, 500000), KP_ERR_NON_MONOTONIC_TIMESTAMP);
    push_bad_frames(p, 2000000);
    CHECK(accepted(kp_pusher_push_audio(p, pcm, CHUNK, 1000000)));
    CHECK_RC(kp_pusher_push_audio(p, pcm, CHUNK, 999000), KP_ERR_NON_MONOTONIC_TIMESTAMP);
    push_bad_pointers(p);
    CHECK(kp_pusher_get_state(p) != KP_STATE_IDLE);

    /* pause: bad modes, frames refused while paused, audio taken, resume only when paused */
    CHECK_RC(kp_pusher_resume(p), KP_ERR_INVALID_STATE);
    CHECK_RC(kp_pusher_pause(p, 3), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_pause(p, -1), KP_ERR_INVALID_ARGUMENT);
    CHECK_RC(kp_pusher_pause(p, KP_PAUSE_STILL_IMAGE), KP_OK);
    CHECK_RC(kp_pusher_push_video(p, &f, 2100000), KP_ERR_PAUSED);
    CHECK(accepted(kp_pusher_push_audio(p, pcm, CHUNK, 1100000)));
    CHECK_RC(kp_pusher_pause(p, KP_PAUSE_AUDIO_ONLY), KP_OK); /* switches the mode */
    CHECK_RC(kp_pusher_push_video(p, &f, 2100000), KP_ERR_PAUSED);
    CHECK_RC(kp_pusher_resume(p), KP_OK);
    CHECK_RC(kp_pusher_resume(p), KP_ERR_INVALID_STATE);
    CHECK(accepted(kp_pusher_push_video(p, &f, 2100000)));
    CHECK_RC(kp_pusher_request_keyframe(p), KP_OK);
    CHECK_RC(kp_pusher_network_changed(p), KP_OK);
    CHECK_RC(kp_pusher_set_video_bitrate(p, 300), KP_OK);

    kp_pusher_stop(p, 500); /* nothing was ever sent: OK or TIMEOUT are both fine */
    CHECK(kp_pusher_get_state(p) == KP_STATE_STOPPED);
    CHECK_RC(kp_pusher_push_video(p, &f, 3000000), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_pause(p, KP_PAUSE_STILL_IMAGE), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_request_keyframe(p), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_network_changed(p), KP_ERR_NOT_STARTED);
    CHECK_RC(kp_pusher_set_video_bitrate(p, 300), KP_ERR_INVALID_STATE);
    CHECK_RC(kp_pusher_set_audio_muted(p, true), KP_ERR_INVALID_STATE);
    CHECK_RC(kp_pusher_set_pause_image(p, &f), KP_ERR_INVALID_STATE);
    CHECK_RC(kp_pusher_start(p), KP_ERR_INVALID_STATE);
    kp_pusher_free(p);
    close(listener);
}

/* ---- a real publish with bad calls mid-stream ---- */

static void check_live(const char *url)
{
    struct status st;
    kp_config *cfg;
    kp_pusher *p = NULL;
    kp_video_frame f = good_frame();
    kp_stats stats;
    int64_t n, pts = 0, audio_pts = 0;
    int rejected = 0;
    kp_result r;

    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.changed, NULL);
    cfg = make_config(url, &st);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_config_free(cfg);
    if (!p)
        goto out;
    CHECK_RC(kp_pusher_start(p), KP_OK);

    /* 6 s of media in real time; the bad calls come after the server accepted the publish */
    for (n = 0; n < 6 * FPS; n++) {
        pts = n * 1000000 / FPS;
        memset(pixels, (int)(n * 4 % 256), W * H);
        CHECK(accepted(kp_pusher_push_video(p, &f, pts)));
        while (audio_pts <= pts) {
            CHECK(accepted(kp_pusher_push_audio(p, pcm, CHUNK, audio_pts)));
            audio_pts += (int64_t)CHUNK * 1000000 / RATE;
        }
        if (n == 2 * FPS) {
            CHECK(wait_published(&st, 10));
            CHECK(kp_pusher_get_state(p) == KP_STATE_PUBLISHING);
            CHECK_RC(kp_pusher_start(p), KP_ERR_INVALID_STATE);
            CHECK_RC(kp_pusher_push_video(p, &f, pts), KP_ERR_NON_MONOTONIC_TIMESTAMP);
            CHECK_RC(kp_pusher_push_video(p, &f, pts - 100000), KP_ERR_NON_MONOTONIC_TIMESTAMP);
            CHECK_RC(kp_pusher_push_audio(p, pcm, CHUNK, audio_pts - 200000),
                     KP_ERR_NON_MONOTONIC_TIMESTAMP);
            rejected += 3;
            rejected += push_bad_frames(p, pts);
            push_bad_pointers(p);
        }
        if (n == 3 * FPS) {
            /* a second in the background, then on with a new bitrate and a keyframe */
            CHECK_RC(kp_pusher_pause(p, KP_PAUSE_STILL_IMAGE), KP_OK);
            sleep_ms(1000);
            CHECK_RC(kp_pusher_push_video(p, &f, pts + 1), KP_ERR_PAUSED);
            CHECK_RC(kp_pusher_resume(p), KP_OK);
            CHECK_RC(kp_pusher_set_video_bitrate(p, 300), KP_OK);
            CHECK_RC(kp_pusher_request_keyframe(p), KP_OK);
            CHECK_RC(kp_pusher_set_audio_muted(p, true), KP_OK);
        }
        if (n == 4 * FPS)
            CHECK_RC(kp_pusher_set_audio_muted(p, false), KP_OK);
        sleep_ms(1000 / FPS);
    }
    r = kp_pusher_stop(p, 5000);
    CHECK_RC(r, KP_OK);
    CHECK(kp_pusher_get_state(p) == KP_STATE_STOPPED);
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK_RC(kp_pusher_get_stats(p, &stats), KP_OK);
    CHECK(stats.video_frames_sent > 0 && stats.audio_frames_sent > 0 && stats.bytes_sent > 0);
    CHECK(stats.frames_rejected >= (uint64_t)rejected);
    CHECK(stats.destination_count == 1 && stats.url_index == 0);
    {
        kp_destination_stats ds;
        memset(&ds, 0, sizeof ds);
        ds.struct_size = sizeof ds;
        CHECK_RC(kp_pusher_get_destination_stats(p, 0, &ds), KP_OK);
        CHECK(ds.state == KP_STATE_STOPPED);
        CHECK(ds.video_frames_sent == stats.video_frames_sent && ds.bytes_sent == stats.bytes_sent);
        CHECK_RC(kp_pusher_get_destination_stats(p, 1, &ds), KP_ERR_INVALID_ARGUMENT);
    }
    printf("live: sent video %llu audio %llu frames, %llu bytes, rejected %llu\n",
           (unsigned long long)stats.video_frames_sent,
           (unsigned long long)stats.audio_frames_sent, (unsigned long long)stats.bytes_sent,
           (unsigned long long)stats.frames_rejected);
    kp_pusher_free(p);
    pthread_mutex_lock(&st.lock);
    CHECK(st.published && !st.failed && st.stopped);
    pthread_mutex_unlock(&st.lock);
out:
    pthread_cond_destroy(&st.changed);
    pthread_mutex_destroy(&st.lock);
}

int main(int argc, char **argv)
{
    int s;
    for (s = 0; s < CHUNK * CH; s++)
        pcm[s] = (int16_t)((s % 100) * 100 - 5000);
    memset(pixels, 128, sizeof pixels);

    check_static();
    check_destinations();
    check_lifecycle();
    if (argc > 1)
        check_live(argv[1]);
    else
        printf("no URL given: skipped the live publish checks\n");

    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
