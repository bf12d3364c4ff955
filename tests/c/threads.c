/* Misuse of the C ABI from many threads, under AddressSanitizer and UBSan:
 *
 *   1. 8 threads on one pusher at once: three push video and two push audio (timestamps from one
 *      shared counter per track, so they also race each other into the timeline), one reads
 *      stats and destination stats, one reads the state and makes wrong-state and bad-pointer
 *      calls, and one stops the pusher while all the others are still pushing. Then the
 *      supported ending: join every thread, then kp_pusher_free.
 *   2. The same ending 20 times in a row against a server that never answers (stop lands while
 *      connecting), to shake out races between stop, the pushes and free.
 *   3. 8 threads each with their own pusher created, started, stopped and freed at once, while
 *      the main thread installs and removes the log callback: per-thread last-error messages
 *      and the global log hook under contention.
 *   4. Wrong-state calls: pre-encoded pushes on a raw config and raw pushes on a pre-encoded one.
 *
 *   tests/c/threads [URL]   (without URL, part 1 runs against a listener that never answers)
 */
#define _POSIX_C_SOURCE 200809L
#include <kitepush.h>

#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define W 320
#define H 240
#define FPS 30
#define RATE 48000
#define CH 2
#define CHUNK 960 /* 20 ms */

static uint8_t pixels[W * H * 3 / 2];
static int16_t pcm[CHUNK * CH];

/* check.h's counters are plain ints: the threads report through this lock. */
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;

#define TCHECK(cond)                                                                            \
    do {                                                                                        \
        int ok_ = (cond);                                                                       \
        pthread_mutex_lock(&check_lock);                                                        \
        CHECK(ok_);                                                                             \
        pthread_mutex_unlock(&check_lock);                                                      \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

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

/* A listener that accepts TCP connections (in the backlog) and never answers. */
static int silent_listener(char *url, size_t len)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        perror("listener");
        exit(1);
    }
    snprintf(url, len, "rtmp://127.0.0.1:%d/live/threads", ntohs(a.sin_port));
    return fd;
}

static kp_config *make_config(const char *url)
{
    kp_config *cfg = kp_config_new();
    if (!cfg)
        exit(1);
    CHECK_RC(kp_config_set_url(cfg, url), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W, H, FPS, 500, 0), KP_OK);
    CHECK_RC(kp_config_set_video_threads(cfg, 1), KP_OK);
    CHECK_RC(kp_config_set_audio(cfg, RATE, CH, 96), KP_OK);
    CHECK_RC(kp_config_set_timeouts(cfg, 2000, 2000), KP_OK);
    return cfg;
}

/* ---- part 1 and 2: one pusher, many threads ---- */

struct shared {
    kp_pusher *p;
    pthread_mutex_t lock;
    int64_t next_video, next_audio; /* frame / chunk counters */
    int stopped;                    /* set by the stopper once kp_pusher_stop returned */
    long run_ms;                    /* how long to push before stopping */
    uint32_t stop_timeout_ms;
    unsigned long pushes_ok, pushes_after_stop, stat_reads;
};

/* What a good push may return while other threads push and stop: dropped (encoder behind), lost
   a timestamp race to another thread, or the pusher was stopped. */
static int push_outcome_ok(kp_result r)
{
    return r == KP_OK || r == KP_ERR_QUEUE_FULL || r == KP_ERR_NON_MONOTONIC_TIMESTAMP ||
           r == KP_ERR_NOT_STARTED;
}

static void *video_pusher(void *arg)
{
    struct shared *s = (struct shared *)arg;
    kp_video_frame f = good_frame();
    for (;;) {
        int64_t n;
        kp_result r;
        pthread_mutex_lock(&s->lock);
        n = s->next_video++;
        pthread_mutex_unlock(&s->lock);
        r = kp_pusher_push_video(s->p, &f, n * 1000000 / FPS);
        TCHECK(push_outcome_ok(r));
        if (r == KP_ERR_NOT_STARTED)
            break; /* stopped: the thread ends, as an app's camera thread would */
        pthread_mutex_lock(&s->lock);
        s->pushes_ok += r == KP_OK;
        pthread_mutex_unlock(&s->lock);
        sleep_ms(1000 / FPS / 3);
    }
    return NULL;
}

