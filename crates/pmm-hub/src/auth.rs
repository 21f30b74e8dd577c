//! Bearer tokens per role, compared in constant time.
//!
//! Tokens are hashed before the compare so neither their content nor their length leaks
//! through timing; every configured token is compared on every request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::TokenFile;
use crate::guard::{RateLimiter, error_response, rate_limited};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read and simulate.
    Agent,
    /// Everything an agent may do, plus writes and breaker pause/resume.
    Operator,
}

/// An authenticated caller, attached to the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Granted role.
    pub role: Role,
    /// Name written to `tool_calls.caller` (`agent#0`, `operator#1`, `local`).
    pub name: String,
    /// Trace id of the request's W3C `traceparent`, written to `tool_calls.trace_id` so a
    /// caller's own records (an agent decision) join the tool calls it caused.
    pub trace_id: Option<String>,
}

/// The trace id of a well-formed W3C `traceparent` header (version-format 00 fields, neither
/// id all zeros); anything else is ignored rather than stored.
fn trace_id_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let well_formed = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && !zero(trace)
        && hex(parent, 16)
        && !zero(parent)
        && hex(flags, 2);
    well_formed.then(|| trace.to_owned())
}

/// Configured tokens, hashed.
#[derive(Clone)]
pub struct Authenticator {
    tokens: Vec<([u8; 32], Role, String)>,
    open: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("open", &self.open)
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Authenticator {
    /// Tokens mode.
    pub fn with_tokens(tokens: &TokenFile) -> Self {
        let mut all = Vec::new();
        for (i, t) in tokens.agent.iter().enumerate() {
            all.push((digest(t.as_bytes()), Role::Agent, format!("agent#{i}")));
        }
        for (i, t) in tokens.operator.iter().enumerate() {
            all.push((
                digest(t.as_bytes()),
                Role::Operator,
                format!("operator#{i}"),
            ));
        }
        Self {
            tokens: all,
            open: false,
        }
    }

    /// `auth = "none"`: every caller is a local agent.
    pub fn open() -> Self {
        Self {
            tokens: Vec::new(),
            open: true,
        }
    }

    /// The caller a request's `Authorization` header names, or `None`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Caller> {
        if self.open {
            return Some(Caller {
                role: Role::Agent,
                name: "local".to_owned(),
                trace_id: trace_id_of(headers),
            });
        }
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        // The auth scheme is case-insensitive (RFC 9110 section 11.1).
        let (scheme, presented) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let presented = presented.trim();
        let h = digest(presented.as_bytes());
        let mut found: Option<&([u8; 32], Role, String)> = None;
        for entry in &self.tokens {
            if bool::from(entry.0.ct_eq(&h)) {
                found = Some(entry);
            }
        }
        found.map(|(_, role, name)| Caller {
            role: *role,
            name: name.clone(),
            trace_id: trace_id_of(headers),
        })
    }
}

/// State of [`require_caller`]: who may call, and how often.
#[derive(Debug, Clone)]
pub struct CallerGate {
    /// Configured tokens.
    pub auth: Authenticator,
    /// Per-caller token buckets.
    pub limiter: Arc<RateLimiter>,
}

/// Axum middleware: 401 without a valid token, 429 (with `Retry-After`) over the caller's
/// rate; otherwise the [`Caller`] rides along.
pub async fn require_caller(
    State(gate): State<CallerGate>,
    mut req: Request,
    next: Next,
) -> Response {
    match gate.auth.authenticate(req.headers()) {
        Some(caller) => {
            if let Err(retry_after) = gate.limiter.check(&caller.name) {
                return rate_limited(retry_after);
            }
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => {
            let mut r = error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn roles_by_token() {
        let a = Authenticator::with_tokens(&TokenFile {
            agent: vec!["agent-token-0123456789".into()],
            operator: vec!["operator-token-0123456789".into()],
        });
        assert_eq!(
            a.authenticate(&headers("Bearer agent-token-0123456789"))
                .unwrap()
                .role,
            Role::Agent
        );
        assert_eq!(
            a.authenticate(&headers("Bearer operator-token-0123456789"))
                .unwrap()
                .role,
            Role::Operator
        );
        assert_eq!(
            a.authenticate(&headers("bearer agent-token-0123456789"))
                .unwrap()
                .role,
            Role::Agent
        );
        assert!(
            a.authenticate(&headers("Basic agent-token-0123456789"))
                .is_none()
        );
        assert!(a.authenticate(&headers("Bearer nope")).is_none());
        assert!(a.authenticate(&headers("agent-token-0123456789")).is_none());
        assert!(a.authenticate(&HeaderMap::new()).is_none());
        assert!(Role::Operator > Role::Agent);
    }

    #[test]
    fn trace_id_from_a_well_formed_traceparent_only() {
        let tp = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("traceparent", HeaderValue::from_str(v).unwrap());
            trace_id_of(&h)
        };
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            tp(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(),
            Some(id)
        );
        for bad in [
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{id}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase()),
            format!("ff-{id}-00f067aa0ba902b7-01"),
            format!("00-{id}-00f067aa0ba902b7-01-extra"),
            format!("00-{id}-00f067aa0ba902b7"),
            "garbage".to_owned(),
        ] {
            assert_eq!(tp(&bad), None, "{bad}");
        }
        assert_eq!(trace_id_of(&HeaderMap::new()), None);
    }
}
