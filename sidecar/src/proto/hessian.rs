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

use super::Headers;
use std::borrow::Cow;

pub mod json;

/// A string as read: most are one chunk, borrowed as bytes.
enum RawStr<'a> {
    Null,
    One(&'a [u8]),
    Chunked(String),
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

    /// A cursor at byte `pos` of `buf` (past values read earlier).
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos: pos.min(buf.len()) }
    }

    /// Bytes read so far.
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
        self.str().map(|s| s.map(Cow::into_owned))
    }

    /// A string, or `None` for null, borrowed from the input when it is one
    /// chunk (names always are): no allocation per name on the hot path.
    pub fn str(&mut self) -> Result<Option<Cow<'a, str>>, HessianError> {
        match self.raw_str()? {
            RawStr::Null => Ok(None),
            RawStr::One(bytes) => std::str::from_utf8(bytes)
                .map(|s| Some(Cow::Borrowed(s)))
                .map_err(|_| self.err("invalid UTF-8 in string")),
            RawStr::Chunked(s) => Ok(Some(Cow::Owned(s))),
        }
    }

    /// Steps over a string without checking its UTF-8 beyond the lengths.
    pub fn skip_str(&mut self) -> Result<(), HessianError> {
        self.raw_str().map(drop)
    }

    /// Whether the next string is `want` (steps over it either way).
    fn str_is(&mut self, want: &str) -> Result<bool, HessianError> {
        Ok(match self.raw_str()? {
            RawStr::Null => false,
            RawStr::One(bytes) => bytes == want.as_bytes(),
            RawStr::Chunked(s) => s == want,
        })
    }

    /// The next string's bytes when it is one chunk, unchecked.
    fn raw_str(&mut self) -> Result<RawStr<'a>, HessianError> {
        let code = self.peek()?;
        let units = match code {
            b'N' => {
                self.pos += 1;
                return Ok(RawStr::Null);
            }
            0x00..=0x1f => usize::from(code),
            0x30..=0x33 => {
                let low = *self.buf.get(self.pos + 1).ok_or_else(|| self.err("truncated value"))?;
                (usize::from(code - 0x30) << 8) | usize::from(low)
            }
            b'S' => {
                let b = self.buf.get(self.pos + 1..self.pos + 3).ok_or_else(|| self.err("truncated value"))?;
                (usize::from(b[0]) << 8) | usize::from(b[1])
            }
            b'R' | b's' => return self.chunked().map(RawStr::Chunked),
            _ => return Err(self.err("string expected")),
        };
        self.pos += match code {
            0x00..=0x1f => 1,
            0x30..=0x33 => 2,
            _ => 3,
        };
        self.take(self.units_len(units)?).map(RawStr::One)
    }

    /// A string in several chunks (`R`/`s` non-final, then a final one).
    fn chunked(&mut self) -> Result<String, HessianError> {
        let mut out = Vec::new();
        loop {
            let code = self.byte()?;
            let (units, last) = match code {
                0x00..=0x1f => (usize::from(code), true),
                0x30..=0x33 => (usize::from(code - 0x30) << 8 | usize::from(self.byte()?), true),
                b'S' => (self.u16()?, true),
                b'R' | b's' => (self.u16()?, false),
                _ => return Err(self.err("string expected")),
            };
            let len = self.units_len(units)?;
            out.extend_from_slice(self.take(len)?);
            if last {
                return String::from_utf8(out).map_err(|_| self.err("invalid UTF-8 in string"));
            }
        }
    }

    /// How many bytes of UTF-8 from here hold `units` UTF-16 code units
    /// (Hessian counts a string's length in Java chars).
    fn units_len(&self, units: usize) -> Result<usize, HessianError> {
        // Interface and method names are ASCII: one byte per unit.
        if self.buf.get(self.pos..self.pos + units).is_some_and(|b| b.is_ascii()) {
            return Ok(units);
        }
        let (mut at, mut left) = (self.pos, units);
        while left > 0 {
            let (len, counts) = match self.buf.get(at).copied().ok_or_else(|| self.err("truncated string"))? {
                0x00..=0x7f => (1, 1),
                0xc0..=0xdf => (2, 1),
                0xe0..=0xef => (3, 1),
                0xf0..=0xf7 => (4, 2),
                _ => return Err(self.err("invalid UTF-8 in string")),
            };
            at += len;
            left = left.saturating_sub(counts);
        }
        Ok(at - self.pos)
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
    pub fn method_name_field(&mut self) -> Result<Option<Cow<'a, str>>, HessianError> {
        match self.byte()? {
            b'O' => {
                let len = usize::try_from(self.int()?).map_err(|_| self.err("negative type length"))?;
                self.take(len)?;
            }
            b'C' => self.skip_str()?,
            _ => return Ok(None),
        }
        let fields = self.int()?;
        let mut first_is_method = false;
        for i in 0..fields.max(0) {
            if i == 0 {
                first_is_method = self.str_is("methodName")?;
            } else {
                self.skip_str()?;
            }
        }
        match self.byte()? {
            b'o' | b'O' => drop(self.int()?),
            0x60..=0x6f => {}
            _ => return Err(self.err("object instance expected")),
        }
        if !first_is_method {
            return Ok(None);
        }
        self.str()
    }
}

