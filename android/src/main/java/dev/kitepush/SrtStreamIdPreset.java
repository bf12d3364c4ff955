package dev.kitepush;

/** kp_srt_stream_id_preset: how {@link LivePusherConfig.Builder#srtStreamId} builds the SRT stream id. */
public enum SrtStreamIdPreset {
    /** Sent as given. */
    RAW(0),
    /** SRS and ZLMediaKit: {@code app/stream} becomes {@code #!::r=app/stream,m=publish}. */
    SRS(1),
    /** MediaMTX: {@code path} becomes {@code publish:path}. */
    MEDIAMTX(2);

    final int value;

    SrtStreamIdPreset(int value) {
        this.value = value;
    }
}
