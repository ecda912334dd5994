//! What may be asked of a connection, checked the same way wherever it is asked: by
//! on-connect's accept, by a guest's imports, or through the admin API.

use crate::protocol::{CloseCode, CloseRuleError};

/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 128;
/// Largest attachment, in bytes.
pub const MAX_ATTACHMENT: usize = 64 * 1024;

/// An argument a connection operation refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("group names must be 1 to {MAX_GROUP_NAME} bytes long")]
    GroupName,
    #[error("attachments are at most {MAX_ATTACHMENT} bytes")]
    Attachment,
    #[error(transparent)]
    Close(#[from] CloseRuleError),
}

pub fn check_group(group: &str) -> Result<(), RuleError> {
    if group.is_empty() || group.len() > MAX_GROUP_NAME {
        return Err(RuleError::GroupName);
    }
    Ok(())
}

pub fn check_attachment(attachment: &[u8]) -> Result<(), RuleError> {
    if attachment.len() > MAX_ATTACHMENT {
        return Err(RuleError::Attachment);
    }
    Ok(())
}

/// A close asked for by a function or the operator (see `CloseCode::check_application`).
pub fn check_close(code: u16, reason: &str) -> Result<CloseCode, RuleError> {
    Ok(CloseCode::check_application(code, reason)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_1_to_128_bytes() {
        assert_eq!(check_group(""), Err(RuleError::GroupName));
        assert!(check_group("g").is_ok());
        assert!(check_group(&"g".repeat(128)).is_ok());
        assert_eq!(check_group(&"g".repeat(129)), Err(RuleError::GroupName));
    }

    #[test]
    fn attachments_are_at_most_64_kib() {
        assert!(check_attachment(&vec![0; MAX_ATTACHMENT]).is_ok());
        assert_eq!(
            check_attachment(&vec![0; MAX_ATTACHMENT + 1]),
            Err(RuleError::Attachment)
        );
    }

    #[test]
    fn closes_follow_the_application_rule() {
        assert_eq!(check_close(4000, "bye"), Ok(CloseCode(4000)));
        assert!(matches!(check_close(1011, ""), Err(RuleError::Close(_))));
    }
}
