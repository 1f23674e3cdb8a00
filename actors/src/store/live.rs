//! What is in force on this instance, read on every hot path without a store round trip: the
//! campaigns ([`CampaignBook`]) and the bans ([`BanBook`]). The store is the truth; these are
//! its copy, written by the admin routes on this instance and by the ClusterBus for changes
//! made on another, and re-read whole from the store when the bus reconnects.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::domain::campaign::Campaign;
use crate::domain::ids::{LiveBoard, UserId};
use crate::domain::operator::Ban;

/// The campaigns in force. Readers take an `Arc` of the whole map, so a start_game never
/// waits for a writer for longer than a pointer swap.
#[derive(Default)]
pub struct CampaignBook {
    map: RwLock<Arc<BTreeMap<String, Arc<Campaign>>>>,
}

impl CampaignBook {
    pub fn new(campaigns: impl IntoIterator<Item = Campaign>) -> Self {
        let book = Self::default();
        book.replace(campaigns);
        book
    }

    fn read(&self) -> Arc<BTreeMap<String, Arc<Campaign>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Campaign>> {
        self.read().get(name).cloned()
    }

    /// Every campaign, by name.
    pub fn all(&self) -> Vec<Arc<Campaign>> {
        self.read().values().cloned().collect()
    }

    /// Every board of every campaign a player may be on at `now_ms`, with its TTL: what a ban
    /// takes them off and an unban puts them back on.
    pub fn boards(&self, now_ms: u64) -> Vec<LiveBoard> {
        self.read()
            .values()
            .flat_map(|c| c.boards(now_ms))
            .collect()
    }

    /// Takes `c` if it is newer than the copy held (changes may arrive out of order from the
    /// bus and from a re-read); answers whether it did.
    pub fn apply(&self, c: Campaign) -> bool {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map
            .get(c.name.as_str())
            .is_some_and(|held| held.version >= c.version)
        {
            return false;
        }
        let mut next = (**map).clone();
        next.insert(c.name.to_string(), Arc::new(c));
        *map = Arc::new(next);
        true
    }

    /// Replaces every campaign with the store's list (a re-read).
    pub fn replace(&self, campaigns: impl IntoIterator<Item = Campaign>) {
        let next = campaigns
            .into_iter()
            .map(|c| (c.name.to_string(), Arc::new(c)))
            .collect();
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }
}

/// The bans in force, by player.
#[derive(Default)]
pub struct BanBook {
    map: RwLock<HashMap<UserId, Ban>>,
}

impl BanBook {
    /// Whether the player is banned at `now_ms` (checked on every auth, game and submit, so
    /// nothing is cloned).
    pub fn is_banned(&self, user: &UserId, now_ms: u64) -> bool {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(user).is_some_and(|b| b.is_active_at(now_ms))
    }

    /// Whether a ban in the book has run out by `now_ms` but was not lifted yet.
    pub fn any_lapsed(&self, now_ms: u64) -> bool {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.values().any(|b| !b.is_active_at(now_ms))
    }

    /// Drops the bans that ran out by `now_ms` (none in force is touched).
    pub fn forget_lapsed(&self, now_ms: u64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, b| b.is_active_at(now_ms));
    }

    pub fn put(&self, ban: Ban) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.insert(ban.user.clone(), ban);
    }

    pub fn lift(&self, user: &UserId) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
    }

    pub fn replace(&self, bans: impl IntoIterator<Item = Ban>) {
        let next = bans.into_iter().map(|b| (b.user.clone(), b)).collect();
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::CampaignRules;
    use crate::domain::ids::CampaignId;

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let book = CampaignBook::default();
        let mut c = Campaign::configured(CampaignId::new("x"), CampaignRules::default(), 0);
        c.version = 2;
        assert!(book.apply(c.clone()));
        let mut older = c.clone();
        older.version = 1;
        older.rules.max_score = 1;
        assert!(!book.apply(older));
        assert_eq!(book.get("x").unwrap().rules.max_score, c.rules.max_score);
        c.version = 3;
        c.rules.max_score = 7;
        assert!(book.apply(c));
        assert_eq!(book.get("x").unwrap().rules.max_score, 7);
    }
}
