//! Key material: the session [`MasterKey`], the per-direction [`LinkKey`]s
//! derived from it with HKDF ([`link_key`], [`LinkKey::derive`]), the OS RNG,
//! and the AEAD primitive keyed by a link key.
//!
//! Kept apart from sealing and opening so that the one place that touches
//! key bytes (derivation, wiping, redacted `Debug`) is small enough to audit
//! on its own; [`super::Sealer`] and [`super::Opener`] only call
//! `LinkKey::seal` and `LinkKey::open`.

use core::fmt;

use aegis::aegis128l::Aegis128L;
use ring::aead::AES_128_GCM;
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use crate::frame::TAG_LEN;

/// HKDF info prefix for link keys.
const LINK_INFO: &[u8] = b"shmcollab link v1";
/// Length of a link key (AEGIS-128L takes 128-bit keys). HKDF is asked for
/// this many bytes through `ring`'s `AES_128_GCM` key type, which only
/// names the length.
const LINK_KEY_LEN: usize = 16;

/// A random u64 from the OS RNG.
///
/// # Panics
///
/// Panics if the OS RNG fails, which does not happen on supported Linux
/// systems once the kernel's pool is initialised.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    random_bytes(&mut b);
    u64::from_le_bytes(b)
}

/// Fills `buf` with random bytes from the OS RNG (`ring::rand::SystemRandom`).
///
/// # Panics
///
/// Panics if the OS RNG fails (see [`random_u64`]).
pub fn random_bytes(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("OS random number generator failed");
}

/// Overwrites `bytes` with zeros with volatile writes the optimiser keeps
/// (the zeroize crate), also where nothing reads them afterwards.
pub fn wipe(bytes: &mut [u8]) {
    zeroize::Zeroize::zeroize(bytes);
}

/// The 32-byte session master key. Its `Debug` output never shows the key,
/// and the bytes are zeroed on drop.
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Draws a new master key from the OS RNG.
    ///
    /// # Panics
    ///
    /// Panics if the OS RNG fails (see [`random_u64`]).
    pub fn generate() -> MasterKey {
        let mut k = [0u8; 32];
        random_bytes(&mut k);
        MasterKey(k)
    }

    /// Wraps key bytes, e.g. read from the pipe the supervisor passed down.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// Takes the key out of `buf` and wipes `buf`.
    pub fn take(buf: &mut [u8; 32]) -> MasterKey {
        let k = MasterKey(*buf);
        wipe(buf);
        k
    }

    /// The key bytes, e.g. to write them to a child's pipe. Handle with care.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// One end of a link: an LP or a manager, and its restart generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// LP or manager id.
    pub id: u32,
    /// Restart generation; a restarted process gets a new one, and new keys.
    pub generation: u64,
}

/// The key of one link direction. `Debug` never shows the key;
/// the bytes are zeroed on drop.
#[derive(Clone)]
pub struct LinkKey([u8; LINK_KEY_LEN]);

const SUBKEY_SALT: &[u8] = b"shmcollab sub-link key v1";

impl LinkKey {
    /// Wraps key bytes, e.g. received by an LP from its manager.
    pub fn from_bytes(bytes: [u8; LINK_KEY_LEN]) -> LinkKey {
        LinkKey(bytes)
    }

    /// The key bytes, e.g. to hand an LP the key of its link. Handle with care.
    pub fn as_bytes(&self) -> &[u8; LINK_KEY_LEN] {
        &self.0
    }

