package dev.kitepush;

/** kp_audio_encoder: where the audio comes from. */
public enum AudioEncoder {
    /** 16-bit PCM ({@link LivePusher#pushAudio}) encoded to AAC-LC by the bundled FDK AAC. */
    FDK_AAC(0),
    /** AAC frames, raw or ADTS ({@link LivePusher#pushAac}). */
    PASSTHROUGH(1),
    /**
     * Opus packets ({@link LivePusher#pushOpus}, e.g. MediaCodec's audio/opus output) for WHIP;
     * PCM given beside them ({@link LivePusher#pushAudio}) becomes the AAC of RTMP, SRT and recording.
     */
    PASSTHROUGH_OPUS(2);

    final int value;

    AudioEncoder(int value) {
        this.value = value;
    }
}
