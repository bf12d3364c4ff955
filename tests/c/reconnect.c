/*
 * reconnect: the URL refresh callback from C.
 *
 *   reconnect BAD_URL GOOD_URL
 *
 * BAD_URL is where nothing listens (a closed port) and GOOD_URL a server that accepts the publish;
 * both with an explicit port (rtmp://host:port/app/key). The pusher starts on BAD_URL with
 * unlimited reconnect attempts; its URL refresh callback answers GOOD_URL. ~3 s of generated media
 * are pushed in real time. Exit status 0 only if:
 *   - the events were CONNECTING (to BAD_URL), RECONNECTING (with the connect error), then
 *     CONNECTING to GOOD_URL, CONNECTED, PUBLISHING, and no FAILED;
 *   - the refresh callback was asked (destination 0, URL 0) before PUBLISHING;
 *   - kp_pusher_get_destination_stats reports destination 0 publishing, then what was sent;
 *   - stop returns KP_OK and STOPPED arrives; ASan finds no leak or bad access at exit.
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
#define RATE 48000
#define CH 2
#define CHUNK 960 /* 20 ms */
#define SECONDS 3
#define MAX_EVENTS 256


/* ---- what the SDK threads report; everything under `lock` ---- */

struct seen_event {
    kp_event_kind kind;
    kp_result code;
    uint32_t destination;
    int64_t value, value2;
    int refreshes_before; /* refresh calls answered when this event arrived */
    char message[256];
};

struct status {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct seen_event events[MAX_EVENTS];
    int n_events, lost_events;
    int published, failed, stopped;
    /* URL refresh */
    const char *good_url;
    int refreshes;
    uint32_t refresh_destination, refresh_url_index;
    size_t refresh_buf_len;
};

static void on_event(void *userdata, const kp_event *ev)
{
    struct status *st = (struct status *)userdata;
    printf("event kind=%d dest=%u code=%d value=%lld value2=%lld value3=%lld value4=%lld %s\n",
           (int)ev->kind, (unsigned)ev->destination, (int)ev->code, (long long)ev->value,
           (long long)ev->value2, (long long)ev->value3, (long long)ev->value4, ev->message);
    fflush(stdout);
    pthread_mutex_lock(&st->lock);
    if (st->n_events < MAX_EVENTS) {
        struct seen_event *e = &st->events[st->n_events++];
        e->kind = ev->kind;
        e->code = ev->code;
        e->destination = ev->destination;
        e->value = ev->value;
        e->value2 = ev->value2;
        e->refreshes_before = st->refreshes;
        snprintf(e->message, sizeof e->message, "%s", ev->message);
    } else {
        st->lost_events++;
    }
    if (ev->kind == KP_EVENT_PUBLISHING)
        st->published = 1;
    else if (ev->kind == KP_EVENT_FAILED)
        st->failed = 1;
    else if (ev->kind == KP_EVENT_STOPPED)
        st->stopped = 1;
    pthread_cond_broadcast(&st->changed);
    pthread_mutex_unlock(&st->lock);
}

/* Runs on an SDK thread before each reconnect: answers GOOD_URL. */
static size_t refresh_url(void *userdata, uint32_t destination, uint32_t url_index, char *buf,
                          size_t buf_len)
{
    struct status *st = (struct status *)userdata;
    size_t n = strlen(st->good_url);
    printf("url refresh: destination %u, URL %u, buffer %zu bytes\n", (unsigned)destination,
           (unsigned)url_index, buf_len);
    fflush(stdout);
    pthread_mutex_lock(&st->lock);
    st->refreshes++;
    st->refresh_destination = destination;
    st->refresh_url_index = url_index;
    st->refresh_buf_len = buf_len;
    pthread_mutex_unlock(&st->lock);
    if (n >= buf_len)
        return n; /* does not fit: the SDK keeps the current URL */
    memcpy(buf, st->good_url, n + 1);
    return n;
}

