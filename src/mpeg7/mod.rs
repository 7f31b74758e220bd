//! MPEG-7 video signatures (go-livepeer capability 14, "perceptual hash"): computing one per
//! rendition as lpms does ([`sign`]) and comparing two as a gateway's fast verification does
//! ([`compare`]). Facts: ../shared/reference/go-livepeer-dropin.md §6.

pub mod compare;
pub mod sign;

pub use compare::{compare, InvalidSignData, Verdict};
pub use sign::Signer;