static void *audio_pusher(void *arg)
{
    struct shared *s = (struct shared *)arg;
    for (;;) {
        int64_t n;
        kp_result r;
        pthread_mutex_lock(&s->lock);
        n = s->next_audio++;
        pthread_mutex_unlock(&s->lock);
        r = kp_pusher_push_audio(s->p, pcm, CHUNK, n * CHUNK * 1000000 / RATE);
        TCHECK(push_outcome_ok(r));
        if (r == KP_ERR_NOT_STARTED)
            break;
        sleep_ms(10);
    }
    return NULL;
}

static int is_stopped(struct shared *s)
{
    int stopped;
    pthread_mutex_lock(&s->lock);
    stopped = s->stopped;
    pthread_mutex_unlock(&s->lock);
    return stopped;
}

static void *stats_reader(void *arg)
{
    struct shared *s = (struct shared *)arg;
    while (!is_stopped(s)) {
        kp_stats st;
        kp_destination_stats ds;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        TCHECK(kp_pusher_get_stats(s->p, &st) == KP_OK);
        TCHECK(st.destination_count == 1);
        memset(&ds, 0, sizeof ds);
        ds.struct_size = sizeof ds;
        TCHECK(kp_pusher_get_destination_stats(s->p, 0, &ds) == KP_OK);
        TCHECK(kp_pusher_get_destination_stats(s->p, 1, &ds) == KP_ERR_INVALID_ARGUMENT);
        st.struct_size = 2; /* too small, from a racing thread too */
        TCHECK(kp_pusher_get_stats(s->p, &st) == KP_ERR_INVALID_ARGUMENT);
        pthread_mutex_lock(&s->lock);
        s->stat_reads++;
        pthread_mutex_unlock(&s->lock);
        sleep_ms(2);
    }
    return NULL;
}

static void *state_and_misuse(void *arg)
{
    struct shared *s = (struct shared *)arg;
    static const uint8_t idr[] = {0, 0, 0, 1, 0x65, 0x88, 0x84, 0};
    while (!is_stopped(s)) {
        kp_state st = kp_pusher_get_state(s->p);
        kp_video_frame f = good_frame();
        TCHECK(st == KP_STATE_CONNECTING || st == KP_STATE_PUBLISHING || st == KP_STATE_RECONNECTING ||
               st == KP_STATE_STOPPING || st == KP_STATE_STOPPED);
        /* wrong state for this config (raw encoders) */
        TCHECK(kp_pusher_push_h264(s->p, idr, sizeof idr, 0, 0) != KP_OK);
        TCHECK(kp_pusher_push_aac(s->p, idr, sizeof idr, 0) != KP_OK);
        TCHECK(kp_pusher_start(s->p) == KP_ERR_INVALID_STATE);
        /* bad pointers and sizes from another thread, mid-stream */
        TCHECK(kp_pusher_push_video(s->p, NULL, 0) == KP_ERR_INVALID_ARGUMENT);
        f.planes[2] = NULL;
        TCHECK(kp_pusher_push_video(s->p, &f, 0) == KP_ERR_INVALID_ARGUMENT);
        TCHECK(kp_pusher_push_audio(s->p, pcm, (size_t)-1, 0) == KP_ERR_INVALID_ARGUMENT);
        TCHECK(kp_last_error_message() != NULL && kp_last_error_message()[0] != '\0');
        TCHECK(kp_result_str(KP_ERR_QUEUE_FULL) != NULL);
        sleep_ms(3);
    }
    return NULL;
}

