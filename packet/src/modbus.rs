//! Modbus/TCP: the MBAP header and function code at the start of a TCP
//! payload to or from port 502 (Modbus Messaging on TCP/IP Implementation
//! Guide v1.0b, §3.1.3).
//!
//! Only the first PDU of a segment is read. Never panics, never allocates.

/// Byte ranges of the MBAP header and the function code after it.
mod field {
    use std::ops::Range;
    pub const TRANSACTION_ID: Range<usize> = 0..2;
    pub const PROTOCOL_ID: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const UNIT_ID: usize = 6;
    pub const FUNCTION_CODE: usize = 7;
}

/// Length of the MBAP header plus the function code.
pub const HEADER_LEN: usize = field::FUNCTION_CODE + 1;

/// The registered Modbus/TCP port.
pub const PORT: u16 = 502;

fn be16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// The header of one Modbus/TCP application data unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modbus {
    transaction_id: u16,
    length: u16,
    unit_id: u8,
    function_code: u8,
}

/// Why a payload on port 502 is not a Modbus/TCP ADU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModbusError {
    /// Shorter than the 7-byte MBAP header plus the function code.
    Truncated,
    /// The protocol identifier is not 0 (not Modbus), or the length field
    /// is too small to hold a unit id and a function code.
    BadHeader,
}

impl Modbus {
    /// Reads the MBAP header and function code at the start of `payload`.
    pub fn parse(payload: &[u8]) -> Result<Modbus, ModbusError> {
        if payload.len() < HEADER_LEN {
            return Err(ModbusError::Truncated);
        }
        let length = be16(payload, field::LENGTH);
        if be16(payload, field::PROTOCOL_ID) != 0 || length < 2 {
            return Err(ModbusError::BadHeader);
        }
        Ok(Modbus {
            transaction_id: be16(payload, field::TRANSACTION_ID),
            length,
            unit_id: payload[field::UNIT_ID],
            function_code: payload[field::FUNCTION_CODE],
        })
    }

    /// Transaction identifier (pairs a response with its request).
    pub fn transaction_id(&self) -> u16 {
        self.transaction_id
    }

    /// The MBAP length field: bytes following it (unit id + PDU).
    pub fn length(&self) -> u16 {
        self.length
    }

    /// Unit identifier (the addressed device behind a gateway).
    pub fn unit_id(&self) -> u8 {
        self.unit_id
    }

    /// Function code; exception responses have the high bit set.
    pub fn function_code(&self) -> u8 {
        self.function_code
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Diagnostics (fc 8) request, sub-function 0 "return query data".
    pub(crate) const DIAGNOSTICS: [u8; 12] = [0x00, 0x2a, 0, 0, 0, 6, 0x01, 0x08, 0, 0, 0xab, 0xcd];

    #[test]
    fn mbap_fields() {
        let m = Modbus::parse(&DIAGNOSTICS).unwrap();
        assert_eq!(m.transaction_id(), 42);
        assert_eq!(m.length(), 6);
        assert_eq!(m.unit_id(), 1);
        assert_eq!(m.function_code(), 8);
    }

    #[test]
    fn bad_headers() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Modbus::parse(&DIAGNOSTICS[..n]),
                Err(ModbusError::Truncated)
            );
        }
        let mut p = DIAGNOSTICS;
        p[3] = 1;
        assert_eq!(Modbus::parse(&p), Err(ModbusError::BadHeader));
        let mut p = DIAGNOSTICS;
        p[5] = 1;
        assert_eq!(Modbus::parse(&p), Err(ModbusError::BadHeader));
    }
}
