//! Opus backend (libopus through the `opus` crate, built from the source bundled in
//! `opusic-sys`): 20 ms packets for the WebRTC output, from the same interleaved s16 PCM the AAC
//! path takes, in any chunk size.
//!
//! libopus takes 8, 12, 16, 24 and 48 kHz directly; other input rates (22.05, 32, 44.1 kHz) are
//! resampled to 48 kHz first ([`super::resample`]). Either way an Opus stream's RTP clock is
//! 48 kHz, and 20 ms of input is a whole number of samples at every rate the pusher accepts.
//!
//! Settings: application "audio" (not "restricted low delay"): a live stream's viewers sit behind
//! a jitter buffer anyway, so the 4 ms of extra lookahead costs nothing they notice, while it
//! keeps SILK (and the hybrid mode) for speech at low bitrates, which "low delay" gives up.
//! Complexity 5 of 10: about half the CPU of the default 10 (see the hot_paths bench) for a
//! difference that is hard to hear at streaming bitrates, on the low-end phones this runs on.
//! VBR (constrained), as WebRTC senders use it; no DTX (a silent stretch still sends packets, so
//! the receiver's clock keeps running).
//!
//! Loss: audio is not retransmitted (a late frame is no use, and browsers do not NACK it), so
//! in-band FEC is on, as in WebRTC's own senders: with the loss the receivers report
//! ([`AudioEncoder::set_expected_loss`]) libopus carries a low-rate copy of each frame (LBRR) in
//! the next packet, which a receiver decodes in place of a lost one. At 0 % loss it carries none
//! and costs nothing; with loss it favours SILK or hybrid over CELT-only, and takes its bits from
//! the same bitrate.

use opus::{Application, Bitrate, Channels};

use super::resample::Resampler;
use super::{AudioEncoder, AudioEncoderConfig};
use crate::error::{Error, Result};

/// Rates libopus encodes without resampling.
const NATIVE_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];
/// Packets per second (20 ms each).
const PACKETS_PER_SECOND: u32 = 50;
/// The encoder's complexity (0-10); see the module comment.
pub const COMPLEXITY: i32 = 5;
/// libopus's bitrate range, bit/s.
const MIN_BPS: u32 = 6_000;
const MAX_BPS: u32 = 510_000;
/// Room for one packet: 1275 bytes is the most one 20 ms frame can take.
const MAX_PACKET: usize = 1500;

fn opus_err(what: &str, e: opus::Error) -> Error {
    Error::Encoder(format!("opus {what}: {e}"))
}

/// An Opus encoder emitting one packet per 20 ms of input.
pub struct OpusEncoder {
    enc: opus::Encoder,
    channels: usize,
    in_rate: u32,
    /// The rate libopus runs at (the input's when it is native, else 48 kHz).
    enc_rate: u32,
    resampler: Option<Resampler>,
    /// One frame at `enc_rate`, filling up.
    frame: Vec<i16>,
    packet: Vec<u8>,
    /// libopus's lookahead, samples per channel at `enc_rate`.
    lookahead: usize,
    /// Input samples per channel taken.
    taken: u64,
    /// Samples per channel given to libopus (resampled, padding included).
    pushed: u64,
}

impl OpusEncoder {
    pub fn new(cfg: &AudioEncoderConfig) -> Result<Self> {
        Self::with_complexity(cfg, COMPLEXITY)
    }

    pub fn with_complexity(cfg: &AudioEncoderConfig, complexity: i32) -> Result<Self> {
        let (channels, layout) = match cfg.channels {
            1 => (1, Channels::Mono),
            2 => (2, Channels::Stereo),
            n => return Err(Error::Unsupported(format!("{n} audio channels (mono or stereo only)"))),
        };
        if cfg.sample_rate == 0 || !cfg.sample_rate.is_multiple_of(PACKETS_PER_SECOND) {
            return Err(Error::Unsupported(format!("sample rate {} Hz for Opus", cfg.sample_rate)));
        }
        let (enc_rate, resampler) = if NATIVE_RATES.contains(&cfg.sample_rate) {
            (cfg.sample_rate, None)
        } else {
            let r = Resampler::new(cfg.sample_rate, 48000, channels)
                .ok_or_else(|| Error::Unsupported(format!("sample rate {} Hz for Opus", cfg.sample_rate)))?;
            (48000, Some(r))
        };
        let mut enc = opus::Encoder::new(enc_rate, layout, Application::Audio).map_err(|e| opus_err("create", e))?;
        let bps = cfg.bitrate_kbps.saturating_mul(1000).clamp(MIN_BPS, MAX_BPS);
        enc.set_bitrate(Bitrate::Bits(bps as i32)).map_err(|e| opus_err("bitrate", e))?;
        enc.set_complexity(complexity.clamp(0, 10)).map_err(|e| opus_err("complexity", e))?;
        enc.set_vbr(true).map_err(|e| opus_err("vbr", e))?;
        enc.set_vbr_constraint(true).map_err(|e| opus_err("vbr", e))?;
        enc.set_inband_fec(true).map_err(|e| opus_err("fec", e))?;
        let lookahead = enc.get_lookahead().map_err(|e| opus_err("lookahead", e))?.max(0) as usize;
        let frame_len = (enc_rate / PACKETS_PER_SECOND) as usize * channels;
        Ok(OpusEncoder {
            enc,
            channels,
            in_rate: cfg.sample_rate,
            enc_rate,
            resampler,
            frame: Vec::with_capacity(frame_len),
            packet: vec![0; MAX_PACKET],
            lookahead,
            taken: 0,
            pushed: 0,
        })
    }

