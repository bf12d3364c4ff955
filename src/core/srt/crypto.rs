//! SRT payload encryption as libsrt's HaiCrypt does it: AES-CTR with a stream encrypting key
//! (SEK) that travels in the handshake's KMREQ, wrapped (RFC 3394) with a key encrypting key
//! (KEK) derived from the passphrase by PBKDF2-HMAC-SHA1.
//!
//! Only the even key is used: key refresh (SRTO_KMREFRESHRATE, a new key every 2^24 packets
//! announced in-band with KMREQ control packets) is not implemented, so a session should be
//! reconnected before 2^24 packets (≈ 4.5 h at 8 Mbit/s) if that matters.

#[cfg(test)]
use aes::cipher::BlockEncrypt;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};

use crate::error::{Error, Result};

/// Salt length used by libsrt (the KM message says SLen/4 = 4).
pub const SALT_LEN: usize = 16;
/// Longest KM message: 16-byte header + salt + wrapped 256-bit key (+ 8-byte integrity block).
pub const KM_MAX_LEN: usize = 16 + SALT_LEN + 32 + 8;
/// PBKDF2 rounds, fixed by HaiCrypt.
const PBKDF2_ROUNDS: u32 = 2048;

/// Derives the key encrypting key: PBKDF2-HMAC-SHA1 over the passphrase with the last 8
/// bytes of the salt, as HaiCrypt does (`hcrypt_ctx_rx/tx`: `&salt[salt_len - 8]`).
pub fn derive_kek(passphrase: &[u8], salt: &[u8; SALT_LEN], kek: &mut [u8]) {
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(passphrase, &salt[SALT_LEN - 8..], PBKDF2_ROUNDS, kek);
}

/// RFC 3394 key wrap of `key` under `kek` (both 16, 24 or 32 bytes) into `out` (key + 8).
pub fn wrap_key(kek: &[u8], key: &[u8], out: &mut [u8]) -> Result<()> {
    let r = match kek.len() {
        16 => aes_kw::KekAes128::try_from(kek).and_then(|k| k.wrap(key, out)),
        24 => aes_kw::KekAes192::try_from(kek).and_then(|k| k.wrap(key, out)),
        32 => aes_kw::KekAes256::try_from(kek).and_then(|k| k.wrap(key, out)),
        n => return Err(Error::InvalidArgument(format!("SRT key length {n}"))),
    };
    r.map_err(|e| Error::Internal(format!("AES key wrap: {e}")))
}

/// RFC 3394 unwrap; for tests and for anyone checking a KMRSP.
pub fn unwrap_key(kek: &[u8], wrapped: &[u8], out: &mut [u8]) -> Result<()> {
    let r = match kek.len() {
        16 => aes_kw::KekAes128::try_from(kek).and_then(|k| k.unwrap(wrapped, out)),
        24 => aes_kw::KekAes192::try_from(kek).and_then(|k| k.unwrap(wrapped, out)),
        32 => aes_kw::KekAes256::try_from(kek).and_then(|k| k.unwrap(wrapped, out)),
        n => return Err(Error::InvalidArgument(format!("SRT key length {n}"))),
    };
    r.map_err(|e| Error::Protocol(format!("AES key unwrap: {e}")))
}

/// The CTR initial counter block for a packet: the packet index (its sequence number, big
/// endian) at bytes 10..14, the block counter at 14..16 starting from 0, and the first 112
/// bits of the salt XORed over bytes 0..14 (HaiCrypt's `hcrypt_SetCtrIV`).
pub fn ctr_iv(salt: &[u8; SALT_LEN], seq: u32) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[10..14].copy_from_slice(&seq.to_be_bytes());
    for i in 0..14 {
        iv[i] ^= salt[i];
    }
    iv
}

#[derive(Clone)]
enum Cipher {
    A128(aes::Aes128),
    A192(aes::Aes192),
    A256(aes::Aes256),
}

/// The sender's crypto state: the key schedule of the SEK, the salt, and the KM message that
/// announces them (built once, sent in every conclusion handshake).
#[derive(Clone)]
pub struct Crypto {
    cipher: Cipher,
    salt: [u8; SALT_LEN],
    km: [u8; KM_MAX_LEN],
    km_len: usize,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Crypto").field("key_len", &self.key_len()).finish()
    }
}

