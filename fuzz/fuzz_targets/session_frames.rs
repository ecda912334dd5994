//! Raw bytes as a whole message on a resumable session's socket (the first byte says whether
//! it came in text frames), read as the front reads it, and as a presented session secret.
//!
//! Asserted: what is read as an acknowledgement or a resume request is exactly the canonical
//! text of what it was read as (so no two texts mean the same count, and a count never
//! overflows); control messages are refused in binary frames and beyond their length limit;
//! the host's own acknowledgements read back as the count they carry; a secret is accepted
//! only when it is the session's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfn_host::connections::Session;
use wsfn_host::protocol::session::{
    ClientFrame, HostControl, MAX_CONTROL, MESSAGE, SessionFrameError, parse_client_frame,
};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let text = kind & 1 != 0;
    match parse_client_frame(payload, text) {
        Ok(ClientFrame::Message(rest)) => {
            assert_eq!(payload[0], MESSAGE);
            assert_eq!(rest, &payload[1..]);
        }
        Ok(ClientFrame::Ack(count)) => {
            assert!(text && payload.len() <= MAX_CONTROL + 1);
            assert_eq!(payload, format!("a{count}").as_bytes());
            let host_ack = HostControl::Ack { handled: count }.encode();
            assert_eq!(
                parse_client_frame(host_ack.as_bytes(), true),
                Ok(ClientFrame::Ack(count))
            );
        }
        Ok(ClientFrame::Resume { secret, received }) => {
            assert!(text && payload.len() <= MAX_CONTROL + 1);
            assert!(!secret.is_empty() && secret.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(payload, format!("r{secret} {received}").as_bytes());
        }
        Err(SessionFrameError::BinaryControl) => assert!(!text),
        Err(SessionFrameError::Empty) => assert!(payload.is_empty()),
        Err(_) => {}
    }

    let session = Session::new(None);
    let presented = String::from_utf8_lossy(payload);
    assert!(
        !session.is_secret(&presented) || presented.eq_ignore_ascii_case(&session.secret_hex())
    );
    assert!(session.is_secret(&session.secret_hex()));
});
