//! FDK AAC backend: AAC-LC through a small safe wrapper on `fdk-aac-sys`.
//!
//! The higher-level `fdk-aac` crate is not used (DEPENDENCY-NOTES.md): it cannot flush (the last
//! ~2048 samples of a stream are lost), hard-codes its open parameters, and declares its handle
//! `Sync` although encoding is not thread-safe.
//!
//! Licence: the Fraunhofer FDK AAC licence, not GPL compatible.

use std::ffi::c_void;
use std::ptr;

use fdk_aac_sys as sys;

use super::{AudioEncoder, AudioEncoderConfig};
use crate::error::{Error, Result};

/// Sampling rates with an AAC sampling-frequency index.
const AAC_RATES: [u32; 12] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000];

/// Flushing drains the encoder delay (about 2048 samples for AAC-LC) in a few calls; a bound
/// turns a misbehaving library into an error instead of a hang.
const MAX_FLUSH_CALLS: usize = 64;

/// An AAC-LC CBR encoder emitting raw access units (no ADTS).
///
/// `Send` but not `Sync`: the native handle has no thread affinity but must not be used from two
/// threads at once.
pub struct FdkAacEncoder {
    handle: sys::HANDLE_AACENCODER,
    asc: Vec<u8>,
    frame_samples: usize,
    channels: usize,
    /// Output scratch for one access unit, sized once from the encoder's maximum.
    out: Vec<u8>,
    /// The codec delay FDK reports (`nDelay`).
    delay: usize,
}

// SAFETY: the handle is owned exclusively by this value and FDK AAC keeps no thread-local
// state, so moving it to another thread is fine. The raw pointer keeps the type `!Sync`, and
// every call that touches the handle takes `&mut self`.
unsafe impl Send for FdkAacEncoder {}

/// One `aacEncEncode` call's result.
struct Step {
    consumed: usize,
    out_bytes: usize,
    eof: bool,
}

