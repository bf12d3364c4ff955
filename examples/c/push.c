/*
 * push: publishes a generated moving test pattern (I420) and a 440 Hz tone to an RTMP URL through
 * the kitepush C API.
 *
 *   push URL [SECONDS] [--realtime]
 *
 * Without --realtime it pushes as fast as the encoder accepts, stamping every frame with its
 * stream time (pts_us), so a 10 s stream may take less than 10 s of wall time. With --realtime it
 * sleeps until each frame's due time, like a camera.
 *
 * Exit status 0 only if the pusher reached PUBLISHING, never FAILED, and stopped without error.
 */
#define _POSIX_C_SOURCE 200809L

#include <kitepush.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The picture size; --size WxH changes it (even numbers). */
static int width = 640, height = 360;
#define FPS 30
#define SAMPLE_RATE 44100
#define CHANNELS 2
#define AUDIO_CHUNK 1024 /* frames per push_audio call */
#define STOP_TIMEOUT_MS 5000

/* Written on the SDK's callback thread, read on the main thread. */
struct status {
    pthread_mutex_t lock;
    int published;
    int failed;
};

static void on_event(void *userdata, const kp_event *ev)
{
    struct status *st = (struct status *)userdata;
    const char *name;
    switch (ev->kind) {
    case KP_EVENT_CONNECTING: name = "CONNECTING"; break;
    case KP_EVENT_CONNECTED: name = "CONNECTED"; break;
    case KP_EVENT_PUBLISHING: name = "PUBLISHING"; break;
    case KP_EVENT_DISCONNECTED: name = "DISCONNECTED"; break;
    case KP_EVENT_FAILED: name = "FAILED"; break;
    case KP_EVENT_STOPPED: name = "STOPPED"; break;
    default: return; /* kinds added after this program was written */
    }
    printf("[%8llu ms] event %-12s code=%d (%s) value=%lld %s\n",
           (unsigned long long)ev->timestamp_ms, name, (int)ev->code, kp_result_str(ev->code),
           (long long)ev->value, ev->message);
    fflush(stdout);
    pthread_mutex_lock(&st->lock);
    if (ev->kind == KP_EVENT_PUBLISHING)
        st->published = 1;
    if (ev->kind == KP_EVENT_FAILED)
        st->failed = 1;
    pthread_mutex_unlock(&st->lock);
}

static void on_log(void *userdata, kp_log_level level, const char *target, const char *message)
{
    (void)userdata;
    fprintf(stderr, "log %d %s: %s\n", (int)level, target, message);
}

/* A grey field with a white square bouncing across it and chroma bars that scroll. */
static void draw_frame(uint8_t *y, uint8_t *u, uint8_t *v, int64_t n)
{
    int row, col;
    int side = height / 4;
    int span_x = width - side, span_y = height - side;
    int sx = (int)((n * 7) % (2 * span_x));
    int sy = (int)((n * 3) % (2 * span_y));
    if (sx > span_x)
        sx = 2 * span_x - sx;
    if (sy > span_y)
        sy = 2 * span_y - sy;
    memset(y, 96, (size_t)width * height);
    for (row = sy; row < sy + side; row++)
        memset(y + (size_t)row * width + sx, 235, (size_t)side);
    for (row = 0; row < height / 2; row++) {
        for (col = 0; col < width / 2; col++) {
            int bar = (int)(((col + n) / 40) % 4);
            u[row * (width / 2) + col] = (uint8_t)(64 + bar * 40);
            v[row * (width / 2) + col] = (uint8_t)(208 - bar * 40);
        }
    }
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts;
    if (us <= 0)
        return;
    ts.tv_sec = (time_t)(us / 1000000);
    ts.tv_nsec = (long)(us % 1000000) * 1000;
    nanosleep(&ts, NULL);
}

/* Retries while the input queue is full, which is the SDK saying "the encoder is behind". */
static kp_result push_video(kp_pusher *p, const kp_video_frame *f, int64_t pts, int realtime,
                            unsigned *dropped)
{
    for (;;) {
        kp_result r = kp_pusher_push_video(p, f, pts);
        if (r != KP_ERR_QUEUE_FULL)
            return r;
        if (realtime) { /* a camera cannot wait: the frame is gone */
            (*dropped)++;
            return KP_OK;
        }
        sleep_us(2000);
    }
}

