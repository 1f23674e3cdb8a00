//! Redis Cluster's key slots, so podium can choose hash tags that spread its shards over the
//! masters. A cluster gives each master a contiguous range of the 16384 slots; bare tags
//! `{0}`..`{15}` hash wherever CRC16 puts them, which leaves some masters several shards and
//! others none (Centrifugo's Redis engine notes the same skew). A shard's tag is instead the
//! first short string whose slot falls in the shard's equal share of the range.

/// Slots in a cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`: of its hash tag (the text between the first `{` and the next `}`, when
/// not empty), else of the whole key.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

/// `n` hash tags (without braces), the i-th hashing into the i-th of `n` equal shares of the
/// slots.
pub fn spread_tags(n: u16) -> Vec<String> {
    let n = u32::from(n.max(1));
    (0..n)
        .map(|i| {
            let (from, to) = (i * u32::from(SLOTS) / n, (i + 1) * u32::from(SLOTS) / n);
            (0u32..)
                .map(|j| format!("r{i}.{j}"))
                .find(|tag| (from..to).contains(&u32::from(crc16(tag.as_bytes()) % SLOTS)))
                .expect("every share of the slots is hit by some tag")
        })
        .collect()
}

/// Which of `n` shards `text` belongs to.
pub fn shard_of(text: &str, n: u16) -> usize {
    usize::from(crc16(text.as_bytes()) % n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(slot(b"foo{{bar}}zap"), crc16(b"{bar") % SLOTS);
    }

    #[test]
    fn tags_fall_in_their_share() {
        for n in [1u16, 3, 16, 100] {
            let tags = spread_tags(n);
            assert_eq!(tags.len(), usize::from(n));
            for (i, tag) in tags.iter().enumerate() {
                let s = u32::from(slot(format!("{{{tag}}}").as_bytes()));
                let i = i as u32;
                let n = u32::from(n);
                assert!(
                    s >= i * 16384 / n && s < (i + 1) * 16384 / n,
                    "{tag} in {s}"
                );
            }
        }
    }
}