impl FdkAacEncoder {
    pub fn new(cfg: &AudioEncoderConfig) -> Result<Self> {
        let channels = match cfg.channels {
            1 | 2 => cfg.channels,
            n => return Err(Error::Unsupported(format!("{n} audio channels (mono or stereo only)"))),
        };
        if !AAC_RATES.contains(&cfg.sample_rate) {
            return Err(Error::Unsupported(format!("sample rate {} Hz for AAC", cfg.sample_rate)));
        }
        let bitrate = match cfg.bitrate_kbps.checked_mul(1000) {
            Some(b) if b > 0 => b,
            _ => return Err(Error::InvalidArgument(format!("audio bitrate {} kbit/s", cfg.bitrate_kbps))),
        };

        let mut handle: sys::HANDLE_AACENCODER = ptr::null_mut();
        // SAFETY: `handle` is a valid out-pointer; module 0x01 is the plain AAC encoder (no SBR,
        // PS, MPS or metadata, which LC does not need), sized for `channels`.
        let rc = unsafe { sys::aacEncOpen(&mut handle, 0x01, channels) };
        if rc != sys::AACENC_ERROR_AACENC_OK || handle.is_null() {
            return Err(Error::Encoder(format!("aacEncOpen failed: {rc:#x}")));
        }
        // From here on, Drop closes the handle on every error path.
        let mut enc = FdkAacEncoder {
            handle,
            asc: Vec::new(),
            frame_samples: 0,
            channels: channels as usize,
            out: Vec::new(),
            delay: 0,
        };
        enc.set(sys::AACENC_PARAM_AACENC_AOT, sys::AUDIO_OBJECT_TYPE_AOT_AAC_LC as u32)?;
        enc.set(sys::AACENC_PARAM_AACENC_SAMPLERATE, cfg.sample_rate)?;
        enc.set(sys::AACENC_PARAM_AACENC_CHANNELMODE, channels)?;
        // WAV channel order (L, R), which is what interleaved PCM from apps uses.
        enc.set(sys::AACENC_PARAM_AACENC_CHANNELORDER, 1)?;
        // Constant bitrate: the pusher's congestion and ABR logic budgets with a fixed audio rate.
        enc.set(sys::AACENC_PARAM_AACENC_BITRATEMODE, 0)?;
        enc.set(sys::AACENC_PARAM_AACENC_BITRATE, bitrate)?;
        // Raw access units: FLV carries the AudioSpecificConfig in its sequence header instead.
        enc.set(sys::AACENC_PARAM_AACENC_TRANSMUX, sys::TRANSPORT_TYPE_TT_MP4_RAW as u32)?;
        // Better quality for some extra CPU; AAC-LC is cheap next to video.
        enc.set(sys::AACENC_PARAM_AACENC_AFTERBURNER, 1)?;
        enc.apply()?;

        let mut info = std::mem::MaybeUninit::<sys::AACENC_InfoStruct>::zeroed();
        // SAFETY: the handle is open and initialised; `info` is a valid out-pointer (zeroed, so
        // fully initialised even where the library leaves fields untouched).
        let rc = unsafe { sys::aacEncInfo(enc.handle, info.as_mut_ptr()) };
        if rc != sys::AACENC_ERROR_AACENC_OK {
            return Err(Error::Encoder(format!("aacEncInfo failed: {rc:#x}")));
        }
        // SAFETY: zero-initialised plain C data, filled by the successful call above.
        let info = unsafe { info.assume_init() };
        let conf_len = (info.confSize as usize).min(info.confBuf.len());
        enc.asc = info.confBuf[..conf_len].to_vec();
        enc.frame_samples = info.frameLength as usize;
        enc.delay = info.nDelay as usize;
        // 6144 bits per channel is the AAC maximum for one frame.
        enc.out = vec![0; (info.maxOutBufBytes as usize).max(768 * enc.channels)];
        if enc.asc.is_empty() || enc.frame_samples == 0 {
            return Err(Error::Encoder("FDK AAC returned no configuration".into()));
        }
        Ok(enc)
    }

    fn set(&mut self, param: sys::AACENC_PARAM, value: u32) -> Result<()> {
        // SAFETY: the handle is open; setting a parameter only stores it for the next init.
        let rc = unsafe { sys::aacEncoder_SetParam(self.handle, param, value) };
        if rc != sys::AACENC_ERROR_AACENC_OK {
            return Err(Error::Encoder(format!("aacEncoder_SetParam({param:#x}, {value}) failed: {rc:#x}")));
        }
        Ok(())
    }

    /// Runs the (re)initialisation the parameters set so far call for.
    fn apply(&mut self) -> Result<()> {
        // SAFETY: the handle is open; all-NULL buffers is the documented way to initialise
        // without encoding.
        let rc = unsafe { sys::aacEncEncode(self.handle, ptr::null(), ptr::null(), ptr::null(), ptr::null_mut()) };
        if rc != sys::AACENC_ERROR_AACENC_OK {
            return Err(Error::Encoder(format!("FDK AAC rejected the configuration: {rc:#x}")));
        }
        Ok(())
    }