static kp_result push_audio(kp_pusher *p, const int16_t *pcm, int64_t pts, int realtime,
                            unsigned *dropped)
{
    for (;;) {
        kp_result r = kp_pusher_push_audio(p, pcm, AUDIO_CHUNK, pts);
        if (r != KP_ERR_QUEUE_FULL)
            return r;
        if (realtime) {
            (*dropped)++;
            return KP_OK;
        }
        sleep_us(2000);
    }
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s URL [seconds] [--realtime] [--bearer TOKEN] [--size WxH]\n"
                    "URL: rtmp[s]://host[:port]/app/key, srt://host:port?streamid=..., or a WHIP endpoint\n"
                    "whip+http[s]://host[:port]/path (--bearer: its token)\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *bearer = NULL;
    double seconds = 10.0;
    int realtime = 0, i, ok = 0;
    struct status st;
    kp_config *cfg;
    kp_pusher *p = NULL;
    kp_result r;
    uint8_t *pixels;
    int16_t pcm[AUDIO_CHUNK * CHANNELS];
    kp_video_frame frame;
    kp_stats stats;
    int64_t video_n = 0, audio_n = 0, end_us, t0;
    unsigned dropped = 0;
    double phase = 0.0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--realtime") == 0)
            realtime = 1;
        else if (strcmp(argv[i], "--bearer") == 0 && i + 1 < argc)
            bearer = argv[++i];
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%d", &width, &height) != 2 || width < 16 || height < 16 ||
                width > 4096 || height > 4096 || width % 2 || height % 2)
                return usage(argv[0]);
        }
        else if (!url)
            url = argv[i];
        else if ((seconds = atof(argv[i])) <= 0)
            return usage(argv[0]);
    }
    if (!url)
        return usage(argv[0]);

    if (strcmp(kp_version(), KP_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s but library %s\n", KP_VERSION_STRING, kp_version());
        return 1;
    }
    printf("kitepush %s\n", kp_version());
    kp_set_log_callback(on_log, NULL, KP_LOG_INFO);

    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.lock, NULL);

    cfg = kp_config_new();
    if (!cfg)
        return 1;
    if ((r = kp_config_set_url(cfg, url)) != KP_OK ||
        (r = kp_config_set_video(cfg, width, height, FPS, 800, 0)) != KP_OK ||
        (r = kp_config_set_audio(cfg, SAMPLE_RATE, CHANNELS, 128)) != KP_OK ||
        (r = kp_config_set_whip_bearer_token(cfg, bearer)) != KP_OK ||
        (r = kp_config_set_event_callback(cfg, on_event, &st)) != KP_OK ||
        (r = kp_pusher_new(cfg, &p)) != KP_OK) {
        fprintf(stderr, "setup: %s: %s\n", kp_result_str(r), kp_last_error_message());
        kp_config_free(cfg);
        return 1;
    }
    kp_config_free(cfg); /* the pusher took a copy */

    pixels = (uint8_t *)malloc((size_t)width * height * 3 / 2);
    if (!pixels) {
        kp_pusher_free(p);
        return 1;
    }
    memset(&frame, 0, sizeof frame);
    frame.format = KP_PIXEL_FORMAT_I420;
    frame.width = width;
    frame.height = height;
    frame.planes[0] = pixels;
    frame.planes[1] = pixels + width * height;
    frame.planes[2] = pixels + width * height * 5 / 4;
    frame.strides[0] = width;
    frame.strides[1] = frame.strides[2] = width / 2;
    frame.plane_sizes[0] = (size_t)width * height;
    frame.plane_sizes[1] = frame.plane_sizes[2] = (size_t)width * height / 4;

    if ((r = kp_pusher_start(p)) != KP_OK) {
        fprintf(stderr, "start: %s: %s\n", kp_result_str(r), kp_last_error_message());
        goto out;
    }

    end_us = (int64_t)(seconds * 1e6);
    t0 = now_us();
    for (;;) {
        int64_t video_pts = video_n * 1000000 / FPS;
        int64_t audio_pts = audio_n * AUDIO_CHUNK * 1000000 / SAMPLE_RATE;
        int64_t next = video_pts < audio_pts ? video_pts : audio_pts;
        if (next >= end_us)
            break;
        if (realtime)
            sleep_us(t0 + next - now_us());
        if (video_pts <= audio_pts) {
            draw_frame((uint8_t *)frame.planes[0], (uint8_t *)frame.planes[1],
                       (uint8_t *)frame.planes[2], video_n);
            r = push_video(p, &frame, video_pts, realtime, &dropped);
            video_n++;
        } else {
            int s;
            for (s = 0; s < AUDIO_CHUNK; s++) {
                int16_t v = (int16_t)(8000.0 * sin(phase));
                pcm[s * CHANNELS] = pcm[s * CHANNELS + 1] = v;
                phase += 2.0 * 3.14159265358979323846 * 440.0 / SAMPLE_RATE;
            }
            r = push_audio(p, pcm, audio_pts, realtime, &dropped);
            audio_n++;
        }
        if (r != KP_OK) {
            fprintf(stderr, "push: %s: %s\n", kp_result_str(r), kp_last_error_message());
            break;
        }
    }

    r = kp_pusher_stop(p, STOP_TIMEOUT_MS);
    if (r != KP_OK)
        fprintf(stderr, "stop: %s: %s\n", kp_result_str(r), kp_last_error_message());

    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    if (kp_pusher_get_stats(p, &stats) == KP_OK) {
        printf("stats: state=%d video in/encoded/sent %llu/%llu/%llu, audio in/encoded/sent "
               "%llu/%llu/%llu, dropped encoder/network %llu/%llu, rejected %llu, bytes %llu, "
               "queue %u ms, uptime %llu ms, %u frames dropped here\n",
               (int)stats.state, (unsigned long long)stats.video_frames_in,
               (unsigned long long)stats.video_frames_encoded,
               (unsigned long long)stats.video_frames_sent,
               (unsigned long long)stats.audio_frames_in,
               (unsigned long long)stats.audio_frames_encoded,
               (unsigned long long)stats.audio_frames_sent,
               (unsigned long long)stats.video_frames_dropped_encoder,
               (unsigned long long)stats.frames_dropped_network,
               (unsigned long long)stats.frames_rejected, (unsigned long long)stats.bytes_sent,
               stats.queue_ms, (unsigned long long)stats.uptime_ms, dropped);
    }
    pthread_mutex_lock(&st.lock);
    ok = r == KP_OK && st.published && !st.failed;
    pthread_mutex_unlock(&st.lock);

out:
    kp_pusher_free(p); /* blocks until the SDK's threads are gone: no callback after this */
    kp_set_log_callback(NULL, NULL, KP_LOG_OFF);
    free(pixels);
    pthread_mutex_destroy(&st.lock);
    printf("%s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
