//! An RPC endpoint whose credentials never reach a log line or an error message.

use alloy::transports::http::reqwest::Url;

use crate::error::ChainError;

/// Shortest URL fragment scrubbed on its own.
const MIN_SECRET_LEN: usize = 4;

/// A parsed RPC URL plus a display form with user info, query and path tokens removed.
#[derive(Clone)]
pub struct Endpoint {
    url: Url,
    display: String,
}

impl Endpoint {
    /// Parses `raw`; the error never echoes the URL back.
    pub fn parse(raw: &str) -> Result<Self, ChainError> {
        let url = Url::parse(raw).map_err(|e| ChainError::InvalidUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ChainError::InvalidUrl(format!(
                "scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        // Providers put API keys in the user info, the query or the path, so only the origin is shown.
        let display = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
            (Some(host), None) => format!("{}://{host}", url.scheme()),
            _ => format!("{}://<no host>", url.scheme()),
        };
        Ok(Self { url, display })
    }

    /// The URL to connect with. Never log it.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The same endpoint over websocket (`ws`/`wss` for `http`/`https`): nodes such as anvil
    /// and geth serve both on one port. Never log it.
    pub fn ws_url(&self) -> Url {
        let mut ws = self.url.clone();
        let scheme = if self.url.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        // Both schemes are "special" in the URL standard, so the swap cannot fail.
        let _ = ws.set_scheme(scheme);
        ws
    }

    /// The URL without user name and password (they go in a header, see
    /// [`Endpoint::basic_auth`]). Still secret: a path or query may carry an API key.
    pub(crate) fn url_without_user_info(&self) -> Url {
        let mut bare = self.url.clone();
        // Only fails for URLs that cannot have user info, which then have none to strip.
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
        bare
    }

    /// The URL's user name and password for an `Authorization: Basic` header, if it has any.
    pub(crate) fn basic_auth(&self) -> Option<(String, Option<String>)> {
        let user = self.url.username();
        let password = self.url.password();
        (!user.is_empty() || password.is_some())
            .then(|| (user.to_owned(), password.map(str::to_owned)))
    }

    /// Scheme, host and port only: safe for logs and health output.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Removes every spelling of the full URL (and its secret parts) from an error text.
    pub fn scrub(&self, message: &str) -> String {
        let mut variants = Vec::new();
        // The head source connects to the websocket spelling of the same URL.
        for url in [self.url.clone(), self.ws_url()] {
            variants.push(url.to_string());
            let mut bare = url;
            // HTTP clients print the URL without its user info.
            if bare.set_username("").is_ok() && bare.set_password(None).is_ok() {
                variants.push(bare.to_string());
            }
        }
        let mut out = message.to_owned();
        for v in variants {
            for form in [v.as_str(), v.trim_end_matches('/')] {
                if form.len() > self.display.len() {
                    out = out.replace(form, &self.display);
                }
            }
        }
        // Whatever secret survives in another spelling; short fragments are left alone so
        // ordinary words are not mangled.
        let secrets = [
            Some(self.url.username()),
            self.url.password(),
            self.url.query(),
            Some(self.url.path().trim_start_matches('/')),
        ];
        for secret in secrets.into_iter().flatten() {
            if secret.len() >= MIN_SECRET_LEN {
                out = out.replace(secret, "<redacted>");
            }
        }
        out
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Endpoint").field(&self.display).finish()
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_scrub_hide_credentials() {
        let e = Endpoint::parse("https://user:pw@rpc.example.org/v2/SECRETKEY?key=abc").unwrap();
        assert_eq!(e.display(), "https://rpc.example.org");
        let msg =
            "error sending request for url (https://user:pw@rpc.example.org/v2/SECRETKEY?key=abc)";
        let s = e.scrub(msg);
        assert!(
            !s.contains("SECRETKEY") && !s.contains("pw") && !s.contains("abc"),
            "{s}"
        );
        assert!(!format!("{e:?}").contains("SECRETKEY"));
    }

    #[test]
    fn scrub_hides_a_key_carried_as_user_name() {
        let e = Endpoint::parse("https://KEY0123456789@rpc.example.org/").unwrap();
        let s = e.scrub("401 for project KEY0123456789");
        assert!(!s.contains("KEY0123456789"), "{s}");
    }

    #[test]
    fn ws_url_keeps_host_path_and_credentials_and_is_scrubbed() {
        let e = Endpoint::parse("https://user:pw@rpc.example.org/v2/SECRETKEY").unwrap();
        assert_eq!(
            e.ws_url().as_str(),
            "wss://user:pw@rpc.example.org/v2/SECRETKEY"
        );
        let s = e.scrub("ws error for wss://user:pw@rpc.example.org/v2/SECRETKEY");
        assert!(!s.contains("SECRETKEY") && !s.contains("pw@"), "{s}");
        let local = Endpoint::parse("http://127.0.0.1:8545").unwrap();
        assert_eq!(local.ws_url().as_str(), "ws://127.0.0.1:8545/");
    }

    #[test]
    fn user_info_moves_to_basic_auth() {
        let e = Endpoint::parse("https://user:pw@rpc.example.org/v2/KEY?key=abc").unwrap();
        assert_eq!(
            e.url_without_user_info().as_str(),
            "https://rpc.example.org/v2/KEY?key=abc"
        );
        assert_eq!(e.basic_auth(), Some(("user".into(), Some("pw".into()))));
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8545")
                .unwrap()
                .basic_auth(),
            None
        );
    }

    #[test]
    fn rejects_non_http_without_echoing() {
        let err = Endpoint::parse("ws://secret@host").unwrap_err().to_string();
        assert!(!err.contains("secret"));
        assert!(Endpoint::parse("not a url").is_err());
    }
}
