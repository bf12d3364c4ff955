package dev.kitepush;

/** kp_pause_mode: what {@link LivePusher#pause} sends while the app cannot capture. */
public enum PauseMode {
    /**
     * A still picture (the one of {@link LivePusher#setPauseImage}, else the last frame pushed)
     * repeated at the pause frame rate; audio is what the app keeps pushing, or silence.
     */
    STILL_IMAGE(0),
    /** As STILL_IMAGE, but the audio is silence. */
    STILL_IMAGE_SILENT(1),
    /** No video; audio is what the app keeps pushing, or silence. */
    AUDIO_ONLY(2);

    final int value;

    PauseMode(int value) {
        this.value = value;
    }
}
