//! Bounded AMF0 decoding of inbound command messages.
//!
//! `rml_amf0::deserialize` recurses without a depth limit (a server can overflow our stack with a
//! few kilobytes of nested objects) and rml_rtmp's command parser panics on commands with fewer
//! than three values, so inbound commands are decoded here, into `rml_amf0::Amf0Value`.

use crate::error::{Error, Result};
use rml_amf0::Amf0Value;
use std::collections::HashMap;

/// Status objects nest two levels; a little headroom for servers that add `data` objects.
const MAX_DEPTH: usize = 16;
/// Every value costs far more memory than its one-byte encoding; cap the amplification.
const MAX_VALUES: usize = 4096;

/// An inbound AMF0 command: name, transaction id, command object, further arguments.
#[derive(Debug)]
pub(super) struct Command {
    pub name: String,
    pub transaction_id: f64,
    pub object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

pub(super) fn decode_command(data: &[u8]) -> Result<Command> {
    let mut values = decode_all(data)?.into_iter();
    let name = match values.next() {
        Some(Amf0Value::Utf8String(s)) => s,
        _ => return Err(bad("command does not start with a name")),
    };
    let transaction_id = match values.next() {
        Some(Amf0Value::Number(n)) => n,
        // Some servers omit the transaction id on notifications (`close`, `onStatus`).
        None => 0.0,
        _ => return Err(bad("command transaction id is not a number")),
    };
    let object = values.next().unwrap_or(Amf0Value::Null);
    Ok(Command { name, transaction_id, object, args: values.collect() })
}

fn bad(what: &str) -> Error {
    Error::Protocol(format!("malformed AMF0: {what}"))
}

pub(super) fn decode_all(data: &[u8]) -> Result<Vec<Amf0Value>> {
    let mut r = Reader { data, pos: 0, values: 0 };
    let mut out = Vec::new();
    while r.pos < data.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    values: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| bad("truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn string(&mut self, len: usize) -> Result<String> {
        // Lossy: a server's description in Latin-1 must not turn a rejection into a parse error.
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value> {
        if depth > MAX_DEPTH {
            return Err(bad("nested too deep"));
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(bad("too many values"));
        }
        Ok(match self.u8()? {
            0x00 => Amf0Value::Number(self.f64()?),
            0x01 => Amf0Value::Boolean(self.u8()? != 0),
            0x02 => {
                let n = self.u16()? as usize;
                Amf0Value::Utf8String(self.string(n)?)
            }
            0x03 => Amf0Value::Object(self.properties(depth)?),
            0x05 => Amf0Value::Null,
            0x06 | 0x0D => Amf0Value::Undefined,
            0x07 => {
                // Reference to an earlier complex value: not worth resolving in a status reply.
                self.u16()?;
                Amf0Value::Undefined
            }
            0x08 => {
                self.u32()?; // the count is only a hint
                Amf0Value::Object(self.properties(depth)?)
            }
            0x0A => {
                let count = self.u32()? as usize;
                // The count is the server's claim; allocate by what actually decodes.
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            0x0B => {
                let ms = self.f64()?;
                self.u16()?; // time zone, unused by the format
                Amf0Value::Number(ms)
            }
            0x0C | 0x0F => {
                let n = self.u32()? as usize;
                Amf0Value::Utf8String(self.string(n)?)
            }
            0x10 => {
                let n = self.u16()? as usize;
                self.take(n)?; // class name
                Amf0Value::Object(self.properties(depth)?)
            }
            m => return Err(bad(&format!("unsupported marker 0x{m:02x}"))),
        })
    }

    fn properties(&mut self, depth: usize) -> Result<HashMap<String, Amf0Value>> {
        let mut props = HashMap::new();
        loop {
            let n = self.u16()? as usize;
            if n == 0 {
                match self.u8()? {
                    0x09 => return Ok(props),
                    _ => return Err(bad("empty property name")),
                }
            }
            let key = self.string(n)?;
            let v = self.value(depth + 1)?;
            props.insert(key, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_rml_amf0_encodes() {
        let mut status = HashMap::new();
        status.insert("level".to_string(), Amf0Value::Utf8String("error".into()));
        status.insert("n".to_string(), Amf0Value::Number(3.5));
        let values = vec![
            Amf0Value::Utf8String("onStatus".into()),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::Object(status),
            Amf0Value::StrictArray(vec![Amf0Value::Boolean(true), Amf0Value::Undefined]),
        ];
        let bytes = rml_amf0::serialize(&values).unwrap();
        assert_eq!(decode_all(&bytes).unwrap(), values);
        let c = decode_command(&bytes).unwrap();
        assert_eq!(c.name, "onStatus");
        assert_eq!(c.args.len(), 2);
    }

    #[test]
    fn deep_nesting_and_short_input_are_errors_not_crashes() {
        let mut deep = Vec::new();
        for _ in 0..100_000 {
            deep.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
        }
        assert!(matches!(decode_all(&deep), Err(Error::Protocol(_))));
        let mut arrays = Vec::new();
        for _ in 0..100_000 {
            arrays.extend_from_slice(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        assert!(matches!(decode_all(&arrays), Err(Error::Protocol(_))));
        assert!(decode_all(&[0x02, 0xFF, 0xFF, b'x']).is_err());
        assert!(decode_all(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(decode_command(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_all(&[0x05; 10_000]).is_err());
    }
}
