//! Tool errors and their one mapping to HTTP and MCP.

use axum::http::StatusCode;
use pmm_chain::ChainError;
use serde::Serialize;

/// Why a tool call failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The parameters are malformed or out of range.
    #[error("{0}")]
    InvalidParams(String),
    /// One parameter breaks its advertised schema or does not decode.
    #[error("{field}: {message}")]
    InvalidField {
        /// Path of the parameter, e.g. `action.reason`; `params` for the whole object.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No such tool.
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
    /// The caller's role may not call this tool.
    #[error("tool {tool} needs the {needed} role")]
    Forbidden {
        /// Tool.
        tool: String,
        /// Role required.
        needed: &'static str,
    },
    /// The pool or action is of a kind this tool does not handle.
    #[error("{0}")]
    Unsupported(String),
    /// The chain read or dry run failed.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The chain answered values the schema rejects.
    #[error("pool state rejected: {0}")]
    Schema(#[from] pmm_core::schema::SchemaError),
    /// The exact math says the contract would revert.
    #[error("would revert: {0}")]
    Math(#[from] pmm_core::math::MathError),
    /// A write tool was called with a write gate closed; nothing was built.
    #[error(
        "writes are disabled: allow_write={allow_write}, execution_armed={execution_armed} (both must be true)"
    )]
    GateClosed {
        /// `ALLOW_WRITE`.
        allow_write: bool,
        /// `EXECUTION_ARMED`.
        execution_armed: bool,
    },
    /// The idempotency key belongs to another write.
    #[error("{0}")]
    Conflict(String),
    /// Redis is configured but does not answer (state-changing paths fail closed).
    #[error("state store unavailable: {0}")]
    Store(String),
    /// The hub failed in a way no input explains (a write task that panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of an error, the same on every transport.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable machine code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The parameter at fault (`null` when the error is not about one parameter).
    pub field: Option<String>,
}

impl ToolError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParams(_) | Self::InvalidField { .. } => "invalid_params",
            Self::UnknownTool(_) => "unknown_tool",
            Self::Forbidden { .. } => "forbidden",
            Self::Unsupported(_) => "unsupported",
            Self::Chain(_) => "chain_error",
            Self::Schema(_) => "invalid_pool_state",
            Self::Math(_) => "would_revert",
            Self::Store(_) => "store_unavailable",
            Self::GateClosed { .. } => "gate_closed",
            Self::Conflict(_) => "idempotency_conflict",
            Self::Internal(_) => "internal",
        }
    }

    /// HTTP status for `/mcp/call`.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidParams(_)
            | Self::InvalidField { .. }
            | Self::Unsupported(_)
            | Self::Math(_) => StatusCode::BAD_REQUEST,
            Self::UnknownTool(_) => StatusCode::NOT_FOUND,
            Self::Forbidden { .. } | Self::GateClosed { .. } => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Chain(_) | Self::Schema(_) => StatusCode::BAD_GATEWAY,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body both transports carry.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            field: match self {
                Self::InvalidField { field, .. } => Some(field.clone()),
                _ => None,
            },
        }
    }
}
