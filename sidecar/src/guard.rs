//! Undo on drop. Request futures are dropped when a deadline fires or a client
//! goes away, so every "count up now, count down later" must count down in a
//! guard, or gauges and load reports drift upwards for ever.

/// Runs the closure when dropped.
pub struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    pub fn new(f: F) -> Self {
        Self(Some(f))
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
