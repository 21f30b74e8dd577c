//! The devnet's pool templates: every V2 fixture pool is an EIP-1167 minimal proxy (clone) of a
//! template deployed once per devnet, as DODO's factories deploy pools. A pool's code therefore
//! names its template, and the template's code tells its generation.

use std::collections::HashMap;

use alloy::contract::CallBuilder;
use alloy::primitives::{Address, B256, Bytes, keccak256};
use alloy::sol_types::SolEvent;
use pmm_core::math::Generation;
use pmm_core::schema::PoolType;
use serde::Serialize;

use crate::contracts::{CloneFactory, DPP, DPPOracle, DSP, DSP2021, DVM, DVM2021, GSP};
use crate::devnet::{Devnet, confirm, deployed};
use crate::error::{Result, TestkitError};

/// A fixture template a V2 pool is cloned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Template {
    /// DVM, 2024 rules.
    Dvm,
    /// DSP, 2024 rules.
    Dsp,
    /// DVM, 2021 rules (same version string).
    Dvm2021,
    /// DSP, 2021 rules (same version string).
    Dsp2021,
    /// GSP look-alike.
    Gsp,
    /// DPP.
    Dpp,
    /// DPP Oracle.
    DppOracle,
}

impl Template {
    /// Every template, in deployment order.
    pub const ALL: [Template; 7] = [
        Self::Dvm,
        Self::Dsp,
        Self::Dvm2021,
        Self::Dsp2021,
        Self::Gsp,
        Self::Dpp,
        Self::DppOracle,
    ];

    /// The fixture contract's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dvm => "DVM",
            Self::Dsp => "DSP",
            Self::Dvm2021 => "DVM2021",
            Self::Dsp2021 => "DSP2021",
            Self::Gsp => "GSP",
            Self::Dpp => "DPP",
            Self::DppOracle => "DPPOracle",
        }
    }

    /// The pool family its clones belong to.
    pub fn pool_type(self) -> PoolType {
        match self {
            Self::Dvm | Self::Dvm2021 => PoolType::Dvm,
            Self::Dsp | Self::Dsp2021 => PoolType::Dsp,
            Self::Gsp => PoolType::Gsp,
            Self::Dpp => PoolType::Dpp,
            Self::DppOracle => PoolType::DppOracle,
        }
    }

    /// The rules its clones run (every fixture template not marked 2021 follows 2024).
    pub fn generation(self) -> Generation {
        match self {
            Self::Dvm2021 | Self::Dsp2021 => Generation::V2021,
            _ => Generation::V2024,
        }
    }

    fn creation_code(self) -> Bytes {
        match self {
            Self::Dvm => DVM::BYTECODE.clone(),
            Self::Dsp => DSP::BYTECODE.clone(),
            Self::Dvm2021 => DVM2021::BYTECODE.clone(),
            Self::Dsp2021 => DSP2021::BYTECODE.clone(),
            Self::Gsp => GSP::BYTECODE.clone(),
            Self::Dpp => DPP::BYTECODE.clone(),
            Self::DppOracle => DPPOracle::BYTECODE.clone(),
        }
    }

    /// keccak256 of the template's runtime code, as `eth_getCode` of its address hashes.
    pub fn code_hash(self) -> B256 {
        let code = match self {
            Self::Dvm => &DVM::DEPLOYED_BYTECODE,
            Self::Dsp => &DSP::DEPLOYED_BYTECODE,
            Self::Dvm2021 => &DVM2021::DEPLOYED_BYTECODE,
            Self::Dsp2021 => &DSP2021::DEPLOYED_BYTECODE,
            Self::Gsp => &GSP::DEPLOYED_BYTECODE,
            Self::Dpp => &DPP::DEPLOYED_BYTECODE,
            Self::DppOracle => &DPPOracle::DEPLOYED_BYTECODE,
        };
        keccak256(code)
    }
}

/// One deployed template, as the devnet file lists it for the hub's template table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeployedTemplate {
    /// Which fixture.
    pub template: Template,
    /// Its address.
    pub address: Address,
    /// keccak256 of its runtime code.
    pub code_hash: B256,
    /// Pool family of its clones.
    pub pool_type: PoolType,
    /// Rules its clones run.
    pub generation: Generation,
}

/// Templates and the clone factory, deployed on first use.
#[derive(Debug, Default)]
pub(crate) struct TemplateCache {
    factory: Option<Address>,
    templates: HashMap<Template, Address>,
}

impl Devnet {
    /// The clone factory, deployed on first use.
    pub async fn clone_factory(&self) -> Result<Address> {
        let mut cache = self.templates.lock().await;
        if let Some(f) = cache.factory {
            return Ok(f);
        }
        let f = deployed(
            "CloneFactory",
            CloneFactory::deploy_builder(self.provider()),
        )
        .await?;
        cache.factory = Some(f);
        Ok(f)
    }

    /// The address of `template`, deployed on first use.
    pub async fn template(&self, template: Template) -> Result<Address> {
        let mut cache = self.templates.lock().await;
        if let Some(a) = cache.templates.get(&template) {
            return Ok(*a);
        }
        let deploy = CallBuilder::new_raw_deploy(self.provider(), template.creation_code());
        let address = deployed(template.name(), deploy).await?;
        cache.templates.insert(template, address);
        Ok(address)
    }

    /// Every template deployed so far.
    pub async fn deployed_templates(&self) -> Vec<DeployedTemplate> {
        let cache = self.templates.lock().await;
        Template::ALL
            .iter()
            .filter_map(|t| {
                cache.templates.get(t).map(|a| DeployedTemplate {
                    template: *t,
                    address: *a,
                    code_hash: t.code_hash(),
                    pool_type: t.pool_type(),
                    generation: t.generation(),
                })
            })
            .collect()
    }

    /// Every template, deploying those not deployed yet: the full table a hub needs to price
    /// any pool a test deploys later.
    pub async fn all_templates(&self) -> Result<Vec<DeployedTemplate>> {
        for t in Template::ALL {
            self.template(t).await?;
        }
        Ok(self.deployed_templates().await)
    }

    /// A fresh, uninitialised EIP-1167 clone of `template`.
    pub async fn clone_of(&self, template: Template) -> Result<Address> {
        let implementation = self.template(template).await?;
        let factory = CloneFactory::new(self.clone_factory().await?, self.provider());
        let what = format!("clone {}", template.name());
        let receipt = confirm(&what, factory.clone(implementation)).await?;
        receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| CloneFactory::Cloned::decode_log_data(log.data()).ok())
            .map(|event| event.clone)
            .ok_or(TestkitError::NoContractAddress(what))
    }
}
