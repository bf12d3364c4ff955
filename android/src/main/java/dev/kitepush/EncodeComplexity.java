package dev.kitepush;

/**
 * kp_encode_complexity: an encode ladder rung's encoder complexity. OpenH264: its own levels (it
 * runs at MEDIUM unless the ladder says otherwise); x264: HIGH is the configured preset, MEDIUM
 * superfast, LOW ultrafast.
 */
public enum EncodeComplexity {
    HIGH(0),
    MEDIUM(1),
    LOW(2);

    final int value;

    EncodeComplexity(int value) {
        this.value = value;
    }
}