    /// A key derived from this one for `label` (HKDF-SHA256): the key of a
    /// sub-link that the holder of this key can check without holding any
    /// other key.
    pub fn derive(&self, label: &[u8]) -> LinkKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SUBKEY_SALT).extract(&self.0);
        let mut key = [0u8; LINK_KEY_LEN];
        // 16 bytes is far below HKDF-SHA256's limit, so this cannot fail.
        prk.expand(&[label], &AES_128_GCM)
            .and_then(|okm| okm.fill(&mut key))
            .expect("HKDF output length within limits");
        LinkKey(key)
    }

    /// Encrypts `payload` in place with AEGIS-128L under this key; returns
    /// the tag.
    pub(super) fn seal(&self, seq: u64, aad: &[u8], payload: &mut [u8]) -> [u8; TAG_LEN] {
        Aegis128L::<TAG_LEN>::new(&self.0, &nonce(seq)).encrypt_in_place(payload, aad)
    }

    /// Checks `tag` and decrypts `payload` in place; false if the tag does
    /// not match (then `payload` is garbage).
    pub(super) fn open(
        &self,
        seq: u64,
        aad: &[u8],
        payload: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        Aegis128L::<TAG_LEN>::new(&self.0, &nonce(seq))
            .decrypt_in_place(payload, tag, aad)
            .is_ok()
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

impl Drop for LinkKey {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Derives the key of the link direction `from -> to` in session `session_id`
/// (HKDF-SHA256, see the module documentation).
pub fn link_key(master: &MasterKey, session_id: u64, from: Endpoint, to: Endpoint) -> LinkKey {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &session_id.to_le_bytes());
    let prk = salt.extract(master.as_bytes());
    let (from_id, to_id) = (from.id.to_le_bytes(), to.id.to_le_bytes());
    let (from_gen, to_gen) = (from.generation.to_le_bytes(), to.generation.to_le_bytes());
    let info: [&[u8]; 5] = [LINK_INFO, &from_id, &from_gen, &to_id, &to_gen];
    let mut key = [0u8; LINK_KEY_LEN];
    // 16 bytes is far below HKDF-SHA256's limit of 255 * 32, so neither call fails.
    prk.expand(&info, &AES_128_GCM)
        .and_then(|okm| okm.fill(&mut key))
        .expect("HKDF output length within limits");
    LinkKey(key)
}

/// The nonce of frame `seq`: `seq` as u64 LE, then 8 zero bytes.
fn nonce(seq: u64) -> [u8; 16] {
    let mut n = [0u8; 16];
    n[..8].copy_from_slice(&seq.to_le_bytes());
    n
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{hdr, master, A, B};
    use super::super::{Opener, Reject, Sealer};
    use super::*;

    #[test]
    fn keys_are_directional() {
        let m = master();
        let ab = link_key(&m, 5, A, B);
        let ba = link_key(&m, 5, B, A);
        assert_ne!(ab.as_bytes(), ba.as_bytes());
        let mut s = Sealer::new(Some(ab));
        let mut o = Opener::new(Some(ba));
        let mut buf = vec![0u8; 100];
        let n = s.seal(hdr(), b"x", &mut buf).unwrap();
        let mut out = Vec::new();
        assert_eq!(o.open(&buf[..n], &mut out), Err(Reject::Forged));
        assert!(out.is_empty());
        assert_eq!(o.expected_seq(), 0);
    }

    #[test]
    fn keys_depend_on_generation_session_and_master() {
        let m = master();
        let k = link_key(&m, 5, A, B);
        let a1 = Endpoint { generation: 1, ..A };
        let b1 = Endpoint { generation: 1, ..B };
        assert_ne!(k.as_bytes(), link_key(&m, 5, a1, B).as_bytes());
        assert_ne!(k.as_bytes(), link_key(&m, 5, A, b1).as_bytes());
        assert_ne!(k.as_bytes(), link_key(&m, 6, A, B).as_bytes());
        assert_ne!(
            k.as_bytes(),
            link_key(&MasterKey::generate(), 5, A, B).as_bytes()
        );
        assert_eq!(k.as_bytes(), link_key(&m, 5, A, B).as_bytes());
    }

    #[test]
    fn debug_redacts() {
        let m = MasterKey::from_bytes([0xAB; 32]);
        assert_eq!(format!("{m:?}"), "MasterKey(..)");
        let k = link_key(&m, 1, A, B);
        assert_eq!(format!("{k:?}"), "LinkKey(..)");
        let s = format!("{:?}", Sealer::new(Some(k)));
        assert!(!s.contains("171"), "{s}");
    }

    #[test]
    fn random_differs() {
        assert_ne!(random_u64(), random_u64());
        let mut a = [0u8; 32];
        random_bytes(&mut a);
        assert_ne!(a, [0u8; 32]);
    }

    /// The AEAD is standard AEGIS-128L: test vector 1 of the CFRG AEGIS
    /// draft (key 10 01 00.., nonce 10 00 02 00.., no AD, 16 zero bytes).
    #[test]
    fn aegis_128l_known_answer() {
        let mut key = [0u8; 16];
        key[0] = 0x10;
        key[1] = 0x01;
        let mut nonce = [0u8; 16];
        nonce[0] = 0x10;
        nonce[2] = 0x02;
        let mut m = [0u8; 16];
        let tag = Aegis128L::<TAG_LEN>::new(&key, &nonce).encrypt_in_place(&mut m, &[]);
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&m), "c1c0e58bd913006feba00f4b3cc3594e");
        assert_eq!(hex(&tag), "abe0ece80c24868a226a35d16bdae37a");
    }
}
