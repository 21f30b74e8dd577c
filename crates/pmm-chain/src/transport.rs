//! The JSON-RPC transport over HTTP: alloy's reqwest transport records the full URL in a
//! debug span, so an RPC URL's user info, path key or query key reached every log at debug
//! level. This one sends user info as an `Authorization: Basic` header and records nothing
//! about the URL; reqwest errors lose their URL before they leave.

use std::task::{Context, Poll};

use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::http::reqwest::{self, Url, header};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};

use crate::endpoint::Endpoint;

/// One node's HTTP JSON-RPC endpoint, for alloy's `RpcClient`.
#[derive(Clone)]
pub(crate) struct QuietHttp {
    client: reqwest::Client,
    url: Url,
    basic_auth: Option<(String, Option<String>)>,
}

impl std::fmt::Debug for QuietHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuietHttp").finish_non_exhaustive()
    }
}

impl QuietHttp {
    /// A transport to `endpoint`: its URL without user info, the user info as a header.
    pub(crate) fn new(endpoint: &Endpoint) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: endpoint.url_without_user_info(),
            basic_auth: endpoint.basic_auth(),
        }
    }

    async fn post(self, req: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let mut builder = self
            .client
            .post(self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .json(&req);
        if let Some((user, password)) = self.basic_auth {
            builder = builder.basic_auth(user, password);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| TransportErrorKind::custom(e.without_url()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportErrorKind::custom(e.without_url()))?;
        if !status.is_success() {
            return Err(TransportErrorKind::http_error(
                status.as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|err| TransportError::deser_err(err, String::from_utf8_lossy(&body)))
    }
}

impl tower::Service<RequestPacket> for QuietHttp {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // reqwest's client is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        Box::pin(self.clone().post(req))
    }
}