static void *stopper(void *arg)
{
    struct shared *s = (struct shared *)arg;
    kp_result r;
    sleep_ms(s->run_ms);
    r = kp_pusher_stop(s->p, s->stop_timeout_ms);
    /* Drained, timed out or never connected: all fine for a stop under load. */
    TCHECK(r == KP_OK || r == KP_ERR_TIMEOUT);
    TCHECK(kp_pusher_get_state(s->p) == KP_STATE_STOPPED);
    pthread_mutex_lock(&s->lock);
    s->stopped = 1;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Runs the 8 threads on one started pusher, joins them, frees the pusher. */
static void eight_threads(const char *url, long run_ms, uint32_t stop_timeout_ms, int verbose)
{
    pthread_t t[8];
    void *(*fn[8])(void *) = {video_pusher, video_pusher, video_pusher, audio_pusher,
                              audio_pusher, stats_reader, state_and_misuse, stopper};
    struct shared s;
    kp_config *cfg = make_config(url);
    int i;

    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    s.run_ms = run_ms;
    s.stop_timeout_ms = stop_timeout_ms;
    CHECK_RC(kp_pusher_new(cfg, &s.p), KP_OK);
    kp_config_free(cfg);
    if (!s.p)
        return;
    CHECK_RC(kp_pusher_start(s.p), KP_OK);
    for (i = 0; i < 8; i++)
        if (pthread_create(&t[i], NULL, fn[i], &s) != 0) {
            perror("pthread_create");
            exit(1);
        }
    /* The supported ending: every call on the pusher has returned, then free. */
    for (i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CHECK(kp_pusher_get_state(s.p) == KP_STATE_STOPPED);
    {
        kp_video_frame f = good_frame();
        CHECK_RC(kp_pusher_push_video(s.p, &f, 1000000000), KP_ERR_NOT_STARTED);
    }
    if (verbose) {
        kp_stats st;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        CHECK_RC(kp_pusher_get_stats(s.p, &st), KP_OK);
        printf("8 threads: %lu video pushes accepted, %lu stats reads; video in %llu, sent %llu, "
               "audio sent %llu, rejected %llu\n",
               s.pushes_ok, s.stat_reads, (unsigned long long)st.video_frames_in,
               (unsigned long long)st.video_frames_sent, (unsigned long long)st.audio_frames_sent,
               (unsigned long long)st.frames_rejected);
        CHECK(s.pushes_ok > 0 && s.stat_reads > 0);
    }
    kp_pusher_free(s.p);
    pthread_mutex_destroy(&s.lock);
}

/* ---- part 3: many pushers at once, and the log hook ---- */

static void on_log(void *userdata, kp_log_level level, const char *target, const char *message)
{
    unsigned long *n = (unsigned long *)userdata;
    (void)level;
    (void)target;
    (void)message;
    pthread_mutex_lock(&check_lock);
    (*n)++;
    pthread_mutex_unlock(&check_lock);
}

static void *own_pusher(void *arg)
{
    const char *url = (const char *)arg;
    int round;
    for (round = 0; round < 3; round++) {
        kp_config *cfg = kp_config_new();
        kp_pusher *p = NULL;
        kp_video_frame f = good_frame();
        TCHECK(cfg != NULL);
        if (!cfg)
            return NULL;
        TCHECK(kp_config_set_url(cfg, url) == KP_OK);
        TCHECK(kp_config_set_video(cfg, W, H, FPS, 300, 0) == KP_OK);
        TCHECK(kp_config_disable_audio(cfg) == KP_OK);
        /* A bad URL on this thread: its last error must be this thread's own. */
        TCHECK(kp_config_set_url(cfg, "ftp://x/y/z") == KP_OK);
        TCHECK(kp_pusher_new(cfg, &p) == KP_ERR_INVALID_URL && p == NULL);
        TCHECK(strstr(kp_last_error_message(), "URL") != NULL);
        TCHECK(kp_config_set_url(cfg, url) == KP_OK);
        TCHECK(kp_pusher_new(cfg, &p) == KP_OK);
        kp_config_free(cfg);
        if (!p)
            return NULL;
        TCHECK(kp_pusher_stop(p, 10) == KP_ERR_NOT_STARTED);
        TCHECK(kp_pusher_start(p) == KP_OK);
        TCHECK(push_outcome_ok(kp_pusher_push_video(p, &f, 0)));
        TCHECK(kp_pusher_push_audio(p, pcm, CHUNK, 0) == KP_ERR_INVALID_STATE); /* no audio */
        sleep_ms(20);
        kp_pusher_stop(p, 50);
        kp_pusher_free(p);
    }
    return NULL;
}

static void many_pushers(const char *url)
{
    pthread_t t[8];
    unsigned long logs = 0;
    int i;
    for (i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, own_pusher, (void *)url);
    for (i = 0; i < 10; i++) {
        CHECK_RC(kp_set_log_callback(on_log, &logs, KP_LOG_INFO), KP_OK);
        sleep_ms(15);
        CHECK_RC(kp_set_log_callback(NULL, NULL, KP_LOG_OFF), KP_OK);
        sleep_ms(5);
    }
    for (i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    printf("8 pushers at once: %lu log lines while the hook was installed\n", logs);
}

/* ---- part 4: wrong-state calls per config kind ---- */

static void wrong_kind(const char *url)
{
    static const uint8_t sps_idr[] = {0, 0, 0, 1, 0x65, 0x88, 0x84, 0};
    kp_config *cfg = make_config(url);
    kp_pusher *p = NULL;
    kp_video_frame f = good_frame();

    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    if (p) {
        CHECK_RC(kp_pusher_start(p), KP_OK);
        CHECK_RC(kp_pusher_push_h264(p, sps_idr, sizeof sps_idr, 0, 0), KP_ERR_INVALID_STATE);
        CHECK_RC(kp_pusher_push_aac(p, sps_idr, sizeof sps_idr, 0), KP_ERR_INVALID_STATE);
        kp_pusher_stop(p, 10);
        kp_pusher_free(p);
    }
    p = NULL;
    CHECK_RC(kp_config_set_video_encoder(cfg, KP_ENCODER_PASSTHROUGH), KP_OK);
    CHECK_RC(kp_config_set_audio_encoder(cfg, KP_AUDIO_ENCODER_PASSTHROUGH), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_config_free(cfg);
    if (p) {
        CHECK_RC(kp_pusher_push_h264(p, sps_idr, sizeof sps_idr, 0, 0), KP_ERR_NOT_STARTED);
        CHECK_RC(kp_pusher_start(p), KP_OK);
        CHECK_RC(kp_pusher_push_video(p, &f, 0), KP_ERR_INVALID_STATE);
        CHECK_RC(kp_pusher_push_audio(p, pcm, CHUNK, 0), KP_ERR_INVALID_STATE);
        CHECK_RC(kp_pusher_push_h264(p, sps_idr, 0, 0, 0), KP_ERR_BAD_BITSTREAM);
        CHECK_RC(kp_pusher_push_h264(p, sps_idr, sizeof sps_idr, 100, 200), KP_ERR_INVALID_ARGUMENT);
        kp_pusher_stop(p, 10);
        kp_pusher_free(p);
    }
}

int main(int argc, char **argv)
{
    char silent[64];
    int listener = silent_listener(silent, sizeof silent);
    const char *url = argc > 1 ? argv[1] : silent;
    int i;

    for (i = 0; i < CHUNK * CH; i++)
        pcm[i] = (int16_t)((i % 100) * 100 - 5000);
    memset(pixels, 128, sizeof pixels);

    eight_threads(url, 4000, 3000, 1);
    for (i = 0; i < 20; i++)
        eight_threads(silent, 30 + i * 7, 100, 0);
    many_pushers(silent);
    wrong_kind(silent);
    close(listener);

    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
