//! The status column of `transactions` rows. The rows themselves are written and read
//! through [`crate::intents`], the one API for them.

use std::fmt;
use std::str::FromStr;

use crate::error::{Result, StoreError};

/// Lifecycle of a transaction. Statuses only move forward; the last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxStatus {
    /// Built, not signed.
    Pending,
    /// Signed, not sent.
    Signed,
    /// Sent, no receipt yet.
    Sent,
    /// Mined with success.
    Confirmed,
    /// Mined and reverted, or rejected.
    Failed,
    /// Never mined (replaced or expired).
    Dropped,
}

impl TxStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signed => "signed",
            Self::Sent => "sent",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }

    /// Whether no further update is accepted.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Failed | Self::Dropped)
    }
}

impl fmt::Display for TxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TxStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => Self::Pending,
            "signed" => Self::Signed,
            "sent" => Self::Sent,
            "confirmed" => Self::Confirmed,
            "failed" => Self::Failed,
            "dropped" => Self::Dropped,
            other => {
                return Err(StoreError::Corrupt {
                    location: "transactions.status".into(),
                    reason: format!("unknown status {other:?}"),
                });
            }
        })
    }
}