// === skipping (to reach what follows the arguments: Dubbo's attachments) ===

/// How deep skipped values may nest before the input counts as hostile.
const MAX_DEPTH: u32 = 64;

impl<'a> Reader<'a> {
    /// Skips one value of any type, keeping the class definitions it meets
    /// (their field counts) in `classes` for the objects that refer to them.
    pub fn skip(&mut self, classes: &mut Vec<usize>) -> Result<(), HessianError> {
        self.skip_at(classes, 0)
    }

    fn skip_at(&mut self, classes: &mut Vec<usize>, depth: u32) -> Result<(), HessianError> {
        if depth > MAX_DEPTH {
            return Err(self.err("values nested too deep"));
        }
        let code = self.byte()?;
        let d = depth + 1;
        match code {
            b'N' | b'T' | b'F' | 0x80..=0xbf | 0xd8..=0xef | 0x5b | 0x5c => Ok(()),
            0xc0..=0xcf | 0xf0..=0xff | 0x5d => self.take(1).map(drop),
            0xd0..=0xd7 | 0x38..=0x3f | 0x5e => self.take(2).map(drop),
            b'I' | 0x59 | 0x5f | 0x4b => self.take(4).map(drop),
            b'L' | b'D' | 0x4a => self.take(8).map(drop),
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => {
                self.pos -= 1;
                self.skip_str()
            }
            0x20..=0x2f => self.take(usize::from(code - 0x20)).map(drop),
            0x34..=0x37 => {
                let n = usize::from(code - 0x34) << 8 | usize::from(self.byte()?);
                self.take(n).map(drop)
            }
            b'B' | b'A' => self.skip_binary(code),
            b'V' | 0x70..=0x77 => {
                self.skip_type()?;
                let n = if code == b'V' { self.count()? } else { usize::from(code - 0x70) };
                self.skip_n(n, classes, d)
            }
            b'X' | 0x78..=0x7f => {
                let n = if code == b'X' { self.count()? } else { usize::from(code - 0x78) };
                self.skip_n(n, classes, d)
            }
            b'U' | b'M' => {
                self.skip_type()?;
                self.skip_until_end(classes, d, code == b'M')
            }
            b'W' => self.skip_until_end(classes, d, false),
            b'H' => self.skip_until_end(classes, d, true),
            b'C' => {
                self.skip_str()?;
                let fields = self.count()?;
                for _ in 0..fields {
                    self.skip_str()?;
                }
                classes.push(fields);
                self.skip_at(classes, d) // a definition precedes the object itself
            }
            b'O' | 0x60..=0x6f => {
                let r = if code == b'O' { self.count()? } else { usize::from(code - 0x60) };
                let fields = *classes.get(r).ok_or_else(|| self.err("object of an undefined class"))?;
                self.skip_n(fields, classes, d)
            }
            b'Q' => self.int().map(drop),
            _ => Err(self.err("unknown value")),
        }
    }

    fn skip_n(&mut self, n: usize, classes: &mut Vec<usize>, depth: u32) -> Result<(), HessianError> {
        for _ in 0..n {
            self.skip_at(classes, depth)?;
        }
        Ok(())
    }

    /// Skips values (pairs, for a map) up to the closing `Z`.
    fn skip_until_end(&mut self, classes: &mut Vec<usize>, depth: u32, pairs: bool) -> Result<(), HessianError> {
        while self.peek()? != b'Z' {
            self.skip_at(classes, depth)?;
            if pairs {
                self.skip_at(classes, depth)?;
            }
        }
        self.pos += 1;
        Ok(())
    }

    fn skip_binary(&mut self, mut code: u8) -> Result<(), HessianError> {
        loop {
            let n = self.u16()?;
            self.take(n)?;
            if code == b'B' {
                return Ok(());
            }
            code = self.byte()?;
            if code != b'A' && code != b'B' {
                return Err(self.err("binary chunk expected"));
            }
        }
    }