    /// One encoder call: feeds `pcm` (or, with `None`, flushes) and leaves at most one access
    /// unit in `self.out`.
    fn step(&mut self, pcm: Option<&[i16]>) -> Result<Step> {
        let input = pcm.unwrap_or(&[]);
        let mut in_ptr = input.as_ptr().cast_mut().cast::<c_void>();
        let mut in_id = sys::AACENC_BufferIdentifier_IN_AUDIO_DATA as sys::INT;
        let mut in_size = std::mem::size_of_val(input) as sys::INT;
        let mut in_el = std::mem::size_of::<i16>() as sys::INT;
        let in_desc = sys::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut in_ptr,
            bufferIdentifiers: &mut in_id,
            bufSizes: &mut in_size,
            bufElSizes: &mut in_el,
        };
        let mut out_ptr = self.out.as_mut_ptr().cast::<c_void>();
        let mut out_id = sys::AACENC_BufferIdentifier_OUT_BITSTREAM_DATA as sys::INT;
        let mut out_size = self.out.len() as sys::INT;
        let mut out_el = 1 as sys::INT;
        let out_desc = sys::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut out_ptr,
            bufferIdentifiers: &mut out_id,
            bufSizes: &mut out_size,
            bufElSizes: &mut out_el,
        };
        let in_args = sys::AACENC_InArgs {
            // -1 asks the encoder to pad with silence and drain its delay line.
            numInSamples: match pcm {
                Some(p) => p.len() as sys::INT,
                None => -1,
            },
            numAncBytes: 0,
        };
        let mut out_args = sys::AACENC_OutArgs { numOutBytes: 0, numInSamples: 0, numAncBytes: 0, bitResState: 0 };
        // SAFETY: the handle is open. Every descriptor points at locals that outlive the call;
        // the input buffer is `input` (the library only reads it, despite the `*mut`), the output
        // buffer is `self.out` with its true length, so the library cannot write past it.
        let rc = unsafe { sys::aacEncEncode(self.handle, &in_desc, &out_desc, &in_args, &mut out_args) };
        match rc {
            sys::AACENC_ERROR_AACENC_OK | sys::AACENC_ERROR_AACENC_ENCODE_EOF => Ok(Step {
                consumed: out_args.numInSamples.max(0) as usize,
                out_bytes: (out_args.numOutBytes.max(0) as usize).min(self.out.len()),
                eof: rc == sys::AACENC_ERROR_AACENC_ENCODE_EOF,
            }),
            rc => Err(Error::Encoder(format!("aacEncEncode failed: {rc:#x}"))),
        }
    }
}

impl AudioEncoder for FdkAacEncoder {
    fn audio_specific_config(&self) -> &[u8] {
        &self.asc
    }

    fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    fn encode(&mut self, pcm: &[i16], emit: &mut dyn FnMut(&[u8])) -> Result<()> {
        if !pcm.len().is_multiple_of(self.channels) {
            return Err(Error::BadFrameSize(format!(
                "{} samples is not a whole number of {}-channel frames",
                pcm.len(),
                self.channels
            )));
        }
        let mut rest = pcm;
        // The library takes at most one frame's worth of input per call and emits at most one
        // access unit, so loop until all input is buffered or encoded.
        while !rest.is_empty() {
            let step = self.step(Some(rest))?;
            if step.out_bytes > 0 {
                emit(&self.out[..step.out_bytes]);
            }
            if step.consumed == 0 && step.out_bytes == 0 {
                return Err(Error::Encoder(format!("FDK AAC made no progress with {} samples left", rest.len())));
            }
            rest = &rest[step.consumed.min(rest.len())..];
        }
        Ok(())
    }

    fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) -> Result<()> {
        for _ in 0..MAX_FLUSH_CALLS {
            let step = self.step(None)?;
            if step.out_bytes > 0 {
                emit(&self.out[..step.out_bytes]);
            }
            if step.eof {
                // Leave the encoder ready for a new stream: the delay line and the count of
                // padding already appended are reset.
                self.set(sys::AACENC_PARAM_AACENC_CONTROL_STATE, sys::AACENC_CTRLFLAGS_AACENC_INIT_ALL)?;
                return self.apply();
            }
        }
        Err(Error::Encoder("FDK AAC flush did not finish".into()))
    }

    fn priming_samples(&self) -> usize {
        self.delay
    }
}

