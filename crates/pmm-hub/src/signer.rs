//! The hub's signing key: the one place in the stack a key lives.
//!
//! Sources, in the only two forms accepted:
//! - an encrypted JSON keystore (Web3 Secret Storage, scrypt) plus its password, read from a
//!   file or from the systemd credential `keystore-password` (`$CREDENTIALS_DIRECTORY`);
//! - a raw hex key in `PMM_DEV_SIGNER_KEY`, only with `dev_signer_from_env = true` and only on
//!   chain `devnet`.
//!
//! The key is never logged, returned or printed: [`HubSigner`]'s `Debug` shows the address
//! only, errors never carry key or password text, passwords and raw key text are held in
//! [`Zeroizing`] buffers, and the signing key zeroizes itself on drop (k256). Decryption runs
//! scrypt on a blocking thread, off the async runtime.

use std::path::{Path, PathBuf};

use alloy::network::TxSignerSync;
use alloy::primitives::{Address, Signature};
use alloy::signers::local::PrivateKeySigner;
use zeroize::Zeroizing;

use crate::config::ChainPreset;

/// Environment variable a dev signer's raw key is read from.
pub const DEV_KEY_ENV: &str = "PMM_DEV_SIGNER_KEY";
/// Name of the systemd credential holding the keystore password.
pub const CREDENTIAL_NAME: &str = "keystore-password";

/// Why no signer could be loaded. Messages name files and causes, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// No password source.
    #[error(
        "no keystore password: set keystore_password_file or pass the systemd credential `{CREDENTIAL_NAME}`"
    )]
    NoPassword,
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Wrong password or a damaged keystore.
    #[error("cannot decrypt keystore {0}: wrong password or damaged file")]
    Decrypt(String),
    /// The raw dev key is refused.
    #[error("raw signer key: {0}")]
    DevKey(&'static str),
    /// The blocking decryption task died.
    #[error("keystore decryption task failed")]
    Task,
}

/// The loaded signing key. Cheap to clone (shares nothing mutable); `Debug` shows the address.
#[derive(Clone)]
pub struct HubSigner {
    key: PrivateKeySigner,
}

impl std::fmt::Debug for HubSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSigner")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

impl HubSigner {
    /// Decrypts `keystore` with `password` on a blocking thread.
    pub async fn from_keystore(
        keystore: &Path,
        password: Zeroizing<String>,
    ) -> Result<Self, SignerError> {
        let path = keystore.to_path_buf();
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || {
            PrivateKeySigner::decrypt_keystore(&path, password.as_bytes())
                .map(|key| Self { key })
                .map_err(|_| SignerError::Decrypt(shown))
        })
        .await
        .map_err(|_| SignerError::Task)?
    }

    /// The raw key in [`DEV_KEY_ENV`], refused on every chain but `devnet`.
    pub fn from_dev_env(chain: ChainPreset) -> Result<Self, SignerError> {
        if chain != ChainPreset::Devnet {
            return Err(SignerError::DevKey("accepted only on chain devnet"));
        }
        let raw = Zeroizing::new(
            std::env::var(DEV_KEY_ENV)
                .map_err(|_| SignerError::DevKey("PMM_DEV_SIGNER_KEY is not set"))?,
        );
        Self::from_hex(&raw)
    }

    /// A key from hex text (with or without `0x`).
    fn from_hex(text: &str) -> Result<Self, SignerError> {
        let bytes = Zeroizing::new(
            alloy::hex::decode(text.trim().trim_start_matches("0x"))
                .map_err(|_| SignerError::DevKey("not hex"))?,
        );
        PrivateKeySigner::from_slice(&bytes)
            .map(|key| Self { key })
            .map_err(|_| SignerError::DevKey("not a valid secp256k1 key"))
    }

    /// The account address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The signer pmm-chain signs with.
    pub fn tx_signer(&self) -> &dyn TxSignerSync<Signature> {
        &self.key
    }
}

/// Reads the keystore password: `file` if given, else the systemd credential
/// `$CREDENTIALS_DIRECTORY/keystore-password`. A trailing newline is dropped.
pub fn read_password(file: Option<&Path>) -> Result<Zeroizing<String>, SignerError> {
    let path: PathBuf = match file {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(|d| PathBuf::from(d).join(CREDENTIAL_NAME))
            .ok_or(SignerError::NoPassword)?,
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(&path).map_err(|e| SignerError::File {
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        })?,
    );
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(SignerError::File {
            path: path.display().to_string(),
            reason: "empty password".into(),
        });
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// Writes `key` (or a fresh random key when `None`) encrypted with `password` to `out`;
/// returns the address. Refuses to overwrite an existing file.
pub fn write_keystore(
    out: &Path,
    key: Option<Zeroizing<String>>,
    password: &Zeroizing<String>,
) -> Result<Address, SignerError> {
    let file_err = |reason: String| SignerError::File {
        path: out.display().to_string(),
        reason,
    };
    if out.exists() {
        return Err(file_err("already exists; not overwritten".into()));
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| file_err("needs a file name".into()))?;
    let secret = match key {
        Some(hex) => Zeroizing::new(
            alloy::hex::decode(hex.trim().trim_start_matches("0x"))
                .map_err(|_| SignerError::DevKey("not hex"))?,
        ),
        None => Zeroizing::new(PrivateKeySigner::random().to_bytes().to_vec()),
    };
    let mut rng = rand08::thread_rng();
    let (signer, _) = PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rng,
        &secret[..],
        password.as_bytes(),
        Some(name),
    )
    .map_err(|e| {
        file_err(format!(
            "cannot write keystore: {}",
            redact_io(&e.to_string())
        ))
    })?;
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| file_err(e.kind().to_string()))?;
    Ok(signer.address())
}

/// Keystore errors are I/O or crypto texts; keep only the first line, which never holds key
/// material (eth-keystore's messages name the failing step).
fn redact_io(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    #[tokio::test]
    async fn keystore_round_trip_and_debug_hides_the_key() {
        let dir = std::env::temp_dir().join(format!("pmm-signer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.json");
        let pw = Zeroizing::new("correct horse".to_owned());
        let addr = write_keystore(&path, Some(Zeroizing::new(DEV_KEY.into())), &pw).unwrap();
        assert!(
            write_keystore(&path, None, &pw).is_err(),
            "never overwrites"
        );
        let s = HubSigner::from_keystore(&path, pw).await.unwrap();
        assert_eq!(s.address(), addr);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains(&DEV_KEY[2..]) && !shown.to_lowercase().contains("59c6995e"),
            "{shown}"
        );
        let err = HubSigner::from_keystore(&path, Zeroizing::new("wrong".into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("wrong") || err.contains("wrong password"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn raw_keys_only_on_devnet() {
        assert!(HubSigner::from_dev_env(ChainPreset::Ethereum).is_err());
        let s = HubSigner::from_hex(DEV_KEY).unwrap();
        assert_eq!(
            s.address(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .unwrap()
        );
        let err = HubSigner::from_hex("0x1234zz").unwrap_err().to_string();
        assert!(!err.contains("1234zz"), "{err}");
    }
}
