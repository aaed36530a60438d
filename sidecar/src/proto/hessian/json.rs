//! Hessian 2 values to and from JSON, for the HTTP-to-Dubbo bridge: a caller
//! that speaks JSON (a wasm guest, curl) invokes a Dubbo method, and gets the
//! answer as JSON. Only here is a body deserialized; the proxy path still
//! forwards bytes.
//!
//! Mapping: null, booleans, numbers (int, long, double; dates as epoch
//! milliseconds), strings, lists (any form) as arrays, maps and objects as JSON
//! objects (an object's class name is dropped), binary as an array of bytes.
//! Shared references (`Q`) are resolved by copy; a cycle is an error.

use super::{HessianError, MAX_DEPTH, Reader};
use serde_json::{Map, Number, Value};

/// A class definition met while reading: its field names.
type Class = Vec<String>;

/// What decoding keeps across values: class definitions, and the values of
/// lists, maps and objects by reference number (`None` while being read).
#[derive(Default)]
struct Context {
    classes: Vec<Class>,
    refs: Vec<Option<Value>>,
}

impl Reader<'_> {
    /// Reads one value as JSON.
    pub fn json(&mut self) -> Result<Value, HessianError> {
        self.json_at(&mut Context::default(), 0)
    }

    fn json_at(&mut self, ctx: &mut Context, depth: u32) -> Result<Value, HessianError> {
        if depth > MAX_DEPTH {
            return Err(self.err("values nested too deep"));
        }
        let code = self.peek()?;
        match code {
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => return Ok(self.string()?.map_or(Value::Null, Value::String)),
            _ => self.pos += 1,
        }
        let d = depth + 1;
        Ok(match code {
            b'N' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            0x80..=0xbf | 0xc0..=0xcf | 0xd0..=0xd7 | b'I' => {
                self.pos -= 1;
                Value::from(self.int()?)
            }
            0xd8..=0xef => Value::from(i64::from(code) - 0xe0),
            0xf0..=0xff => Value::from((i64::from(code) - 0xf8) << 8 | i64::from(self.byte()?)),
            0x38..=0x3f => {
                let b = self.take(2)?;
                Value::from((i64::from(code) - 0x3c) << 16 | i64::from(b[0]) << 8 | i64::from(b[1]))
            }
            0x59 => Value::from(i64::from(self.i32_raw()?)),
            b'L' | 0x4a => Value::from(self.i64_raw()?),
            0x4b => Value::from(i64::from(self.i32_raw()?) * 60_000),
            0x5b => float(0.0),
            0x5c => float(1.0),
            0x5d => float(f64::from(self.byte()? as i8)),
            0x5e => {
                let b = self.take(2)?;
                float(f64::from(i16::from_be_bytes([b[0], b[1]])))
            }
            0x5f => float(f64::from(self.i32_raw()?) / 1000.0),
            b'D' => float(f64::from_bits(self.i64_raw()? as u64)),
            0x20..=0x2f => bytes(self.take(usize::from(code - 0x20))?),
            0x34..=0x37 => {
                let n = usize::from(code - 0x34) << 8 | usize::from(self.byte()?);
                bytes(self.take(n)?)
            }
            b'B' | b'A' => self.binary_json(code)?,
            b'V' | 0x70..=0x77 | b'X' | 0x78..=0x7f | b'U' | b'W' => self.list_json(code, ctx, d)?,
            b'H' | b'M' => self.map_json(code, ctx, d)?,
            b'C' => {
                self.class_def(ctx)?;
                self.json_at(ctx, d)? // a definition precedes the object itself
            }
            b'O' | 0x60..=0x6f => self.object_json(code, ctx, d)?,
            b'Q' => {
                let r = self.count()?;
                match ctx.refs.get(r) {
                    Some(Some(v)) => v.clone(),
                    Some(None) => return Err(self.err("cyclic reference (JSON cannot hold it)")),
                    None => return Err(self.err("reference to an unknown value")),
                }
            }
            _ => return Err(self.err("unknown value")),
        })
    }

    fn i32_raw(&mut self) -> Result<i32, HessianError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64_raw(&mut self) -> Result<i64, HessianError> {
        let b = self.take(8)?;
        Ok(i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    fn binary_json(&mut self, mut code: u8) -> Result<Value, HessianError> {
        let mut out = Vec::new();
        loop {
            let n = self.u16()?;
            out.extend_from_slice(self.take(n)?);
            if code == b'B' {
                return Ok(bytes(&out));
            }
            code = self.byte()?;
            if code != b'A' && code != b'B' {
                return Err(self.err("binary chunk expected"));
            }
        }
    }

    fn list_json(&mut self, code: u8, ctx: &mut Context, depth: u32) -> Result<Value, HessianError> {
        if matches!(code, b'V' | 0x70..=0x77 | b'U') {
            self.skip_type()?;
        }
        let fixed = match code {
            b'V' | b'X' => Some(self.count()?),
            0x70..=0x77 => Some(usize::from(code - 0x70)),
            0x78..=0x7f => Some(usize::from(code - 0x78)),
            _ => None,
        };
        let slot = self.reserve(ctx);
        let mut items = Vec::new();
        match fixed {
            Some(n) => {
                for _ in 0..n {
                    items.push(self.json_at(ctx, depth)?);
                }
            }
            None => {
                while self.peek()? != b'Z' {
                    items.push(self.json_at(ctx, depth)?);
                }
                self.pos += 1;
            }
        }
        Ok(fill(ctx, slot, Value::Array(items)))
    }

    fn map_json(&mut self, code: u8, ctx: &mut Context, depth: u32) -> Result<Value, HessianError> {
        if code == b'M' {
            self.skip_type()?;
        }
        let slot = self.reserve(ctx);
        let mut map = Map::new();
        while self.peek()? != b'Z' {
            let key = match self.json_at(ctx, depth)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            map.insert(key, self.json_at(ctx, depth)?);
        }
        self.pos += 1;
        Ok(fill(ctx, slot, Value::Object(map)))
    }

    fn class_def(&mut self, ctx: &mut Context) -> Result<(), HessianError> {
        self.skip_str()?; // the class name
        let n = self.count()?;
        let mut fields = Vec::new();
        for _ in 0..n {
            fields.push(self.string()?.unwrap_or_default());
        }
        ctx.classes.push(fields);
        Ok(())
    }

    fn object_json(&mut self, code: u8, ctx: &mut Context, depth: u32) -> Result<Value, HessianError> {
        let r = if code == b'O' { self.count()? } else { usize::from(code - 0x60) };
        let fields = ctx.classes.get(r).cloned().ok_or_else(|| self.err("object of an undefined class"))?;
        let slot = self.reserve(ctx);
        let mut map = Map::new();
        for name in fields {
            let v = self.json_at(ctx, depth)?;
            map.insert(name, v);
        }
        Ok(fill(ctx, slot, Value::Object(map)))
    }

    fn reserve(&self, ctx: &mut Context) -> usize {
        ctx.refs.push(None);
        ctx.refs.len() - 1
    }
}

fn fill(ctx: &mut Context, slot: usize, v: Value) -> Value {
    ctx.refs[slot] = Some(v.clone());
    v
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn bytes(b: &[u8]) -> Value {
    Value::Array(b.iter().map(|x| Value::from(*x)).collect())
}

// === writing ===

/// Appends `v` as Hessian 2: ints that fit 32 bits as `int`, larger ones as
/// `long`, other numbers as `double`, arrays as untyped lists, objects as
/// untyped maps (a Java peer reads `HashMap`/`ArrayList`).
pub fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(b'N'),
        Value::Bool(b) => out.push(if *b { b'T' } else { b'F' }),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => match i32::try_from(i) {
                Ok(small) => super::write_int(out, small),
                Err(_) => {
                    out.push(b'L');
                    out.extend_from_slice(&i.to_be_bytes());
                }
            },
            (None, Some(f)) => {
                out.push(b'D');
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            (None, None) => out.push(b'N'),
        },
        Value::String(s) => super::write_string(out, s),
        Value::Array(items) => {
            // Fixed-length forms: hessian.js (Node peers) cannot read `W`.
            match u8::try_from(items.len()) {
                Ok(n @ 0..=7) => out.push(0x78 + n),
                _ => {
                    out.push(b'X');
                    super::write_int(out, i32::try_from(items.len()).unwrap_or(i32::MAX));
                }
            }
            items.iter().for_each(|i| write_json(out, i));
        }
        Value::Object(map) => {
            out.push(b'H');
            for (k, v) in map {
                super::write_string(out, k);
                write_json(out, v);
            }
            out.push(b'Z');
        }
    }
}

