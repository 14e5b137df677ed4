//! Series of devices that come and go: a collector removes the series of a device that was in
//! the previous sample but not in this one (a replaced VM interface must not linger forever).
//! Removed, not reset and set again, so a scrape never sees a present device missing.

use std::collections::HashSet;
use std::hash::Hash;

/// The label sets (beyond `host`) a collector set in the previous sample.
#[derive(Debug)]
pub struct Present<K> {
    previous: HashSet<K>,
}

impl<K> Default for Present<K> {
    fn default() -> Self {
        Self {
            previous: HashSet::new(),
        }
    }
}

impl<K: Eq + Hash> Present<K> {
    /// Records the label sets of this sample; returns those of the previous one that are gone.
    pub fn replace(&mut self, now: HashSet<K>) -> Vec<K> {
        let previous = std::mem::replace(&mut self.previous, now);
        previous
            .into_iter()
            .filter(|k| !self.previous.contains(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_was_there_before_and_is_not_now_is_gone() {
        let mut p = Present::default();
        assert!(p.replace(HashSet::from(["eth0", "wg0"])).is_empty());
        assert_eq!(p.replace(HashSet::from(["eth0", "eth1"])), ["wg0"]);
        assert!(p.replace(HashSet::from(["eth0", "eth1"])).is_empty());
    }
}