    /// The rate libopus runs at.
    pub fn encoder_rate(&self) -> u32 {
        self.enc_rate
    }
}

/// The encoder's side of [`OpusEncoder`], borrowed apart from the resampler.
struct Frames<'a> {
    enc: &'a mut opus::Encoder,
    frame: &'a mut Vec<i16>,
    packet: &'a mut [u8],
    pushed: &'a mut u64,
    channels: usize,
}

impl OpusEncoder {
    fn split(&mut self) -> (Option<&mut Resampler>, Frames<'_>) {
        let OpusEncoder { enc, frame, packet, pushed, channels, resampler, .. } = self;
        (resampler.as_mut(), Frames { enc, frame, packet, pushed, channels: *channels })
    }
}

/// Appends `pcm` to the frame, encoding and emitting each one that fills up.
fn feed(st: &mut Frames<'_>, pcm: &[i16], emit: &mut dyn FnMut(&[u8])) -> Result<()> {
    let Frames { enc, frame, packet, pushed, channels } = st;
    **pushed += (pcm.len() / *channels) as u64;
    let full = frame.capacity();
    let mut rest = pcm;
    while !rest.is_empty() {
        let n = (full - frame.len()).min(rest.len());
        frame.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if frame.len() == full {
            let len = enc.encode(frame, packet).map_err(|e| opus_err("encode", e))?;
            frame.clear();
            emit(&packet[..len]);
        }
    }
    Ok(())
}

impl AudioEncoder for OpusEncoder {
    /// None: an Opus stream needs no decoder configuration on WebRTC.
    fn audio_specific_config(&self) -> &[u8] {
        &[]
    }

    /// 20 ms, counted at the input rate (the pusher's audio clock runs at it).
    fn frame_samples(&self) -> usize {
        (self.in_rate / PACKETS_PER_SECOND) as usize
    }

    fn encode(&mut self, pcm: &[i16], emit: &mut dyn FnMut(&[u8])) -> Result<()> {
        let pcm = &pcm[..pcm.len() - pcm.len() % self.channels];
        self.taken += (pcm.len() / self.channels) as u64;
        let (resampler, mut st) = self.split();
        match resampler {
            Some(r) => {
                let mut result = Ok(());
                r.process(pcm, &mut |out| {
                    if result.is_ok() {
                        result = feed(&mut st, out, emit);
                    }
                });
                result
            }
            None => feed(&mut st, pcm, emit),
        }
    }