impl Crypto {
    /// `fill_random` supplies the salt and the SEK.
    pub fn new(passphrase: &[u8], key_len: usize, fill_random: &mut dyn FnMut(&mut [u8])) -> Result<Crypto> {
        if !matches!(key_len, 16 | 24 | 32) {
            return Err(Error::InvalidArgument(format!("SRT pbkeylen {key_len}: 16, 24 or 32")));
        }
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt);
        let mut sek = [0u8; 32];
        fill_random(&mut sek[..key_len]);
        let mut kek = [0u8; 32];
        derive_kek(passphrase, &salt, &mut kek[..key_len]);
        Self::with_keys(&kek[..key_len], &sek[..key_len], salt)
    }

    /// Builds the state from a known KEK, SEK and salt (tests use it to replay fixed vectors).
    pub fn with_keys(kek: &[u8], sek: &[u8], salt: [u8; SALT_LEN]) -> Result<Crypto> {
        let key_len = sek.len();
        let cipher = match key_len {
            16 => Cipher::A128(aes::Aes128::new_from_slice(sek).map_err(|_| bad_key())?),
            24 => Cipher::A192(aes::Aes192::new_from_slice(sek).map_err(|_| bad_key())?),
            32 => Cipher::A256(aes::Aes256::new_from_slice(sek).map_err(|_| bad_key())?),
            n => return Err(Error::InvalidArgument(format!("SRT key length {n}"))),
        };
        let mut km = [0u8; KM_MAX_LEN];
        // KM message header (HaiCrypt "KMmsg"): version 1 / packet type 2 (KM), the "HAI"
        // PnP vendor signature 0x2029, KK = 1 (even key only), KEKI 0, cipher 2 (AES-CTR),
        // no auth, stream encapsulation 2 (SRT), salt and key lengths in 4-byte units.
        km[0] = 0x12;
        km[1] = 0x20;
        km[2] = 0x29;
        km[3] = 0x01;
        km[8] = 2;
        km[9] = 0;
        km[10] = 2;
        km[14] = (SALT_LEN / 4) as u8;
        km[15] = (key_len / 4) as u8;
        km[16..32].copy_from_slice(&salt);
        wrap_key(kek, sek, &mut km[32..32 + key_len + 8])?;
        Ok(Crypto { cipher, salt, km, km_len: 32 + key_len + 8 })
    }

    pub fn key_len(&self) -> usize {
        match self.cipher {
            Cipher::A128(_) => 16,
            Cipher::A192(_) => 24,
            Cipher::A256(_) => 32,
        }
    }

    /// The KM message for the KMREQ extension, in wire order.
    pub fn km_message(&self) -> &[u8] {
        &self.km[..self.km_len]
    }

    /// Encrypts (or decrypts: CTR is symmetric) one packet's payload in place.
    pub fn apply(&self, seq: u32, payload: &mut [u8]) {
        let iv = ctr_iv(&self.salt, seq);
        // The key schedule is cloned (a few hundred bytes on the stack), not re-expanded.
        match &self.cipher {
            Cipher::A128(c) => {
                ctr::Ctr128BE::<aes::Aes128>::from_core(ctr::CtrCore::inner_iv_init(c.clone(), &iv.into()))
                    .apply_keystream(payload)
            }
            Cipher::A192(c) => {
                ctr::Ctr128BE::<aes::Aes192>::from_core(ctr::CtrCore::inner_iv_init(c.clone(), &iv.into()))
                    .apply_keystream(payload)
            }
            Cipher::A256(c) => {
                ctr::Ctr128BE::<aes::Aes256>::from_core(ctr::CtrCore::inner_iv_init(c.clone(), &iv.into()))
                    .apply_keystream(payload)
            }
        }
    }

    /// One raw AES block with the SEK; lets tests check the CTR construction block by block.
    #[cfg(test)]
    fn encrypt_block(&self, block: &mut [u8; 16]) {
        let b = aes::Block::from_mut_slice(block);
        match &self.cipher {
            Cipher::A128(c) => c.encrypt_block(b),
            Cipher::A192(c) => c.encrypt_block(b),
            Cipher::A256(c) => c.encrypt_block(b),
        }
    }
}

