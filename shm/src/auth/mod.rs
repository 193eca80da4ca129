//! Keys, sealing and opening of frames.
//!
//! # Keys
//!
//! The supervisor draws a session [`MasterKey`] from the OS RNG and hands it to
//! each manager through an inherited pipe. Each link direction gets its own
//! 128-bit key, derived by [`link_key`] with HKDF-SHA256:
//!
//! ```text
//! salt = session_id (u64 LE)
//! ikm  = master key (32 bytes)
//! info = "shmcollab link v1" || from.id || from.generation || to.id || to.generation
//!        (ids u32 LE, generations u64 LE)
//! key  = HKDF-Expand(..., 16 bytes)
//! ```
//!
//! Keys are directional (`a -> b` differs from `b -> a`) and depend on the
//! generations, so a restarted process gets fresh keys. As each direction has its
//! own key and its own sequence counter, the nonce `seq (u64 LE) || 0u64` is
//! never reused under one key.
//!
//! # The AEAD
//!
//! Frames are sealed with AEGIS-128L (128-bit key, 128-bit nonce, 16-byte
//! tag; the `aegis` crate, libaegis with AES-NI), not with `ring`'s
//! AES-128-GCM: for the small frames of a request/reply it costs half as
//! much (seal + open of 64 B: about 0.14 µs against 0.26 µs here), and
//! every round trip between two LPs seals and opens four times on its
//! critical path. `ring` still provides HKDF and the OS RNG.
//!
//! # Sealing
//!
//! A [`Sealer`] is the sending end of one link. It stamps the version and the
//! next sequence number into the header, encrypts the payload in place with
//! AEGIS-128L (associated data: header bytes 0..28), appends the 16-byte tag,
//! and then stores a CRC32C over header bytes 0..28, the ciphertext and the tag
//! at header bytes 28..32 (see [`crate::frame`] for the layout). In insecure
//! mode (`Sealer::new(None)`, for measurements) there is no encryption, no tag
//! and the CRC field is 0.
//!
//! # Opening
//!
//! An [`Opener`] is the receiving end of one link. Frame bytes live in shared
//! memory that another process can still write, so [`Opener::open`] first copies
//! the frame into a private buffer and checks only the copy, in this order:
//!
//! 1. length and header: [`Reject::Truncated`], [`Reject::Malformed`];
//! 2. secure links only: CRC ([`Reject::Altered`]), then the AEAD tag
//!    ([`Reject::Forged`]);
//! 3. the sequence number must be above the last accepted one: equal or
//!    lower is [`Reject::Replayed`].
//!
//! Every outcome is counted in [`RxStats`]. A rejected frame never yields
//! payload and never moves the window. A frame whose sequence number is
//! higher than the next one is accepted, and the sequence numbers it skipped
//! are counted as lost ([`RxStats::lost`]): one altered or destroyed frame
//! costs that frame, not the link. Nonces stay unique because a sealer never
//! reuses a sequence number under one key, and the window only moves up.
//! A reader that starts in the middle of a stream uses
//! [`Opener::mid_stream`]: the first frame that authenticates sets the
//! window (never an unchecked header).
//!
//! # Parts
//!
//! `keys` holds everything that touches key bytes (the master key, link key
//! derivation, the RNG, the AEAD call), `seal` the sending end and `open` the
//! receiving end, so that each side of the protocol reads on its own; the
//! CRC both sides compute is `frame_crc`, below.
//!

mod keys;
mod open;
mod seal;

#[cfg(test)]
mod fixtures;

pub use keys::{link_key, random_bytes, random_u64, wipe, Endpoint, LinkKey, MasterKey};
pub use open::{Opener, Reject, RxStats};
pub use seal::{SealError, Sealer};

use crate::frame::{CRC_OFFSET, FRAME_HEADER_LEN};

/// CRC32C over header bytes 0..28 and everything after the header.
fn frame_crc(frame: &[u8]) -> u32 {
    let c = crc32c::crc32c(&frame[..CRC_OFFSET]);
    crc32c::crc32c_append(c, &frame[FRAME_HEADER_LEN..])
}
