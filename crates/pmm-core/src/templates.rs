//! Which template generation a V2 pool runs, from the code it is a clone of.
//!
//! DODO deploys every V2 pool as an EIP-1167 minimal proxy of a template, and changed the DVM
//! and DSP templates in 2024 without changing `version()`. The template's address and its code
//! hash are the only facts that tell the generations apart, so a pool is priced only when its
//! template is in a table of known ones; anything else is refused rather than guessed.

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::math::Generation;
use crate::schema::PoolType;

/// The runtime code of an EIP-1167 minimal proxy, before and after the 20-byte implementation.
const EIP1167_PREFIX: [u8; 10] = [0x36, 0x3d, 0x3d, 0x37, 0x3d, 0x3d, 0x3d, 0x36, 0x3d, 0x73];
const EIP1167_SUFFIX: [u8; 15] = [
    0x5a, 0xf4, 0x3d, 0x82, 0x80, 0x3e, 0x90, 0x3d, 0x91, 0x60, 0x2b, 0x57, 0xfd, 0x5b, 0xf3,
];

/// The implementation an EIP-1167 minimal proxy delegates to, `None` for any other code.
pub fn eip1167_implementation(code: &[u8]) -> Option<Address> {
    let body = code.strip_prefix(&EIP1167_PREFIX)?;
    let address = body.strip_suffix(&EIP1167_SUFFIX)?;
    (address.len() == 20).then(|| Address::from_slice(address))
}

/// A template whose clones the hub prices: where it is deployed and what its code hashes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownTemplate {
    /// Deployed template address.
    pub address: Address,
    /// keccak256 of its runtime code.
    pub code_hash: B256,
    /// Pool family of its clones.
    pub pool_type: PoolType,
    /// Rules its clones run.
    pub generation: Generation,
}

/// What a pool's code says about its template, as the chain layer read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateCode {
    /// The pool's code is not an EIP-1167 minimal proxy.
    NotAClone,
    /// A clone of `address`, whose runtime code hashes to `code_hash` (`None`: no code there).
    Clone {
        /// The implementation address.
        address: Address,
        /// keccak256 of the implementation's runtime code.
        code_hash: Option<B256>,
    },
}

/// Why a pool's generation cannot be established.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerationError {
    /// The pool is not a minimal proxy, so no template names its code.
    #[error(
        "the pool's code is not an EIP-1167 clone of a template, so its generation (2021 or 2024 rules) is unknown"
    )]
    NotAClone,
    /// The template has no code.
    #[error("the pool is a clone of {0}, which has no code")]
    TemplateWithoutCode(Address),
    /// The template is not in the chain's table.
    #[error(
        "the pool is a clone of {address} (code hash {code_hash}), which is not a known {pool_type} template on {chain}: its generation (2021 or 2024 rules) is unknown"
    )]
    UnknownTemplate {
        /// Chain name.
        chain: String,
        /// Template address.
        address: Address,
        /// Its code hash.
        code_hash: B256,
        /// Family the pool was identified as.
        pool_type: PoolType,
    },
    /// The address is a known template but its code is not the one the table records.
    #[error(
        "the pool is a clone of {address}, whose code hash {found} differs from the known template's {expected}"
    )]
    CodeHashMismatch {
        /// Template address.
        address: Address,
        /// Hash the table records.
        expected: B256,
        /// Hash of the code found.
        found: B256,
    },
    /// The template is known, for another pool family.
    #[error("the pool is a clone of a {template} template, not a {pool_type} one")]
    FamilyMismatch {
        /// Family of the template.
        template: PoolType,
        /// Family the pool was identified as.
        pool_type: PoolType,
    },
    /// The allowlist pins another generation than the template's.
    #[error("generation pinned to {pinned}, but the pool's template runs the {found} rules")]
    PinMismatch {
        /// Pinned by the allowlist.
        pinned: Generation,
        /// The template's.
        found: Generation,
    },
}

/// The known templates of one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateTable {
    chain: String,
    templates: Vec<KnownTemplate>,
}

impl TemplateTable {
    /// The table of `chain` (named in refusals).
    pub fn new(chain: impl Into<String>, templates: Vec<KnownTemplate>) -> Self {
        Self {
            chain: chain.into(),
            templates,
        }
    }

    /// The templates it holds.
    pub fn templates(&self) -> &[KnownTemplate] {
        &self.templates
    }

