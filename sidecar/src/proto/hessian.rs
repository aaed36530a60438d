//! The few Hessian 2 pieces the RPC codecs need: reading strings and ints at
//! the start of a body (Dubbo puts the service path and method there, SOFA's
//! `SofaRequest` its method name) and writing an error message.
//!
//! Both encodings in use are read: final Hessian 2 (`C` class definitions, `R`
//! string chunks; Dubbo) and the 2.0 draft SOFA uses (`O` definitions, `o`
//! instances, `s` chunks). Nothing here allocates more than the input holds.

/// Where and why a Hessian value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hessian {what} at byte {at}")]
pub struct HessianError {
    pub what: &'static str,
    pub at: usize,
}

/// A cursor over a Hessian 2 byte stream.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    fn err(&self, what: &'static str) -> HessianError {
        HessianError { what, at: self.pos }
    }

    fn byte(&mut self) -> Result<u8, HessianError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err("truncated value"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], HessianError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(|| self.err("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A string, or `None` for null.
    pub fn string(&mut self) -> Result<Option<String>, HessianError> {
        let mut out = Vec::new();
        loop {
            let code = self.byte()?;
            let (units, last) = match code {
                b'N' if out.is_empty() => return Ok(None),
                0x00..=0x1f => (usize::from(code), true),
                0x30..=0x33 => (usize::from(code - 0x30) << 8 | usize::from(self.byte()?), true),
                b'S' => (self.u16()?, true),
                b'R' | b's' => (self.u16()?, false),
                _ => return Err(self.err("string expected")),
            };
            self.utf8_units(units, &mut out)?;
            if last {
                return String::from_utf8(out).map(Some).map_err(|_| self.err("invalid UTF-8 in string"));
            }
        }
    }

    /// Reads `units` UTF-16 code units' worth of UTF-8 bytes into `out`
    /// (Hessian counts a string's length in Java chars).
    fn utf8_units(&mut self, units: usize, out: &mut Vec<u8>) -> Result<(), HessianError> {
        let mut left = units;
        while left > 0 {
            let (len, counts) = match self.buf.get(self.pos).copied().ok_or_else(|| self.err("truncated string"))? {
                0x00..=0x7f => (1, 1),
                0xc0..=0xdf => (2, 1),
                0xe0..=0xef => (3, 1),
                0xf0..=0xf7 => (4, 2),
                _ => return Err(self.err("invalid UTF-8 in string")),
            };
            out.extend_from_slice(self.take(len)?);
            left = left.saturating_sub(counts);
        }
        Ok(())
    }

    fn u16(&mut self) -> Result<usize, HessianError> {
        let b = self.take(2)?;
        Ok(usize::from(b[0]) << 8 | usize::from(b[1]))
    }

    /// A 32-bit int in any of its compact forms.
    pub fn int(&mut self) -> Result<i32, HessianError> {
        let code = self.byte()?;
        let v = match code {
            0x80..=0xbf => i32::from(code) - 0x90,
            0xc0..=0xcf => (i32::from(code) - 0xc8) << 8 | i32::from(self.byte()?),
            0xd0..=0xd7 => {
                let b = self.take(2)?;
                (i32::from(code) - 0xd4) << 16 | i32::from(b[0]) << 8 | i32::from(b[1])
            }
            b'I' => {
                let b = self.take(4)?;
                i32::from_be_bytes([b[0], b[1], b[2], b[3]])
            }
            _ => return Err(self.err("int expected")),
        };
        Ok(v)
    }

    /// The `methodName` of the object at the cursor when it is that object's
    /// first field, as in SOFA's `SofaRequest`. Reads the class definition
    /// (draft `O len type` or final `C string`) and the instance tag.
    pub fn method_name_field(&mut self) -> Result<Option<String>, HessianError> {
        match self.byte()? {
            b'O' => {
                let len = usize::try_from(self.int()?).map_err(|_| self.err("negative type length"))?;
                self.take(len)?;
            }
            b'C' => drop(self.string()?),
            _ => return Ok(None),
        }
        let fields = self.int()?;
        let mut first = None;
        for i in 0..fields.max(0) {
            let name = self.string()?;
            if i == 0 {
                first = name;
            }
        }
        match self.byte()? {
            b'o' | b'O' => drop(self.int()?),
            0x60..=0x6f => {}
            _ => return Err(self.err("object instance expected")),
        }
        if first.as_deref() != Some("methodName") {
            return Ok(None);
        }
        self.string()
    }
}

// === writing ===

/// Appends `s` as a Hessian 2 string: the short form up to 31 chars, else
/// `S`/`R` chunks. Not the medium form (`0x30`–`0x33`): the Hessian 2.0 draft
/// decoder SOFA's Node peers use fails on it, and every decoder reads chunks.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    let mut rest = s;
    loop {
        // Split at a char boundary at most 0x8000 UTF-16 units in.
        let (chunk, units) = take_units(rest, 0x8000);
        rest = &rest[chunk.len()..];
        let last = rest.is_empty();
        match units {
            0..=31 if last => out.push(units as u8),
            _ => {
                out.push(if last { b'S' } else { b'R' });
                out.extend_from_slice(&(units as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(chunk.as_bytes());
        if last {
            return;
        }
    }
}

/// The longest prefix of `s` of at most `max` UTF-16 units, and its length in units.
fn take_units(s: &str, max: usize) -> (&str, usize) {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        if units + c.len_utf16() > max {
            return (&s[..i], units);
        }
        units += c.len_utf16();
    }
    (s, units)
}

/// Appends a 32-bit int in its shortest form.
pub fn write_int(out: &mut Vec<u8>, v: i32) {
    match v {
        -16..=47 => out.push((v + 0x90) as u8),
        -2048..=2047 => out.extend_from_slice(&[(0xc8 + (v >> 8)) as u8, v as u8]),
        -262_144..=262_143 => out.extend_from_slice(&[(0xd4 + (v >> 16)) as u8, (v >> 8) as u8, v as u8]),
        _ => {
            out.push(b'I');
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// Appends an object in SOFA's Hessian 2.0 draft form: a class definition
/// (`O`, type, field names) and one instance (`o 0`) with `values`, each
/// already encoded.
pub fn write_draft_object(out: &mut Vec<u8>, class: &str, fields: &[(&str, &[u8])]) {
    out.push(b'O');
    write_int(out, class.len() as i32);
    out.extend_from_slice(class.as_bytes());
    write_int(out, fields.len() as i32);
    for (name, _) in fields {
        write_string(out, name);
    }
    out.push(b'o');
    write_int(out, 0);
    for (_, value) in fields {
        out.extend_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &str) -> String {
        let mut out = Vec::new();
        write_string(&mut out, s);
        Reader::new(&out).string().unwrap().unwrap()
    }

    #[test]
    fn strings_of_every_form_roundtrip() {
        for s in ["", "a", &"x".repeat(31), &"y".repeat(32), &"z".repeat(1024), &"é€😀".repeat(20_000)] {
            assert_eq!(roundtrip(s), s);
        }
    }

    #[test]
    fn ints_of_every_form_roundtrip() {
        for v in [0, -16, 47, 48, -2048, 2047, 2048, -262_144, 262_143, 262_144, i32::MIN, i32::MAX] {
            let mut out = Vec::new();
            write_int(&mut out, v);
            assert_eq!(Reader::new(&out).int().unwrap(), v, "{v}");
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [&[0x05, b'a'][..], &[0x30], &[b'S', 0xff, 0xff], &[0x02, 0xff, 0xfe], &[0x7f], &[b'R', 0, 1, b'a']]
        {
            assert!(Reader::new(bad).string().is_err(), "{bad:?}");
        }
        assert_eq!(Reader::new(b"N").string(), Ok(None));
    }

    #[test]
    fn the_medium_form_other_writers_use_is_read() {
        let mut medium = vec![0x30, 32];
        medium.extend_from_slice(&[b'a'; 32]);
        assert_eq!(Reader::new(&medium).string().unwrap().unwrap(), "a".repeat(32));
    }
}
