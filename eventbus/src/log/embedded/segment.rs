//! Segment files of one topic: `<base offset, 20 digits>.log`, and recovery.

use super::record::{Read1, read_one};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// What the writer knows of a segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub base: u64,
    pub path: PathBuf,
    pub len: u64,
    /// The offset after its last record (`base` when empty).
    pub next: u64,
    /// Append time of its last record, Unix ms (0 when empty).
    pub last_ts: i64,
}

pub fn path_of(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// The segments in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(base) = base {
            out.push((base, path));
        }
    }
    out.sort_by_key(|(b, _)| *b);
    Ok(out)
}

/// Checks every record of a segment and cuts the file at the first torn one
/// (a write that a crash interrupted): such a record was never acknowledged,
/// since an append returns only after its fsync.
pub fn recover(base: u64, path: &Path) -> io::Result<Segment> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let (mut len, mut next, mut last_ts) = (0u64, base, 0i64);
    loop {
        match read_one(&mut reader)? {
            Read1::Record(r, n) if r.offset >= next => {
                (len, next, last_ts) = (len + n, r.offset + 1, r.timestamp_ms);
            }
            Read1::Record(..) => {
                cut(&file, path, len, "offsets go backwards")?;
                break;
            }
            Read1::End => break,
            Read1::Torn(why) => {
                cut(&file, path, len, why)?;
                break;
            }
        }
    }
    Ok(Segment { base, path: path.to_path_buf(), len, next, last_ts })
}

fn cut(file: &File, path: &Path, at: u64, why: &str) -> io::Result<()> {
    let size = file.metadata()?.len();
    tracing::warn!(segment = %path.display(), at, dropped_bytes = size - at, why, "torn tail of the event log truncated");
    file.set_len(at)?;
    file.sync_all()
}

/// Opens a segment for appending, creating it if needed.
pub fn open_for_append(path: &Path) -> io::Result<File> {
    let mut f = OpenOptions::new().create(true).append(true).read(true).open(path)?;
    f.seek(SeekFrom::End(0))?;
    Ok(f)
}

/// Makes a new file's directory entry durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
