package dev.kitepush;

import java.nio.ByteBuffer;

/**
 * A picture lent by a pusher to write one frame into in place ({@link LivePusher#acquireVideoSlot},
 * kp_pusher_acquire_video_slot): for frames made in software (a renderer, a decoder, a file), whose
 * copy into the pusher ({@link LivePusher#pushVideo}) is then saved. I420 of the configured size with
 * unpadded planes: {@link #y}, {@link #u} and {@link #v} are direct buffers over the SDK's memory,
 * their previous content undefined. Like MediaCodec's input buffers, they must not be touched after
 * {@link LivePusher#submitVideoSlot} or {@link #close}: the memory goes back to the pusher, and
 * writing to it afterwards spoils another frame (or worse, once the pusher is closed). Not
 * thread-safe.
 */
public final class VideoSlot implements AutoCloseable {
    public final int width;
    public final int height;
    /** Bytes per row of {@link #y}, and of {@link #u} and {@link #v}. */
    public final int strideY;
    public final int strideUV;
    public final ByteBuffer y;
    public final ByteBuffer u;
    public final ByteBuffer v;
    private long slot;

    VideoSlot(long slot, int width, int height, int strideY, int strideUV, ByteBuffer[] planes) {
        this.slot = slot;
        this.width = width;
        this.height = height;
        this.strideY = strideY;
        this.strideUV = strideUV;
        this.y = planes[0];
        this.u = planes[1];
        this.v = planes[2];
    }

    /** Gives the slot back unsubmitted (kp_video_slot_free); a no-op once submitted or closed. */
    @Override
    public void close() {
        long s = take();
        if (s != 0) {
            Native.freeVideoSlot(s);
        }
    }

    /** The native slot, once: 0 after the first call. */
    long take() {
        long s = slot;
        slot = 0;
        return s;
    }
}
