/* A C host that keeps SIGPIPE's default action (terminate) must survive a destination that failed:
 * its network worker is gone, and media queued afterwards, kp_pusher_stop and kp_pusher_free all
 * wake it through a socket whose reading end is closed (EPIPE). A SIGPIPE kills this program, and
 * the test harness sees signal 13 instead of exit 0.
 *   sigpipe [URL]   URL: one that refuses connections (default rtmp://127.0.0.1:1/live/k)
 */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define W 160
#define H 120

struct status {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int failed, stopped;
    kp_result failed_code;
};

static void on_event(void *userdata, const kp_event *ev)
{
    struct status *st = (struct status *)userdata;
    pthread_mutex_lock(&st->lock);
    if (ev->kind == KP_EVENT_FAILED) {
        st->failed = 1;
        st->failed_code = ev->code;
    } else if (ev->kind == KP_EVENT_STOPPED) {
        st->stopped = 1;
    }
    pthread_cond_broadcast(&st->changed);
    pthread_mutex_unlock(&st->lock);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "rtmp://127.0.0.1:1/live/k";
    static uint8_t y[W * H], u[W * H / 4], v[W * H / 4];
    struct status st;
    struct kp_config *cfg;
    struct kp_pusher *p = NULL;
    struct timespec deadline;
    int i, failed;

    /* What a C host without its own handler has; set explicitly in case the parent ignored it. */
    CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR);

    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.changed, NULL);
    memset(y, 16, sizeof y);
    memset(u, 128, sizeof u);
    memset(v, 128, sizeof v);

    cfg = kp_config_new();
    CHECK(cfg != NULL);
    CHECK_RC(kp_config_set_url(cfg, url), KP_OK);
    CHECK_RC(kp_config_set_video(cfg, W, H, 15.0, 200, 15), KP_OK);
    /* One attempt, then FAILED: the destination's worker ends. */
    CHECK_RC(kp_config_set_reconnect(cfg, 100, 1.5, 100, 1, 0), KP_OK);
    CHECK_RC(kp_config_set_event_callback(cfg, on_event, &st), KP_OK);
    CHECK_RC(kp_pusher_new(cfg, &p), KP_OK);
    kp_config_free(cfg);
    if (p == NULL)
        return 1;
    CHECK_RC(kp_pusher_start(p), KP_OK);

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 15;
    pthread_mutex_lock(&st.lock);
    while (!st.failed)
        if (pthread_cond_timedwait(&st.changed, &st.lock, &deadline) != 0)
            break;
    failed = st.failed;
    pthread_mutex_unlock(&st.lock);
    CHECK(failed);
    CHECK(st.failed_code == KP_ERR_CONNECT);

    /* Media after the failure: encoded and queued for the gone worker, each queueing wakes it. */
    for (i = 0; i < 10; i++) {
        kp_video_frame f;
        kp_result r;
        memset(&f, 0, sizeof f);
        f.format = KP_PIXEL_FORMAT_I420;
        f.width = W;
        f.height = H;
        f.planes[0] = y;
        f.planes[1] = u;
        f.planes[2] = v;
        f.strides[0] = W;
        f.strides[1] = W / 2;
        f.strides[2] = W / 2;
        f.plane_sizes[0] = sizeof y;
        f.plane_sizes[1] = sizeof u;
        f.plane_sizes[2] = sizeof v;
        r = kp_pusher_push_video(p, &f, (int64_t)i * 66666);
        /* Refused once the pusher has failed, or queued: either way it must not kill us. */
        CHECK(r == KP_OK || r == KP_ERR_NOT_STARTED || r == KP_ERR_INVALID_STATE || r == KP_ERR_QUEUE_FULL);
    }
    kp_pusher_stop(p, 1000);
    kp_pusher_free(p);
    pthread_cond_destroy(&st.changed);
    pthread_mutex_destroy(&st.lock);
    printf("sigpipe: %d checks, %d failed\n", checks, failures);
    return failures != 0;
}