    /// A list or map type: a type name, or a reference to an earlier one.
    fn skip_type(&mut self) -> Result<(), HessianError> {
        match self.peek()? {
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => self.skip_str(),
            _ => self.int().map(drop),
        }
    }

    /// A non-negative length or count.
    fn count(&mut self) -> Result<usize, HessianError> {
        usize::try_from(self.int()?).map_err(|_| self.err("negative length"))
    }

    fn peek(&self) -> Result<u8, HessianError> {
        self.buf.get(self.pos).copied().ok_or_else(|| self.err("truncated value"))
    }

    /// A map of string keys (`H`…`Z`, or typed `M`): its string entries; other
    /// values are skipped.
    pub fn string_map(&mut self, classes: &mut Vec<usize>) -> Result<Headers, HessianError> {
        match self.byte()? {
            b'H' => {}
            b'M' => self.skip_type()?,
            b'N' => return Ok(Headers::default()),
            _ => return Err(self.err("map expected")),
        }
        let mut out = Headers::default();
        while self.peek()? != b'Z' {
            let key = self.string_or_skip(classes)?;
            let value = self.string_or_skip(classes)?;
            if let (Some(k), Some(v)) = (key, value) {
                out.push(&k, &v);
            }
        }
        self.pos += 1;
        Ok(out)
    }

    fn string_or_skip(&mut self, classes: &mut Vec<usize>) -> Result<Option<Cow<'a, str>>, HessianError> {
        match self.peek()? {
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => self.str(),
            _ => self.skip(classes).map(|()| None),
        }
    }
}

/// How many arguments a JVM method descriptor lists (`Ljava/lang/String;I[B` → 3).
pub fn descriptor_args(desc: &str) -> Option<usize> {
    let b = desc.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        while b.get(i) == Some(&b'[') {
            i += 1;
        }
        match b.get(i)? {
            b'L' => i += b[i..].iter().position(|c| *c == b';')? + 1,
            b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' | b'Z' => i += 1,
            _ => return None,
        }
        n += 1;
    }
    Some(n)
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
    fn descriptors_count_their_arguments() {
        assert_eq!(descriptor_args(""), Some(0));
        assert_eq!(descriptor_args("Ljava/lang/String;"), Some(1));
        assert_eq!(descriptor_args("II"), Some(2));
        assert_eq!(descriptor_args("[[ILjava/util/Map;[Ljava/lang/String;J"), Some(4));
        assert_eq!(descriptor_args("Ljava/lang/String"), None);
        assert_eq!(descriptor_args("Q"), None);
    }

    #[test]
    fn every_kind_of_value_is_skipped() {
        // int, long, double, date, string, binary, typed and untyped lists and
        // maps, a class definition with an object, a ref, then a marker.
        let mut v: Vec<u8> = vec![0x91, 0xc8, 0x01, b'I', 0, 0, 0, 1, 0xe0, b'L', 0, 0, 0, 0, 0, 0, 0, 1, 0x5b];
        v.extend_from_slice(&[b'D', 0, 0, 0, 0, 0, 0, 0, 0, 0x4a, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, b'h', b'i']);
        v.extend_from_slice(&[0x22, 1, 2, b'B', 0, 1, 9, 0x72, 0x01, b'x', 0x91, 0x92, 0x79, 0x93, b'W', 0x91, b'Z']);
        v.extend_from_slice(&[b'H', 0x01, b'k', 0x91, b'Z', b'C', 0x01, b'P', 0x92, 0x01, b'a', 0x01, b'b', 0x60]);
        v.extend_from_slice(&[0x91, b'N', b'Q', 0x90, 0x01, b'!']);
        let mut r = Reader::new(&v);
        let mut classes = Vec::new();
        for _ in 0..17 {
            r.skip(&mut classes).unwrap();
        }
        assert_eq!(r.string().unwrap().as_deref(), Some("!"));
        assert!(Reader::new(&[b'O', 0x95]).skip(&mut Vec::new()).is_err(), "an undefined class");
        assert!(Reader::new(&[b'W'; 200]).skip(&mut Vec::new()).is_err(), "nested too deep");
    }

    #[test]
    fn the_medium_form_other_writers_use_is_read() {
        let mut medium = vec![0x30, 32];
        medium.extend_from_slice(&[b'a'; 32]);
        assert_eq!(Reader::new(&medium).string().unwrap().unwrap(), "a".repeat(32));
    }
}
