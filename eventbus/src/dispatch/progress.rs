//! Which offsets a trigger is done with. Deliveries finish out of order; the
//! group may only commit up to the first one still pending, so a restart
//! re-delivers what was not finished (at least once) and nothing is skipped.

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct Progress {
    pending: BTreeSet<u64>,
    /// One past the last offset read.
    next: Option<u64>,
    committed: Option<u64>,
}

impl Progress {
    pub fn read(&mut self, offset: u64) {
        self.pending.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    pub fn done(&mut self, offset: u64) {
        self.pending.remove(&offset);
    }

    /// The position to commit, if it moved since the last call.
    pub fn to_commit(&mut self) -> Option<u64> {
        let point = self.pending.first().copied().or(self.next)?;
        if self.committed == Some(point) {
            return None;
        }
        self.committed = Some(point);
        Some(point)
    }

    pub fn committed(&self) -> Option<u64> {
        self.committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_up_to_the_first_unfinished_offset() {
        let mut p = Progress::default();
        assert_eq!(p.to_commit(), None, "nothing read");
        for o in 10..15 {
            p.read(o);
        }
        assert_eq!(p.to_commit(), Some(10));
        p.done(11);
        p.done(12);
        assert_eq!(p.to_commit(), None, "10 is still pending");
        p.done(10);
        assert_eq!(p.to_commit(), Some(13));
        p.done(14);
        p.done(13);
        assert_eq!(p.to_commit(), Some(15));
        assert_eq!(p.to_commit(), None, "unchanged");
    }
}
