//! How much room to make before each read of an RPC connection. A pipelined
//! batch should arrive in one read (32 Bolt requests are ~11 KB), but an idle
//! connection should not hold a large buffer: thousands of them would pin
//! hundreds of MiB. So the room starts small, doubles while reads fill it,
//! and falls back once they do not.

use bytes::BytesMut;

const MIN: usize = 8 * 1024;
const MAX: usize = 64 * 1024;

pub struct ReadAhead {
    room: usize,
    offered: usize,
}

impl Default for ReadAhead {
    fn default() -> Self {
        Self { room: MIN, offered: 0 }
    }
}

impl ReadAhead {
    /// Makes room in `buf` for the next read.
    pub fn prepare(&mut self, buf: &mut BytesMut) {
        buf.reserve(self.room);
        self.offered = buf.capacity() - buf.len();
    }

    /// Learns from a read of `n` bytes into the room `prepare` made.
    pub fn read(&mut self, n: usize) {
        self.room = if n >= self.offered { (self.room * 2).min(MAX) } else { MIN };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_grows_while_reads_fill_it_and_falls_back_after() {
        let mut r = ReadAhead::default();
        let mut buf = BytesMut::new();
        let mut rooms = Vec::new();
        for _ in 0..5 {
            buf.clear();
            r.prepare(&mut buf);
            rooms.push(r.room);
            r.read(buf.capacity()); // filled
        }
        assert_eq!(rooms, [MIN, 2 * MIN, 4 * MIN, MAX, MAX]);
        r.prepare(&mut buf);
        r.read(10);
        assert_eq!(r.room, MIN, "a short read: back to the minimum");
    }
}
