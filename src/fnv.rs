//! FNV-1a, 64 bits: how build.rs and [`crate::secrets`] name a value without holding it. Not
//! a defence against anyone choosing collisions, which a secret refused by mistake is not.

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