/// The JVM type descriptor a Dubbo request declares for a JSON argument.
pub fn descriptor(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "Ljava/lang/Boolean;",
        Value::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => "Ljava/lang/Integer;",
        Value::Number(n) if n.as_i64().is_some() => "Ljava/lang/Long;",
        Value::Number(_) => "Ljava/lang/Double;",
        Value::String(_) => "Ljava/lang/String;",
        Value::Array(_) => "Ljava/util/List;",
        Value::Object(_) => "Ljava/util/Map;",
        Value::Null => "Ljava/lang/Object;",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: Value) -> Value {
        let mut out = Vec::new();
        write_json(&mut out, &v);
        let mut r = Reader::new(&out);
        let back = r.json().unwrap();
        assert_eq!(r.pos, out.len(), "the whole value was read");
        back
    }

    #[test]
    fn json_round_trips_through_hessian() {
        let v = json!({"sku": "tea", "qty": 3, "big": 5_000_000_000i64, "price": 2.5, "neg": -70000,
                       "ok": true, "none": null, "tags": ["a", "ü", 1], "nested": {"deep": [[]]}});
        assert_eq!(round_trip(v.clone()), v);
        assert_eq!(round_trip(json!("x".repeat(40_000))), json!("x".repeat(40_000)));
        let long: Vec<u32> = (0..300).collect();
        assert_eq!(round_trip(json!(long)), json!(long), "a list past the short form");
    }

    #[test]
    fn reads_compact_forms_peers_write() {
        // long 3 (0xe3), double 0.0/1.0/-2 (byte)/300 (short)/1.5 (mills), a date.
        let input = [
            0xe3, 0x5b, 0x5c, 0x5d, 0xfe, 0x5e, 0x01, 0x2c, 0x5f, 0, 0, 0x05, 0xdc, 0x4a, 0, 0, 0, 0, 0, 0, 0x03, 0xe8,
        ];
        let mut r = Reader::new(&input);
        let vals: Vec<Value> = (0..7).map(|_| r.json().unwrap()).collect();
        assert_eq!(vals, vec![json!(3), json!(0.0), json!(1.0), json!(-2.0), json!(300.0), json!(1.5), json!(1000)]);
    }

    #[test]
    fn objects_become_maps_and_references_are_copied() {
        // class Item {name, qty}; object 0 ("tea", 2); a list of two: that object and a ref to it.
        let mut b = vec![b'C'];
        crate::proto::hessian::write_string(&mut b, "com.example.Item");
        b.push(0x92);
        crate::proto::hessian::write_string(&mut b, "name");
        crate::proto::hessian::write_string(&mut b, "qty");
        b.extend_from_slice(&[0x7a, 0x60, 0x03, b't', b'e', b'a', 0x92, b'Q', 0x91]);
        let v = Reader::new(&b).json().unwrap();
        assert_eq!(v, json!([{"name": "tea", "qty": 2}, {"name": "tea", "qty": 2}]));
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for bad in [&[b'Q', 0x95][..], &[0x7a, b'Q', 0x90, 0x90], &[b'W'; 200], &[b'O', 0x90], &[b'L', 1, 2], &[0xff]] {
            assert!(Reader::new(bad).json().is_err(), "{bad:?}");
        }
    }
}
