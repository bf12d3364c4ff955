package dev.kitepush;

/**
 * A kitepush call failed: {@link #getCode()} is the C ABI's {@code kp_result} (one of the
 * {@link ResultCode} constants; new codes may be added), the message is the code's description
 * followed by the SDK's detailed message for this failure. Unchecked, like the platform's
 * {@code MediaCodec.CodecException}: most codes are programming errors, and a pusher keeps
 * streaming after a refused frame.
 */
public class KitePushException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int code;

    KitePushException(int code, String codeText, String detail) {
        super(detail == null || detail.isEmpty() ? codeText : codeText + ": " + detail);
        this.code = code;
    }

    /** The kp_result code ({@link ResultCode}). */
    public int getCode() {
        return code;
    }

    /** The constant's name, e.g. "KP_ERR_INVALID_URL" ("KP_UNKNOWN_n" for a code this version lacks). */
    public String getCodeName() {
        return ResultCode.name(code);
    }
}