    /// The generation of a `pool_type` pool whose code is `code`; `Ok(None)` for a V1 pool,
    /// which is no clone and has one set of rules.
    pub fn generation_of(
        &self,
        pool_type: PoolType,
        code: TemplateCode,
    ) -> Result<Option<Generation>, GenerationError> {
        if !pool_type.is_v2() {
            return Ok(None);
        }
        let TemplateCode::Clone { address, code_hash } = code else {
            return Err(GenerationError::NotAClone);
        };
        let code_hash = code_hash.ok_or(GenerationError::TemplateWithoutCode(address))?;
        let known = self
            .templates
            .iter()
            .find(|t| t.address == address)
            .ok_or_else(|| GenerationError::UnknownTemplate {
                chain: self.chain.clone(),
                address,
                code_hash,
                pool_type,
            })?;
        if known.code_hash != code_hash {
            return Err(GenerationError::CodeHashMismatch {
                address,
                expected: known.code_hash,
                found: code_hash,
            });
        }
        if known.pool_type != pool_type {
            return Err(GenerationError::FamilyMismatch {
                template: known.pool_type,
                pool_type,
            });
        }
        Ok(Some(known.generation))
    }
}

/// Refuses an identified generation that differs from the allowlist's pin (no pin: any).
pub fn check_pin(
    identified: Option<Generation>,
    pin: Option<Generation>,
) -> Result<(), GenerationError> {
    match (identified, pin) {
        (Some(found), Some(pinned)) if found != pinned => {
            Err(GenerationError::PinMismatch { pinned, found })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{address, b256};

    use super::*;

    const TEMPLATE: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
    const HASH: B256 = b256!("1111111111111111111111111111111111111111111111111111111111111111");
    const OTHER: B256 = b256!("2222222222222222222222222222222222222222222222222222222222222222");

    fn clone_code(implementation: Address) -> Vec<u8> {
        [
            &EIP1167_PREFIX[..],
            implementation.as_slice(),
            &EIP1167_SUFFIX[..],
        ]
        .concat()
    }

    fn table() -> TemplateTable {
        TemplateTable::new(
            "devnet",
            vec![KnownTemplate {
                address: TEMPLATE,
                code_hash: HASH,
                pool_type: PoolType::Dvm,
                generation: Generation::V2021,
            }],
        )
    }

    fn clone_of(code_hash: Option<B256>) -> TemplateCode {
        TemplateCode::Clone {
            address: TEMPLATE,
            code_hash,
        }
    }

    #[test]
    fn reads_the_implementation_of_a_minimal_proxy_only() {
        let code = clone_code(TEMPLATE);
        assert_eq!(code.len(), 45);
        assert_eq!(eip1167_implementation(&code), Some(TEMPLATE));
        assert_eq!(eip1167_implementation(&code[..44]), None);
        let mut tampered = code.clone();
        tampered[44] = 0x00;
        assert_eq!(eip1167_implementation(&tampered), None);
        assert_eq!(eip1167_implementation(&[]), None);
        assert_eq!(eip1167_implementation(&[0x60, 0x80, 0x60, 0x40]), None);
    }

    #[test]
    fn a_known_template_names_the_generation() {
        assert_eq!(
            table().generation_of(PoolType::Dvm, clone_of(Some(HASH))),
            Ok(Some(Generation::V2021))
        );
        assert_eq!(
            table().generation_of(PoolType::V1, TemplateCode::NotAClone),
            Ok(None)
        );
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let t = table();
        assert_eq!(
            t.generation_of(PoolType::Dvm, TemplateCode::NotAClone),
            Err(GenerationError::NotAClone)
        );
        assert_eq!(
            t.generation_of(PoolType::Dvm, clone_of(None)),
            Err(GenerationError::TemplateWithoutCode(TEMPLATE))
        );
        assert_eq!(
            t.generation_of(PoolType::Dvm, clone_of(Some(OTHER))),
            Err(GenerationError::CodeHashMismatch {
                address: TEMPLATE,
                expected: HASH,
                found: OTHER,
            })
        );
        assert_eq!(
            t.generation_of(PoolType::Dsp, clone_of(Some(HASH))),
            Err(GenerationError::FamilyMismatch {
                template: PoolType::Dvm,
                pool_type: PoolType::Dsp,
            })
        );
        let empty = TemplateTable::new("ethereum", Vec::new());
        let err = empty
            .generation_of(PoolType::Dsp, clone_of(Some(HASH)))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("not a known dsp template on ethereum"),
            "{err}"
        );
    }

    #[test]
    fn a_pin_must_agree() {
        let (old, new) = (Generation::V2021, Generation::V2024);
        assert_eq!(check_pin(Some(old), None), Ok(()));
        assert_eq!(check_pin(Some(old), Some(old)), Ok(()));
        assert_eq!(
            check_pin(Some(old), Some(new)),
            Err(GenerationError::PinMismatch {
                pinned: new,
                found: old,
            })
        );
    }
}