/* Waits for PUBLISHING or FAILED until `deadline`; returns 1 if publishing. */
static int wait_published(struct status *st, const struct timespec *deadline)
{
    int published;
    pthread_mutex_lock(&st->lock);
    while (!st->published && !st->failed)
        if (pthread_cond_timedwait(&st->changed, &st->lock, deadline) != 0)
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

/* "rtmp://host:port/app" of an "rtmp://host:port/app/key" URL: how CONNECTING names it. */
static void server_part(const char *url, char *out, size_t len)
{
    const char *slash = strrchr(url, '/');
    size_t n = slash ? (size_t)(slash - url) : strlen(url);
    if (n >= len)
        n = len - 1;
    memcpy(out, url, n);
    out[n] = '\0';
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Checks the order of events up to the first PUBLISHING. */
static void check_events(struct status *st, const char *bad_url, const char *good_url)
{
    char bad[256], good[256];
    int i, first_publishing = -1, reconnecting = 0, connecting = 0, last_connecting = -1;

    server_part(bad_url, bad, sizeof bad);
    server_part(good_url, good, sizeof good);
    pthread_mutex_lock(&st->lock);
    CHECK(st->lost_events == 0);
    CHECK(st->n_events > 0 && st->events[0].kind == KP_EVENT_CONNECTING);
    if (st->n_events > 0) {
        /* the first connect goes to the configured URL, the primary (index 0), unasked */
        CHECK(starts_with(st->events[0].message, bad));
        CHECK(st->events[0].value == 0 && st->events[0].refreshes_before == 0);
    }
    for (i = 0; i < st->n_events; i++) {
        const struct seen_event *e = &st->events[i];
        CHECK(e->destination == 0);
        if (e->kind == KP_EVENT_PUBLISHING) {
            first_publishing = i;
            break;
        }
        if (e->kind == KP_EVENT_CONNECTING) {
            connecting++;
            last_connecting = i;
        }
        if (e->kind == KP_EVENT_RECONNECTING) {
            reconnecting++;
            CHECK(e->code != KP_OK);     /* why the attempt before failed */
            CHECK(e->value >= 2);        /* the first connect was attempt 1 */
            CHECK(e->value2 > 0);        /* the delay, ms */
        }
        CHECK(e->kind != KP_EVENT_FAILED && e->kind != KP_EVENT_DISCONNECTED);
    }
    CHECK(first_publishing > 0);
    CHECK(reconnecting >= 1 && connecting >= 2);
    if (first_publishing > 0 && last_connecting >= 0) {
        /* the connection that published went to the refreshed URL, asked for before */
        const struct seen_event *c = &st->events[last_connecting];
        CHECK(starts_with(c->message, good));
        CHECK(!starts_with(c->message, bad));
        CHECK(c->refreshes_before >= 1);
        CHECK(st->events[first_publishing - 1].kind == KP_EVENT_CONNECTED);
    }
    CHECK(st->refreshes >= 1);
    CHECK(st->refresh_destination == 0 && st->refresh_url_index == 0);
    CHECK(st->refresh_buf_len == 2048);
    pthread_mutex_unlock(&st->lock);
}

int main(int argc, char **argv)
{
    static uint8_t pixels[W * H * 3 / 2];
    static int16_t pcm[CHUNK * CH];
    struct status st;
    kp_config *cfg;
    kp_pusher *p = NULL;
    kp_video_frame f;
    kp_stats stats;
    kp_destination_stats ds;
    struct timespec deadline;
    int64_t n, pts, audio_pts = 0;
    int s;

    if (argc != 3) {
        fprintf(stderr, "usage: %s BAD_URL GOOD_URL\n", argv[0]);
        return 2;
    }
    for (s = 0; s < CHUNK * CH; s++)
        pcm[s] = (int16_t)((s % 100) * 100 - 5000);
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
    st.good_url = argv[2];

    cfg = kp_config_new();
    CHECK(cfg != NULL);
    if (!cfg)
        return 1;
    CHECK_RC(kp_config_set_url(cfg, argv[1]), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W, H, FPS, 500, 0), KP_OK);
    CHECK_RC(kp_config_set_audio(cfg, RATE, CH, 96), KP_OK);
    CHECK_RC(kp_config_set_timeouts(cfg, 2000, 2000), KP_OK);
    /* retry after 200 ms, growing x1.5 up to 1 s, never give up, default failover */
    CHECK_RC(kp_config_set_reconnect(cfg, 200, 0.0, 1000, 0, 0), KP_OK);
    CHECK_RC(kp_config_set_event_callback(cfg, on_event, &st), KP_OK);
    CHECK_RC(kp_config_set_url_refresh_callback(cfg, refresh_url, &st, 2000), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_config_free(cfg); /* the pusher holds a copy, callbacks included */
    if (!p)
        return 1;
    CHECK_RC(kp_pusher_start(p), KP_OK);

    /* SECONDS of media in real time, from the start: queued while the pusher reconnects */
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    for (n = 0; n < SECONDS * FPS; n++) {
        kp_result r;
        pts = n * 1000000 / FPS;
        memset(pixels, (int)(n * 4 % 256), W * H);
        r = kp_pusher_push_video(p, &f, pts);
        CHECK(r == KP_OK || r == KP_ERR_QUEUE_FULL);
        while (audio_pts <= pts) {
            r = kp_pusher_push_audio(p, pcm, CHUNK, audio_pts);
            CHECK(r == KP_OK || r == KP_ERR_QUEUE_FULL);
            audio_pts += (int64_t)CHUNK * 1000000 / RATE;
        }
        if (n == FPS) {
            /* a second in, it should have moved to GOOD_URL and be publishing */
            CHECK(wait_published(&st, &deadline));
            memset(&ds, 0xAB, sizeof ds);
            ds.struct_size = sizeof ds;
            CHECK_RC(kp_pusher_get_destination_stats(p, 0, &ds), KP_OK);
            CHECK(ds.struct_size == sizeof ds);
            CHECK(ds.state == KP_STATE_PUBLISHING);
            CHECK(ds.url_index == 0); /* the refreshed URL replaced the primary */
            CHECK(kp_pusher_get_state(p) == KP_STATE_PUBLISHING);
        }
        sleep_ms(1000 / FPS);
    }
    CHECK(wait_published(&st, &deadline));

    CHECK_RC(kp_pusher_stop(p, 5000), KP_OK);
    CHECK(kp_pusher_get_state(p) == KP_STATE_STOPPED);
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK_RC(kp_pusher_get_stats(p, &stats), KP_OK);
    CHECK(stats.destination_count == 1 && stats.url_index == 0);
    CHECK(stats.reconnects == 0); /* no publish was lost: the first one came late */
    memset(&ds, 0, sizeof ds);
    ds.struct_size = sizeof ds;
    CHECK_RC(kp_pusher_get_destination_stats(p, 0, &ds), KP_OK);
    CHECK(ds.state == KP_STATE_STOPPED);
    CHECK(ds.video_frames_sent > 0 && ds.audio_frames_sent > 0 && ds.bytes_sent > 0);
    CHECK(ds.video_frames_sent == stats.video_frames_sent && ds.bytes_sent == stats.bytes_sent);
    CHECK(ds.reconnects == 0 && ds.outage_ms_total == 0);
    /* no publish was lost: nothing lost to an outage, no catch-up */
    CHECK(ds.video_frames_lost_outage == 0 && ds.audio_frames_lost_outage == 0);
    CHECK(ds.outage_media_kept_ms == 0 && ds.outage_media_lost_ms == 0);
    CHECK(ds.last_catch_up_ms == 0 && ds.catching_up == 0);
    CHECK(stats.video_frames_lost_outage == 0 && stats.audio_frames_lost_outage == 0);
    CHECK_RC(kp_pusher_get_destination_stats(p, 1, &ds), KP_ERR_INVALID_ARGUMENT);
    printf("sent video %llu audio %llu frames, %llu bytes\n", (unsigned long long)ds.video_frames_sent,
           (unsigned long long)ds.audio_frames_sent, (unsigned long long)ds.bytes_sent);

    kp_pusher_free(p);
    pthread_mutex_lock(&st.lock);
    CHECK(st.stopped && !st.failed);
    pthread_mutex_unlock(&st.lock);
    check_events(&st, argv[1], argv[2]);

    pthread_cond_destroy(&st.changed);
    pthread_mutex_destroy(&st.lock);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
