//! Close codes (RFC 6455 §7.4) and close frames: which codes a peer may send, which a function
//! or the operator may send, and how a close frame's payload is read and written.
//!
//! The host itself reports protocol events with the codes only it may use (1001 going away,
//! 1002, 1007, 1008, 1009, 1011); functions and the admin API are held to the application
//! rule, so a client can trust that those codes mean what the RFC says.

use super::frame::write_frame;
use super::opcode::Opcode;
use super::text::truncate_utf8;

/// Longest close reason a close frame has room for: 125 bytes of payload less the code.
pub const MAX_CLOSE_REASON: usize = 123;

/// A WebSocket close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// Reported when a close frame carried no code; never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Reported when the connection ended without a close handshake; never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// The server is restarting: a client may reconnect (and resume) elsewhere.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);

    /// Codes a peer may put in a close frame (§7.4.1 and the IANA registry): 1000-1003,
    /// 1007-1014, and the ranges for libraries and applications.
    pub fn is_valid_from_peer(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Codes a function or the operator may close with: 1000 (normal) and the ranges for
    /// libraries (3000-3999) and applications (4000-4999). The others describe protocol
    /// events only the host reports.
    pub fn is_valid_from_application(self) -> bool {
        self.0 == 1000 || (3000..=4999).contains(&self.0)
    }

    /// Checks a close asked for by a function or the operator.
    pub fn check_application(code: u16, reason: &str) -> Result<CloseCode, CloseRuleError> {
        let code = CloseCode(code);
        if !code.is_valid_from_application() {
            return Err(CloseRuleError::Code(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(CloseRuleError::ReasonTooLong);
        }
        Ok(code)
    }
}

/// Why a function or the operator may not close with this code and reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseRuleError {
    #[error("close code {0} is not allowed: use 1000 or 3000-4999")]
    Code(u16),
    #[error("close reasons are at most {MAX_CLOSE_REASON} bytes")]
    ReasonTooLong,
}

/// Why a peer's close frame is malformed (§5.5.1, §7.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloseFrameError {
    #[error("protocol error: a close payload of one byte")]
    OneByte,
    #[error("protocol error: a close code a peer may not send")]
    CodeNotAllowed,
    #[error("protocol error: a close reason that is not UTF-8")]
    ReasonNotUtf8,
}

impl CloseFrameError {
    /// The code the host answers a malformed close with.
    pub fn close_code(self) -> CloseCode {
        match self {
            CloseFrameError::OneByte | CloseFrameError::CodeNotAllowed => CloseCode::PROTOCOL_ERROR,
            CloseFrameError::ReasonNotUtf8 => CloseCode::INVALID_DATA,
        }
    }
}

/// Reads a peer's close payload: its code (1005 when it carried none) and reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<(CloseCode, &str), CloseFrameError> {
    match payload {
        [] => Ok((CloseCode::NO_STATUS, "")),
        [_] => Err(CloseFrameError::OneByte),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_from_peer() {
                return Err(CloseFrameError::CodeNotAllowed);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| CloseFrameError::ReasonNotUtf8)?;
            Ok((code, reason))
        }
    }
}

/// Appends a close frame. 1005 ("no code") is written as a close frame without payload; a
/// reason is cut to what a control frame has room for, at a character boundary, so the host
/// never writes an invalid close frame whatever it was given.
pub fn write_close_frame(buffer: &mut Vec<u8>, code: u16, reason: &str) {
    if code == CloseCode::NO_STATUS.0 {
        write_frame(buffer, Opcode::Close, &[]);
        return;
    }
    let reason = truncate_utf8(reason, MAX_CLOSE_REASON);
    let mut payload = [0u8; 2 + MAX_CLOSE_REASON];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    write_frame(buffer, Opcode::Close, &payload[..2 + reason.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_a_peer_may_send() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert!(CloseCode(code).is_valid_from_peer(), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_valid_from_peer(), "{code}");
        }
    }

    #[test]
    fn codes_an_application_may_send() {
        for code in [1000, 3000, 3999, 4000, 4999] {
            assert!(CloseCode::check_application(code, "bye").is_ok(), "{code}");
        }
        for code in [999, 1001, 1002, 1005, 1006, 1011, 2999, 5000] {
            assert_eq!(
                CloseCode::check_application(code, ""),
                Err(CloseRuleError::Code(code))
            );
        }
        assert_eq!(
            CloseCode::check_application(1000, &"r".repeat(124)),
            Err(CloseRuleError::ReasonTooLong)
        );
        assert!(CloseCode::check_application(1000, &"r".repeat(123)).is_ok());
    }

    #[test]
    fn close_payloads_are_read_by_the_rules() {
        assert_eq!(parse_close_payload(&[]), Ok((CloseCode::NO_STATUS, "")));
        assert_eq!(parse_close_payload(&[3]), Err(CloseFrameError::OneByte));
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, b'h', b'i']),
            Ok((CloseCode::NORMAL, "hi"))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xED]),
            Err(CloseFrameError::CodeNotAllowed)
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, 0xff]),
            Err(CloseFrameError::ReasonNotUtf8)
        );
        assert_eq!(
            CloseFrameError::ReasonNotUtf8.close_code(),
            CloseCode::INVALID_DATA
        );
    }

    #[test]
    fn close_frames_fit_a_control_frame() {
        let mut frame = Vec::new();
        write_close_frame(&mut frame, 1000, &"r".repeat(200));
        assert_eq!(&frame[..4], [0x88, 125, 0x03, 0xE8]);
        assert_eq!(frame.len(), 2 + 125);

        frame.clear();
        write_close_frame(&mut frame, 1005, "ignored");
        assert_eq!(frame, [0x88, 0]);

        // 61 two-byte characters and one more: the cut falls between characters.
        frame.clear();
        write_close_frame(&mut frame, 4000, &"é".repeat(62));
        assert_eq!(&frame[4..], "é".repeat(61).as_bytes());
    }
}