fn bad_key() -> Error {
    Error::Internal("AES key length".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn rfc3394_vectors() {
        // RFC 3394 §4.1: 128-bit KEK, 128-bit key.
        let mut out = [0u8; 24];
        wrap_key(&hex("000102030405060708090A0B0C0D0E0F"), &hex("00112233445566778899AABBCCDDEEFF"), &mut out).unwrap();
        assert_eq!(out.to_vec(), hex("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"));
        // §4.3: 256-bit KEK, 128-bit key.
        wrap_key(
            &hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"),
            &hex("00112233445566778899AABBCCDDEEFF"),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.to_vec(), hex("64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"));
        // §4.6: 256-bit KEK, 256-bit key.
        let mut out = [0u8; 40];
        let kek = hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
        wrap_key(&kek, &hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"), &mut out).unwrap();
        assert_eq!(
            out.to_vec(),
            hex("28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21")
        );
        let mut back = [0u8; 32];
        unwrap_key(&kek, &out, &mut back).unwrap();
        assert_eq!(back.to_vec(), hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"));
        out[3] ^= 1;
        assert!(unwrap_key(&kek, &out, &mut back).is_err());
    }

    #[test]
    fn pbkdf2_sha1_known_answers() {
        // RFC 6070 test vectors for PBKDF2-HMAC-SHA1.
        let mut dk = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(b"password", b"salt", 2, &mut dk);
        assert_eq!(dk.to_vec(), hex("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"));
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(b"password", b"salt", 4096, &mut dk);
        assert_eq!(dk.to_vec(), hex("4b007901b765489abead49d926f721d065a429c1"));
        // derive_kek uses only the last 8 bytes of the salt and 2048 rounds.
        let mut salt = [0xEEu8; 16];
        salt[8..].copy_from_slice(b"saltsalt");
        let mut a = [0u8; 16];
        derive_kek(b"password", &salt, &mut a);
        let mut b = [0u8; 16];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(b"password", b"saltsalt", 2048, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn ctr_iv_layout() {
        let salt: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
        let iv = ctr_iv(&salt, 0x0102_0304);
        assert_eq!(&iv[..10], &salt[..10]);
        assert_eq!(&iv[10..14], &[11 ^ 1, 12 ^ 2, 13 ^ 3, 14 ^ 4]);
        // The last two bytes are the block counter and are not salted.
        assert_eq!(&iv[14..], &[0, 0]);
    }

    #[test]
    fn ctr_keystream_is_aes_of_the_counter_blocks() {
        let salt = [0x5Au8; 16];
        let c = Crypto::with_keys(&[7u8; 16], &[9u8; 16], salt).unwrap();
        let mut data = [0u8; 40];
        c.apply(77, &mut data);
        // Keystream block k = AES(iv + k) with the counter in the low bytes.
        for k in 0..3u8 {
            let mut block = ctr_iv(&salt, 77);
            block[15] = block[15].wrapping_add(k);
            c.encrypt_block(&mut block);
            let n = (40 - usize::from(k) * 16).min(16);
            assert_eq!(&data[usize::from(k) * 16..usize::from(k) * 16 + n], &block[..n]);
        }
        // Decrypting is applying the same keystream again.
        c.apply(77, &mut data);
        assert_eq!(data, [0u8; 40]);
    }

    #[test]
    fn km_message_layout_and_unwrap() {
        for key_len in [16usize, 24, 32] {
            let mut counter = 0u8;
            let mut rng = |b: &mut [u8]| {
                for x in b {
                    counter = counter.wrapping_add(1);
                    *x = counter;
                }
            };
            let c = Crypto::new(b"0123456789abc", key_len, &mut rng).unwrap();
            let km = c.km_message();
            assert_eq!(km.len(), 32 + key_len + 8);
            assert_eq!(&km[..4], &[0x12, 0x20, 0x29, 0x01]);
            assert_eq!((km[8], km[10], km[14], km[15]), (2, 2, 4, (key_len / 4) as u8));
            let salt: [u8; 16] = km[16..32].try_into().unwrap();
            assert_eq!(salt, core::array::from_fn(|i| i as u8 + 1));
            let mut kek = [0u8; 32];
            derive_kek(b"0123456789abc", &salt, &mut kek[..key_len]);
            let mut sek = [0u8; 32];
            unwrap_key(&kek[..key_len], &km[32..], &mut sek[..key_len]).unwrap();
            assert_eq!(&sek[..key_len], &core::array::from_fn::<u8, 32, _>(|i| i as u8 + 17)[..key_len]);
            assert_eq!(c.key_len(), key_len);
        }
        assert!(Crypto::new(b"0123456789", 20, &mut |_| {}).is_err());
    }
}
