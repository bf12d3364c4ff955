/*
 * transports: one pusher, two transports, from C.
 *
 *   transports SRT_URL RTMP_URL
 *
 * SRT_URL is the primary, an srt:// listener that never answers (UDP black-holed by the test's
 * proxy); RTMP_URL the backup, a server that accepts the publish. With a 1.5 s connect timeout and
 * failover after one failed attempt, the pusher must report FAILOVER 0 -> 1 and publish on the
 * backup; then kp_pusher_network_changed must get it publishing again within a second, with
 * DISCONNECTED and RECONNECTED reported. Media is pushed in real time throughout. Exit status 0
 * only if every check passed; ASan finds no leak or bad access at exit.
 */
#define _POSIX_C_SOURCE 200809L

#include <kitepush.h>

#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define W 320
#define H 240
#define FPS 30

struct status {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int publishing, failovers, disconnected, reconnected, failed, stopped;
    int64_t failover_from, failover_to;
    int64_t outage_ms, kept_ms, lost_ms; /* RECONNECTED's figures */
};

static void on_event(void *userdata, const kp_event *ev)
{
    struct status *st = (struct status *)userdata;
    printf("event kind=%d code=%d value=%lld value2=%lld %s\n", (int)ev->kind, (int)ev->code,
           (long long)ev->value, (long long)ev->value2, ev->message);
    fflush(stdout);
    pthread_mutex_lock(&st->lock);
    switch (ev->kind) {
    case KP_EVENT_PUBLISHING: st->publishing++; break;
    case KP_EVENT_FAILOVER:
        st->failovers++;
        st->failover_from = ev->value;
        st->failover_to = ev->value2;
        break;
    case KP_EVENT_DISCONNECTED: st->disconnected++; break;
    case KP_EVENT_RECONNECTED:
        st->reconnected++;
        st->outage_ms = ev->value;
        st->kept_ms = ev->value3;
        st->lost_ms = ev->value4;
        break;
    case KP_EVENT_FAILED: st->failed++; break;
    case KP_EVENT_STOPPED: st->stopped++; break;
    default: break;
    }
    pthread_cond_broadcast(&st->changed);
    pthread_mutex_unlock(&st->lock);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Pushes frames in real time until `*counter` (under the lock) reaches `want` or `seconds` pass. */
static int push_until(kp_pusher *p, const kp_video_frame *f, int64_t *n, struct status *st, const int *counter,
                      int want, double seconds)
{
    double end = now_s() + seconds;
    int reached = 0;
    while (now_s() < end) {
        kp_result r = kp_pusher_push_video(p, f, *n * 1000000 / FPS);
        struct timespec frame = {0, 1000000000L / FPS};
        CHECK(r == KP_OK || r == KP_ERR_QUEUE_FULL);
        (*n)++;
        pthread_mutex_lock(&st->lock);
        reached = *counter >= want;
        pthread_mutex_unlock(&st->lock);
        if (reached)
            return 1;
        nanosleep(&frame, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static uint8_t pixels[W * H * 3 / 2];
    struct status st;
    kp_config *cfg;
    kp_pusher *p = NULL;
    kp_video_frame f;
    kp_destination_stats ds;
    int64_t n = 0;
    double called, took;

    if (argc != 3) {
        fprintf(stderr, "usage: %s SRT_URL RTMP_URL\n", argv[0]);
        return 2;
    }
    memset(pixels, 128, sizeof pixels);
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
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.changed, NULL);

    cfg = kp_config_new();
    CHECK_RC(kp_config_set_url(cfg, argv[1]), KP_OK);
    CHECK_RC(kp_config_add_backup_url(cfg, argv[2]), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W, H, FPS, 300, 0), KP_OK);
    CHECK_RC(kp_config_disable_audio(cfg), KP_OK);
    CHECK_RC(kp_config_set_srt(cfg, 120, NULL, 0), KP_OK);
    CHECK_RC(kp_config_set_timeouts(cfg, 1500, 5000), KP_OK);
    CHECK_RC(kp_config_set_reconnect(cfg, 200, 0.0, 1000, 0, 1), KP_OK);
    CHECK_RC(kp_config_set_primary_retry_interval(cfg, 0), KP_OK); /* stay on the backup */
    CHECK_RC(kp_config_set_event_callback(cfg, on_event, &st), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_config_free(cfg);
    if (!p)
        return 1;
    CHECK_RC(kp_pusher_start(p), KP_OK);

    /* The SRT primary never answers: FAILOVER to the RTMP backup, publishing there. */
    CHECK(push_until(p, &f, &n, &st, &st.publishing, 1, 10.0));
    pthread_mutex_lock(&st.lock);
    CHECK(st.failovers == 1 && st.failover_from == 0 && st.failover_to == 1);
    pthread_mutex_unlock(&st.lock);
    memset(&ds, 0, sizeof ds);
    ds.struct_size = sizeof ds;
    CHECK_RC(kp_pusher_get_destination_stats(p, 0, &ds), KP_OK);
    CHECK(ds.url_index == 1 && ds.state == KP_STATE_PUBLISHING);
    CHECK(push_until(p, &f, &n, &st, &st.failed, 1, 1.0) == 0); /* a second of media on the backup */

    /* The network changed: publishing again within a second. */
    called = now_s();
    CHECK_RC(kp_pusher_network_changed(p), KP_OK);
    CHECK(push_until(p, &f, &n, &st, &st.reconnected, 1, 5.0));
    took = now_s() - called;
    printf("publishing again %.0f ms after kp_pusher_network_changed\n", took * 1000.0);
    CHECK(took <= 1.0);
    pthread_mutex_lock(&st.lock);
    CHECK(st.disconnected == 1 && st.publishing == 2 && st.failed == 0);
    pthread_mutex_unlock(&st.lock);
    push_until(p, &f, &n, &st, &st.failed, 1, 0.5);

    CHECK_RC(kp_pusher_stop(p, 5000), KP_OK);
    /* The outage's media kept and lost, the same in RECONNECTED and in the stats. */
    memset(&ds, 0, sizeof ds);
    ds.struct_size = sizeof ds;
    CHECK_RC(kp_pusher_get_destination_stats(p, 0, &ds), KP_OK);
    printf("outage %lld ms: %lld ms of its media kept, %lld ms lost; %llu video frames lost to it\n",
           (long long)st.outage_ms, (long long)st.kept_ms, (long long)st.lost_ms,
           (unsigned long long)ds.video_frames_lost_outage);
    CHECK(st.kept_ms >= 0 && st.lost_ms >= 0);
    CHECK(ds.outage_media_kept_ms == (uint64_t)st.kept_ms && ds.outage_media_lost_ms == (uint64_t)st.lost_ms);
    CHECK(ds.catching_up == 0);
    kp_pusher_free(p);
    CHECK(st.stopped >= 1);
    printf("%d checks, %d failures\n", checks, failures);
    return failures != 0;
}