    /// Pushes the resampler's window and libopus's lookahead out with silence, so the last input
    /// sample reaches a packet.
    fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) -> Result<()> {
        let ch = self.channels;
        let (in_rate, enc_rate) = (u64::from(self.in_rate), u64::from(self.enc_rate));
        // Input up to `taken`, plus the lookahead, must be inside whole packets.
        let frame_samples = enc_rate / u64::from(PACKETS_PER_SECOND);
        let needed = (self.taken * enc_rate).div_ceil(in_rate) + self.lookahead as u64;
        let (resampler, mut st) = self.split();
        if let Some(r) = resampler {
            let zeros = vec![0i16; r.tail_frames() * ch];
            let mut result = Ok(());
            r.process(&zeros, &mut |out| {
                if result.is_ok() {
                    result = feed(&mut st, out, emit);
                }
            });
            result?;
        }
        let end = needed.max(*st.pushed).div_ceil(frame_samples) * frame_samples;
        let zeros = vec![0i16; (end - *st.pushed) as usize * ch];
        feed(&mut st, &zeros, emit)
    }

    /// libopus's lookahead, at the input rate (the resampler adds no shift: see its module).
    fn priming_samples(&self) -> usize {
        (self.lookahead as u64 * u64::from(self.in_rate) / u64::from(self.enc_rate)) as usize
    }

    fn set_expected_loss(&mut self, percent: u8) -> Result<()> {
        self.enc.set_packet_loss_perc(i32::from(percent.min(100))).map_err(|e| opus_err("packet loss", e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::resample::tests::{sine, snr_db};
    use super::*;

    fn cfg(rate: u32, channels: u32, kbps: u32) -> AudioEncoderConfig {
        AudioEncoderConfig { sample_rate: rate, channels, bitrate_kbps: kbps }
    }

    /// Encodes `pcm` in `chunk` frames, flushes, and returns the packets.
    fn encode_all(enc: &mut OpusEncoder, pcm: &[i16], chunk: usize) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        let ch = enc.channels;
        for c in pcm.chunks(chunk * ch) {
            enc.encode(c, &mut |p| packets.push(p.to_vec())).unwrap();
        }
        enc.flush(&mut |p| packets.push(p.to_vec())).unwrap();
        packets
    }

    /// Decodes at 48 kHz and drops the encoder's lookahead, so sample n is input time n.
    fn decode(packets: &[Vec<u8>], channels: usize, lookahead_48k: usize) -> Vec<i16> {
        let layout = if channels == 1 { Channels::Mono } else { Channels::Stereo };
        let mut dec = opus::Decoder::new(48000, layout).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0i16; 5760 * channels];
        for p in packets {
            assert_eq!(opus::packet::get_nb_samples(p, 48000).unwrap(), 960, "20 ms packets");
            let n = dec.decode(p, &mut buf, false).unwrap();
            out.extend_from_slice(&buf[..n * channels]);
        }
        out.drain(..lookahead_48k * channels);
        out
    }

    #[test]
    fn a_sine_comes_back_through_libopus_at_48khz() {
        for (rate, channels) in [(48000, 2), (44100, 2), (44100, 1), (16000, 1), (32000, 2), (22050, 1)] {
            let mut enc = OpusEncoder::new(&cfg(rate, channels, 128)).unwrap();
            let ch = channels as usize;
            let input = sine(1000.0, rate, rate as usize * 2, ch, 0.5);
            let packets = encode_all(&mut enc, &input, 441);
            assert_eq!(packets.len(), 100 + 1, "{rate} Hz: two seconds plus the flushed lookahead");
            let lookahead_48k = enc.lookahead * 48000 / enc.enc_rate as usize;
            let out = decode(&packets, ch, lookahead_48k);
            assert!(out.len() / ch >= 96000, "{rate} Hz: {} frames decoded", out.len() / ch);
            // A perceptual codec keeps the waveform well, not bit-exactly: the level and an SNR
            // well above what a broken timeline or resampler would give (0 dB or less); ~39-44 dB here.
            let snr = snr_db(&out[..96000 * ch], ch, 1000.0, 48000, 0.5, 960);
            eprintln!("opus {rate} Hz x{channels} 128 kbit/s, 1 kHz at -6 dBFS: SNR {snr:.1} dB");
            assert!(snr >= 30.0, "{rate} Hz x{channels}: SNR {snr:.1} dB");
            let rms = (out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / out.len() as f64).sqrt();
            let want = 0.5 * 32767.0 / 2f64.sqrt();
            assert!((rms / want - 1.0).abs() < 0.05, "{rate} Hz: level {rms:.0} vs {want:.0}");
        }
    }

    #[test]
    fn any_chunk_size_gives_the_same_packets() {
        let input = sine(440.0, 44100, 44100, 2, 0.5);
        let reference = encode_all(&mut OpusEncoder::new(&cfg(44100, 2, 96)).unwrap(), &input, 44100);
        for chunk in [1, 2, 3, 441, 882, 1000, 1024, 4096] {
            let got = encode_all(&mut OpusEncoder::new(&cfg(44100, 2, 96)).unwrap(), &input, chunk);
            assert_eq!(got, reference, "chunk {chunk}");
        }
        // Every size from 1 to 4096 frames, on a shorter input (resampled: both stages see it).
        let input = sine(440.0, 44100, 4410, 2, 0.5);
        let reference = encode_all(&mut OpusEncoder::new(&cfg(44100, 2, 64)).unwrap(), &input, 4410);
        assert_eq!(reference.len(), 6, "100 ms and the flushed lookahead");
        for chunk in 1..=4096 {
            let got = encode_all(&mut OpusEncoder::new(&cfg(44100, 2, 64)).unwrap(), &input, chunk);
            assert_eq!(got, reference, "chunk {chunk}");
        }
    }

    /// A signal a decoder cannot guess from the frame before: a new tone every 20 ms.
    fn hopping_tones(frames: usize, channels: usize) -> Vec<i16> {
        let mut seed = 12345u32;
        let mut out = Vec::with_capacity(frames * 960 * channels);
        for _ in 0..frames {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let hz = 200.0 + f64::from(seed >> 16 & 0x7ff);
            for n in 0..960 {
                let v = (0.4 * 32767.0 * (std::f64::consts::TAU * hz * n as f64 / 48000.0).sin()) as i16;
                out.extend(std::iter::repeat_n(v, channels));
            }
        }
        out
    }

    /// SNR (dB) over the lost frames of what a receiver makes of them, against what it decodes
    /// with nothing lost: every 10th packet is lost, and recovered from the next packet's FEC
    /// (`fec`) or concealed (PLC).
    fn recovered_snr(packets: &[Vec<u8>], channels: usize, fec: bool) -> f64 {
        let layout = if channels == 1 { Channels::Mono } else { Channels::Stereo };
        let (mut whole, mut lossy) =
            (opus::Decoder::new(48000, layout).unwrap(), opus::Decoder::new(48000, layout).unwrap());
        let (mut a, mut b) = (vec![0i16; 960 * channels], vec![0i16; 960 * channels]);
        let (mut signal, mut noise) = (0f64, 0f64);
        for k in 0..packets.len() - 1 {
            whole.decode(&packets[k], &mut a, false).unwrap();
            if k % 10 == 5 {
                let n =
                    if fec { lossy.decode(&packets[k + 1], &mut b, true) } else { lossy.decode(&[], &mut b, false) };
                assert_eq!(n.unwrap(), 960);
                signal += a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
                noise += a.iter().zip(&b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>();
            } else {
                lossy.decode(&packets[k], &mut b, false).unwrap();
            }
        }
        10.0 * (signal / noise.max(1.0)).log10()
    }

    #[test]
    fn reported_loss_puts_fec_in_the_packets_that_recovers_a_lost_one() {
        for (channels, kbps) in [(2usize, 128u32), (2, 64), (1, 32)] {
            let input = hopping_tones(200, channels);
            let run = |loss: u8| {
                let mut enc = OpusEncoder::new(&cfg(48000, channels as u32, kbps)).unwrap();
                enc.set_expected_loss(loss).unwrap();
                encode_all(&mut enc, &input, 960)
            };
            let (clean, protected) = (run(0), run(10));
            let plc = recovered_snr(&clean, channels, false);
            let no_fec = recovered_snr(&clean, channels, true);
            let fec = recovered_snr(&protected, channels, true);
            let size = |p: &[Vec<u8>]| p.iter().map(Vec::len).sum::<usize>();
            eprintln!(
                "opus x{channels} {kbps} kbit/s, every 10th packet lost: concealed {plc:.1} dB, \
                 no FEC in the packets {no_fec:.1} dB, FEC at 10 % {fec:.1} dB; bytes {} vs {}",
                size(&clean),
                size(&protected)
            );
            assert!(fec >= plc + 6.0 && fec >= 3.0, "x{channels} {kbps}: FEC {fec:.1} dB vs concealment {plc:.1} dB");
            assert!(no_fec < plc + 3.0, "x{channels} {kbps}: at 0 % loss the packets carry no FEC ({no_fec:.1} dB)");
            // The redundancy comes out of the same bitrate (VBR: never a tenth over it; SILK and
            // hybrid spend less than CELT on these tones, 0.8x at 128 kbit/s).
            let ratio = size(&protected) as f64 / size(&clean) as f64;
            assert!(ratio <= 1.1, "x{channels} {kbps}: {ratio:.2}x the bytes");
        }
    }

    #[test]
    fn priming_is_the_lookahead_at_the_input_rate() {
        let enc = OpusEncoder::new(&cfg(48000, 2, 128)).unwrap();
        assert_eq!(enc.lookahead, 312, "2.5 ms + 4 ms at 48 kHz (application audio)");
        assert_eq!(enc.priming_samples(), 312);
        assert_eq!(enc.frame_samples(), 960);
        let enc = OpusEncoder::new(&cfg(44100, 2, 128)).unwrap();
        assert_eq!(enc.priming_samples(), 312 * 44100 / 48000);
        assert_eq!(enc.frame_samples(), 882);
        assert!(enc.audio_specific_config().is_empty());
        assert!(OpusEncoder::new(&cfg(44100, 3, 128)).is_err());
        assert!(OpusEncoder::new(&cfg(11025, 1, 64)).is_err(), "not a whole number of samples in 20 ms");
    }
}