impl Drop for FdkAacEncoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from aacEncOpen and is closed exactly once; aacEncClose nulls it.
        unsafe {
            sys::aacEncClose(&mut self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Tone;
    use std::process::Command;

    fn encoder(sample_rate: u32, channels: u32, kbps: u32) -> FdkAacEncoder {
        FdkAacEncoder::new(&AudioEncoderConfig { sample_rate, channels, bitrate_kbps: kbps }).unwrap()
    }

    /// Encodes `seconds` of a 440 Hz tone in uneven chunks, then flushes.
    fn encode_tone(enc: &mut FdkAacEncoder, rate: u32, channels: u32, seconds: u32) -> Vec<Vec<u8>> {
        let mut pcm = vec![0i16; (rate * seconds * channels) as usize];
        Tone::new(rate, channels, 440.0).fill(&mut pcm);
        let mut aus = Vec::new();
        let mut emit = |au: &[u8]| aus.push(au.to_vec());
        // Chunk sizes that do not line up with 1024-sample frames (480 = 10 ms at 48 kHz).
        for chunk in pcm.chunks(480 * channels as usize) {
            enc.encode(chunk, &mut emit).unwrap();
        }
        enc.flush(&mut emit).unwrap();
        aus
    }

    /// Wraps raw access units in ADTS headers (AAC-LC, no CRC).
    fn adts(aus: &[Vec<u8>], rate: u32, channels: u32) -> Vec<u8> {
        let sf_index = AAC_RATES.iter().position(|&r| r == rate).unwrap() as u8;
        let mut out = Vec::new();
        for au in aus {
            let len = au.len() + 7;
            out.extend_from_slice(&[
                0xFF,
                0xF1,
                (1 << 6) | (sf_index << 2) | ((channels as u8 >> 2) & 1),
                ((channels as u8 & 3) << 6) | (len >> 11) as u8,
                (len >> 3) as u8,
                ((len as u8 & 7) << 5) | 0x1F,
                0xFC,
            ]);
            out.extend_from_slice(au);
        }
        out
    }

    /// Decodes an ADTS stream with FFmpeg (which must report no error) to mono s16.
    fn decode_with_ffmpeg(name: &str, stream: &[u8]) -> Vec<i16> {
        let path = std::env::temp_dir().join(format!("kitepush-{}-{name}", std::process::id()));
        std::fs::write(&path, stream).unwrap();
        let p = path.to_str().unwrap();
        let run = |prog: &str, args: &[&str]| {
            Command::new(prog)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("{prog} must be on PATH for this test: {e}"))
        };
        let dec = run("ffmpeg", &["-v", "error", "-f", "aac", "-i", p, "-f", "null", "-"]);
        let raw = run("ffmpeg", &["-v", "error", "-f", "aac", "-i", p, "-f", "s16le", "-ac", "1", "-"]);
        std::fs::remove_file(&path).ok();
        assert!(dec.status.success() && raw.status.success());
        assert_eq!(String::from_utf8_lossy(&dec.stderr), "");
        raw.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
    }

    #[test]
    fn stereo_44k1_config() {
        let enc = encoder(44100, 2, 128);
        assert_eq!(enc.audio_specific_config(), [0x12, 0x10]);
        assert_eq!(enc.frame_samples(), 1024);
    }

    #[test]
    fn one_second_stereo_is_complete_and_decodes() {
        let mut enc = encoder(44100, 2, 128);
        let aus = encode_tone(&mut enc, 44100, 2, 1);
        // Every input sample is in some AU: 44100 samples need 44 frames, and flushing also
        // drains the encoder delay, which comes out as extra frames.
        let min = 44100usize.div_ceil(1024);
        assert!(aus.len() >= min, "{} AUs", aus.len());
        let delay_frames = aus.len() - min;
        assert!((1..=3).contains(&delay_frames), "{} AUs", aus.len());
        // CBR at 128 kbit/s: about 371 bytes per frame.
        let avg = aus.iter().map(Vec::len).sum::<usize>() / aus.len();
        assert!((300..=450).contains(&avg), "average AU {avg} bytes");

        let pcm = decode_with_ffmpeg("tone.aac", &adts(&aus, 44100, 2));
        assert_eq!(pcm.len(), aus.len() * 1024);
        // The tone starts after the encoder delay and must run to its very end: the last
        // input samples survive, and silence follows.
        let onset = pcm.iter().position(|s| s.unsigned_abs() > 300).unwrap();
        assert!(onset <= 2 * 1024 + 64, "delay {onset}");
        // The reported delay is where the input starts in the decoded stream (the tone needs a
        // few samples to pass the threshold): what the pusher subtracts from audio timestamps.
        let delay = enc.priming_samples();
        assert!(onset >= delay && onset <= delay + 8, "onset {onset}, reported delay {delay}");
        let end = onset + 44100;
        assert!(pcm.len() >= end + 256, "{} decoded, tone ends at {end}", pcm.len());
        let tone_rms = f64::from(i16::MAX) * 10f64.powf(-12.0 / 20.0) / 2f64.sqrt();
        let tail = rms(&pcm[end - 512..end - 16]);
        assert!((tail / tone_rms - 1.0).abs() < 0.1, "tail rms {tail} vs {tone_rms}");
        let after = rms(&pcm[end + 128..]);
        assert!(after < tone_rms / 30.0, "after the end: rms {after}");
    }

    #[test]
    fn mono_48k() {
        let mut enc = encoder(48000, 1, 64);
        assert_eq!(enc.audio_specific_config(), [0x11, 0x88]);
        let aus = encode_tone(&mut enc, 48000, 1, 1);
        assert!(aus.len() > 48000 / 1024, "{} AUs", aus.len());
        let pcm = decode_with_ffmpeg("mono.aac", &adts(&aus, 48000, 1));
        assert_eq!(pcm.len(), aus.len() * 1024);
        let onset = pcm.iter().position(|s| s.unsigned_abs() > 300).unwrap();
        let tail = rms(&pcm[onset + 48000 - 512..onset + 48000 - 16]);
        assert!(tail > 5000.0, "tail rms {tail}");
    }

    #[test]
    fn flush_covers_a_partial_frame_and_the_encoder_is_reusable() {
        let mut enc = encoder(48000, 2, 96);
        let mut pcm = vec![0i16; 2 * 100];
        Tone::new(48000, 2, 440.0).fill(&mut pcm);
        let mut n = 0;
        enc.encode(&pcm, &mut |_| n += 1).unwrap();
        assert_eq!(n, 0, "100 samples cannot make a frame");
        enc.flush(&mut |_| n += 1).unwrap();
        assert!(n >= 2, "{n} AUs: the partial frame plus the delay");
        // A second stream on the same encoder gets the same treatment.
        let first = n;
        n = 0;
        enc.encode(&pcm, &mut |_| n += 1).unwrap();
        enc.flush(&mut |_| n += 1).unwrap();
        assert_eq!(n, first);
    }

    #[test]
    fn rejects_bad_config_and_input() {
        let cfg = |sample_rate, channels, bitrate_kbps| AudioEncoderConfig { sample_rate, channels, bitrate_kbps };
        let err = |c| FdkAacEncoder::new(&c).err();
        assert!(matches!(err(cfg(44100, 6, 128)), Some(Error::Unsupported(_))));
        assert!(matches!(err(cfg(44100, 0, 128)), Some(Error::Unsupported(_))));
        assert!(matches!(err(cfg(44000, 2, 128)), Some(Error::Unsupported(_))));
        assert!(matches!(err(cfg(44100, 2, 0)), Some(Error::InvalidArgument(_))));
        let mut enc = encoder(44100, 2, 128);
        let r = enc.encode(&[0; 3], &mut |_| {});
        assert!(matches!(r, Err(Error::BadFrameSize(_))), "{r:?}");
    }

    #[test]
    fn is_send() {
        fn send<T: Send>() {}
        send::<FdkAacEncoder>();
    }
}
