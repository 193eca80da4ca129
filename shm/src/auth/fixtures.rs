//! Keys, endpoints and headers shared by the unit tests of the parts.

use super::{link_key, Endpoint, MasterKey, Opener, Sealer};
use crate::frame::{kind, FrameHeader};

pub(super) const A: Endpoint = Endpoint {
    id: 1,
    generation: 0,
};
pub(super) const B: Endpoint = Endpoint {
    id: 2,
    generation: 0,
};

pub(super) fn master() -> MasterKey {
    MasterKey::from_bytes([7u8; 32])
}

pub(super) fn hdr() -> FrameHeader {
    FrameHeader {
        kind: kind::DATA,
        src: 1,
        dst: 3,
        aux: 9,
        ..FrameHeader::default()
    }
}

pub(super) fn pair(secure: bool) -> (Sealer, Opener) {
    let k = secure.then(|| link_key(&master(), 5, A, B));
    (Sealer::new(k.clone()), Opener::new(k))
}
