//! [`Devnet`]: a private anvil chain with funded accounts and typed fixture deployment.

use std::path::PathBuf;
use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::{Ethereum, EthereumWallet};
use alloy::primitives::{Address, I256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use serde::Serialize;

use crate::anvil::{AnvilProcess, CHAIN_ID, DEV_ACCOUNTS, locate_anvil};
use crate::contracts::{
    ChainlinkFeed, DODOApprove, DODODspProxy, DODOV2Proxy02, DPP, DPPOracle, DVM, FeeRateModel,
    PMMProbe, PriceOracle, TestERC20, V1Pool,
};
use crate::error::{Result, TestkitError};
use crate::templates::{Template, TemplateCache};

/// 1.0 in the pools' 1e18 fixed point.
pub const ONE: u128 = 1_000_000_000_000_000_000;

/// Index of the dev account that deploys fixtures and owns private pools.
pub const DEPLOYER_INDEX: usize = 0;

/// Index of the dev account set as every pool's maintainer, so maintainer fees land on an
/// address no test trades from.
pub const MAINTAINER_INDEX: usize = 9;

/// How the anvil process is started.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Explicit anvil binary; `None` searches `$PMM_ANVIL`, PATH, then the repository's npm install.
    pub anvil: Option<PathBuf>,
    /// How long to wait for anvil to report its listening address.
    pub ready_timeout: Duration,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        Self {
            port: 0,
            anvil: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// One of anvil's ten funded dev accounts.
#[derive(Debug, Clone, Serialize)]
pub struct DevAccount {
    /// Account address.
    pub address: Address,
    /// The well-known anvil dev private key, 0x-prefixed hex (test funds only).
    pub private_key: String,
}

/// Parameters of a V2 fixture pool. Rates, `i` and `k` are 1e18 fixed point; `i` is quote per
/// base on raw units (1:1 between an 18-decimal base and a 6-decimal quote is `1e6`).
#[derive(Debug, Clone, Copy)]
pub struct PoolParams {
    /// Base token.
    pub base: Address,
    /// Quote token.
    pub quote: Address,
    /// LP fee rate.
    pub lp_fee_rate: U256,
    /// Maintainer fee rate, installed as the default of a fresh fee-rate model.
    pub mt_fee_rate: U256,
    /// Guide price, 0 < i <= 1e36.
    pub i: U256,
    /// Curve parameter, k <= 1e18.
    pub k: U256,
}

/// Parameters of a DVM (and DSP/GSP) deployment.
pub type DvmParams = PoolParams;
/// Parameters of a DPP (and DPP-Oracle) deployment.
pub type DppParams = PoolParams;

impl PoolParams {
    /// Fails closed on values the pool's init would reject, before any transaction is sent.
    fn validate(&self) -> Result<()> {
        let one = U256::from(ONE);
        if self.i.is_zero() || self.i > one * one {
            return Err(TestkitError::InvalidParam {
                field: "i",
                reason: "must be in (0, 1e36]",
            });
        }
        if self.k > one {
            return Err(TestkitError::InvalidParam {
                field: "k",
                reason: "must be <= 1e18",
            });
        }
        if self.lp_fee_rate > one {
            return Err(TestkitError::InvalidParam {
                field: "lp_fee_rate",
                reason: "must be <= 1e18",
            });
        }
        if self.base == self.quote {
            return Err(TestkitError::InvalidParam {
                field: "quote",
                reason: "must differ from base",
            });
        }
        Ok(())
    }
}

/// The pools most chain and hub tests read: WETH (18 decimals) / USDC (6 decimals) at 2000 USDC
/// per WETH, as a DVM, a DSP and a DPP, each holding 10 WETH and 20 000 USDC from the deployer.
/// Deployed by [`Devnet::deploy_weth_usdc_pools`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WethUsdcPools {
    /// The 18-decimal base token ("WETH").
    pub base: Address,
    /// The 6-decimal quote token ("USDC").
    pub quote: Address,
    /// DVM, LP shares held by the deployer.
    pub dvm: Address,
    /// DSP, LP shares held by the deployer.
    pub dsp: Address,
    /// DPP owned by the deployer.
    pub dpp: Address,
}

/// The deposit routers of a devnet: the project's fixtures with the external interfaces of
/// DODOApprove, DODOV2Proxy02 and DODODspProxy. Deployed by [`Devnet::deploy_routers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Routers {
    /// The spender both proxies pull through.
    pub dodo_approve: Address,
    /// `addDVMLiquidity`.
    pub v2_proxy: Address,
    /// `addDSPLiquidity`.
    pub dsp_proxy: Address,
}

/// A private anvil chain. Dropping it kills and reaps anvil.
#[derive(Debug)]
pub struct Devnet {
    anvil: AnvilProcess,
    rpc_url: String,
    accounts: Vec<DevAccount>,
    provider: DynProvider,
    pub(crate) templates: tokio::sync::Mutex<TemplateCache>,
}

impl Devnet {
    /// Starts anvil on an ephemeral port with default options.
    pub fn start() -> Result<Self> {
        Self::start_with(DevnetOptions::default())
    }

    /// Starts anvil as `options` say and builds a provider whose wallet holds all ten dev keys
    /// (account 0 signs by default; set `from` to sign as another).
    pub fn start_with(options: DevnetOptions) -> Result<Self> {
        let binary = match options.anvil {
            Some(p) => p,
            None => locate_anvil()?,
        };
        let anvil = AnvilProcess::spawn(&binary, options.port, options.ready_timeout)?;
        let rpc_url = format!("http://127.0.0.1:{}", anvil.port());
        let mut accounts = Vec::with_capacity(anvil.private_keys().len());
        let mut wallet: Option<EthereumWallet> = None;
        for key in anvil.private_keys() {
            let signer: PrivateKeySigner = key
                .parse()
                .map_err(|_| TestkitError::BadDevKey(short(key)))?;
            accounts.push(DevAccount {
                address: signer.address(),
                private_key: key.clone(),
            });
            match wallet.as_mut() {
                Some(w) => w.register_signer(signer),
                None => wallet = Some(EthereumWallet::new(signer)),
            }
        }
        // The deployer and maintainer roles index into the ten accounts anvil funds.
        let (Some(wallet), DEV_ACCOUNTS) = (wallet, accounts.len()) else {
            return Err(TestkitError::AnvilNotReady(format!(
                "expected {DEV_ACCOUNTS} dev keys, anvil printed {}",
                accounts.len()
            )));
        };
        let url = rpc_url
            .parse()
            .map_err(|_| TestkitError::BadUrl(rpc_url.clone()))?;
        let provider = ProviderBuilder::new()
            .wallet(wallet)
            .connect_http(url)
            .erased();
        Ok(Self {
            anvil,
            rpc_url,
            accounts,
            provider,
            templates: tokio::sync::Mutex::default(),
        })
    }

    /// HTTP JSON-RPC endpoint on 127.0.0.1.
    pub fn rpc_url(&self) -> &str {
        &self.rpc_url
    }

    /// Chain id (anvil's default, passed explicitly).
    pub fn chain_id(&self) -> u64 {
        CHAIN_ID
    }

    /// The ten funded dev accounts, in anvil's order.
    pub fn accounts(&self) -> &[DevAccount] {
        &self.accounts
    }

    /// Address of dev account `index`.
    pub fn account(&self, index: usize) -> Result<Address> {
        self.accounts
            .get(index)
            .map(|a| a.address)
            .ok_or(TestkitError::NoSuchAccount(index))
    }

    /// The account that deploys fixtures and owns private pools.
    pub fn deployer(&self) -> Address {
        self.accounts[DEPLOYER_INDEX].address
    }

    /// The account every fixture pool names as maintainer.
    pub fn maintainer(&self) -> Address {
        self.accounts[MAINTAINER_INDEX].address
    }

    /// A provider that signs with any dev account.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// OS process id of anvil.
    pub fn anvil_pid(&self) -> u32 {
        self.anvil.pid()
    }

    // ---- deployment -------------------------------------------------------------------------

    /// Deploys the deposit routers and registers both proxies with the approve contract.
    pub async fn deploy_routers(&self) -> Result<Routers> {
        let approve = deployed("DODOApprove", DODOApprove::deploy_builder(&self.provider)).await?;
        let v2_proxy = deployed(
            "DODOV2Proxy02",
            DODOV2Proxy02::deploy_builder(&self.provider, approve),
        )
        .await?;
        let dsp_proxy = deployed(
            "DODODspProxy",
            DODODspProxy::deploy_builder(&self.provider, approve),
        )
        .await?;
        let a = DODOApprove::new(approve, &self.provider);
        for proxy in [v2_proxy, dsp_proxy] {
            confirm("DODOApprove.addProxy", a.addProxy(proxy)).await?;
        }
        Ok(Routers {
            dodo_approve: approve,
            v2_proxy,
            dsp_proxy,
        })
    }

    /// Deploys a [`TestERC20`] named after its symbol.
    pub async fn deploy_token(&self, symbol: &str, decimals: u8) -> Result<Address> {
        let b = TestERC20::deploy_builder(
            &self.provider,
            format!("Test {symbol}"),
            symbol.to_string(),
            decimals,
        );
        deployed(&format!("TestERC20 {symbol}"), b).await
    }

    /// Deploys a [`FeeRateModel`] whose default maintainer fee rate is `default_rate`.
    pub async fn deploy_fee_model(&self, default_rate: U256) -> Result<Address> {
        let model = deployed("FeeRateModel", FeeRateModel::deploy_builder(&self.provider)).await?;
        if !default_rate.is_zero() {
            let m = FeeRateModel::new(model, &self.provider);
            confirm(
                "FeeRateModel.setDefaultFeeRate",
                m.setDefaultFeeRate(default_rate),
            )
            .await?;
        }
        Ok(model)
    }

    /// Deploys and initialises a DVM-like pool (2024 template) with its own fee-rate model.
    pub async fn deploy_dvm(&self, p: DvmParams) -> Result<Address> {
        self.deploy_shares_pool(Template::Dvm, &p, false).await
    }

    /// Deploys and initialises a DSP-like pool (2024 template) with its own fee-rate model.
    pub async fn deploy_dsp(&self, p: DvmParams) -> Result<Address> {
        self.deploy_shares_pool(Template::Dsp, &p, false).await
    }

    /// Deploys and initialises a GSP-like pool (DSP behaviour, "GSP 1.0.1").
    pub async fn deploy_gsp(&self, p: DvmParams) -> Result<Address> {
        self.deploy_shares_pool(Template::Gsp, &p, false).await
    }

    /// Deploys and initialises a pool with LP shares as a clone of `template` (DVM, DSP or
    /// GSP of either generation), with TWAP on when `twap`.
    pub async fn deploy_shares_pool(
        &self,
        template: Template,
        p: &PoolParams,
        twap: bool,
    ) -> Result<Address> {
        // DVM, DSP and GSP share `init`'s signature.
        self.deploy_pool(template, p, |model| {
            self.shares_pool_init::<DVM::initCall>(p, model, twap)
        })
        .await
    }

    /// Deploys and initialises an empty DPP-like pool owned by the deployer; fund it with
    /// [`Devnet::dpp_deposit`].
    pub async fn deploy_dpp(&self, p: DppParams) -> Result<Address> {
        self.deploy_pool(Template::Dpp, &p, |model| {
            self.private_pool_init::<DPP::initCall>(&p, model)
        })
        .await
    }

    /// Deploys a DPP-Oracle-like pool reading its guide price from `oracle` (a [`PriceOracle`]);
    /// `p.i` is the fallback used while the oracle is disabled.
    pub async fn deploy_dpp_oracle(&self, p: DppParams, oracle: Address) -> Result<Address> {
        let pool = self
            .deploy_pool(Template::DppOracle, &p, |model| {
                self.private_pool_init::<DPPOracle::initCall>(&p, model)
            })
            .await?;
        let c = DPPOracle::new(pool, &self.provider);
        confirm("DPPOracle.setOracle", c.setOracle(oracle, true)).await?;
        Ok(pool)
    }

    /// The one path every V2 fixture pool takes: validate `p` before any transaction, deploy a
    /// fresh fee-rate model for `p.mt_fee_rate`, clone the template (EIP-1167), then send the
    /// `init` call that `init` builds from the model's address.
    async fn deploy_pool<C>(
        &self,
        template: Template,
        p: &PoolParams,
        init: impl FnOnce(Address) -> C,
    ) -> Result<Address>
    where
        C: SolCall,
    {
        p.validate()?;
        let model = self.deploy_fee_model(p.mt_fee_rate).await?;
        let pool = self.clone_of(template).await?;
        let call = CallBuilder::new_raw(&self.provider, init(model).abi_encode().into()).to(pool);
        confirm(&format!("{}.init", template.name()), call).await?;
        Ok(pool)
    }

    /// `init` of the pools with LP shares (DVM, DSP, GSP): `(maintainer, base, quote, lpFeeRate,
    /// mtFeeRateModel, i, k, isOpenTWAP)`.
    fn shares_pool_init<C>(&self, p: &PoolParams, model: Address, twap: bool) -> C
    where
        C: From<(Address, Address, Address, U256, Address, U256, U256, bool)>,
    {
        C::from((
            self.maintainer(),
            p.base,
            p.quote,
            p.lp_fee_rate,
            model,
            p.i,
            p.k,
            twap,
        ))
    }

    /// `init` of the owner-managed pools (DPP, DPP-Oracle), owned by the deployer: `(owner,
    /// maintainer, base, quote, lpFeeRate, mtFeeRateModel, k, i, isOpenTWAP)`; note k before i.
    fn private_pool_init<C>(&self, p: &PoolParams, model: Address) -> C
    where
        C: From<(
            Address,
            Address,
            Address,
            Address,
            U256,
            Address,
            U256,
            U256,
            bool,
        )>,
    {
        C::from((
            self.deployer(),
            self.maintainer(),
            p.base,
            p.quote,
            p.lp_fee_rate,
            model,
            p.k,
            p.i,
            false,
        ))
    }

    /// Deploys [`WethUsdcPools`]: mints 1e30 raw units of both tokens to the deployer (who keeps
    /// the rest), deploys the three pools with a 0.1% LP fee, a 0.01% maintainer fee,
    /// i = 2000e6 (2000 USDC per WETH on raw units) and k = 0.1, then deposits 10 WETH and
    /// 20 000 USDC into each.
    pub async fn deploy_weth_usdc_pools(&self) -> Result<WethUsdcPools> {
        let base = self.deploy_token("WETH", 18).await?;
        let quote = self.deploy_token("USDC", 6).await?;
        let me = self.deployer();
        let big = U256::from(10u128.pow(30));
        self.mint(base, me, big).await?;
        self.mint(quote, me, big).await?;
        let p = PoolParams {
            base,
            quote,
            lp_fee_rate: U256::from(ONE / 1000),
            mt_fee_rate: U256::from(ONE / 10_000),
            i: U256::from(2_000_000_000u64),
            k: U256::from(ONE / 10),
        };
        let dvm = self.deploy_dvm(p).await?;
        let dsp = self.deploy_dsp(p).await?;
        let dpp = self.deploy_dpp(p).await?;
        let ten_eth = U256::from(10u128 * ONE);
        let usdc = U256::from(20_000_000_000u64);
        self.buy_shares(me, dvm, ten_eth, usdc).await?;
        self.buy_shares(me, dsp, ten_eth, usdc).await?;
        self.dpp_deposit(dpp, ten_eth, usdc).await?;
        Ok(WethUsdcPools {
            base,
            quote,
            dvm,
            dsp,
            dpp,
        })
    }

    /// Deploys a [`PriceOracle`] answering `price` (1e18 fixed point, quote per base on raw units).
    pub async fn deploy_price_oracle(&self, price: U256) -> Result<Address> {
        deployed(
            "PriceOracle",
            PriceOracle::deploy_builder(&self.provider, price),
        )
        .await
    }

    /// Deploys a Chainlink-style [`ChainlinkFeed`] with `decimals` and a first round at `answer`.
    pub async fn deploy_feed(&self, decimals: u8, answer: I256) -> Result<Address> {
        let b = ChainlinkFeed::deploy_builder(
            &self.provider,
            decimals,
            answer,
            "TEST / USD".to_string(),
        );
        deployed("ChainlinkFeed", b).await
    }

    /// Deploys the stateless [`PMMProbe`].
    pub async fn deploy_probe(&self) -> Result<Address> {
        deployed("PMMProbe", PMMProbe::deploy_builder(&self.provider)).await
    }

    /// Deploys a V1-like pool priced by `oracle` (needs `getPrice()`, e.g. a [`PriceOracle`]).
    pub async fn deploy_v1(
        &self,
        base: Address,
        quote: Address,
        oracle: Address,
        k: U256,
    ) -> Result<Address> {
        if k.is_zero() || k >= U256::from(ONE) {
            return Err(TestkitError::InvalidParam {
                field: "k",
                reason: "V1 needs 0 < k < 1e18",
            });
        }
        let lp = U256::from(ONE / 1000);
        let b = V1Pool::deploy_builder(&self.provider, base, quote, oracle, lp, U256::ZERO, k);
        deployed("V1Pool", b).await
    }

    // ---- token and pool actions ---------------------------------------------------------------

    /// Mints `amount` raw units of `token` to `to`.
    pub async fn mint(&self, token: Address, to: Address, amount: U256) -> Result<()> {
        let t = TestERC20::new(token, &self.provider);
        confirm("TestERC20.mint", t.mint(to, amount))
            .await
            .map(drop)
    }

    /// Transfers `amount` of `token` from dev account `from` to `to`.
    pub async fn transfer(
        &self,
        from: Address,
        token: Address,
        to: Address,
        amount: U256,
    ) -> Result<()> {
        let t = TestERC20::new(token, &self.provider);
        confirm("TestERC20.transfer", t.transfer(to, amount).from(from))
            .await
            .map(drop)
    }

    /// Approves `spender` for `amount` of `token` on behalf of dev account `owner`.
    pub async fn approve(
        &self,
        owner: Address,
        token: Address,
        spender: Address,
        amount: U256,
    ) -> Result<()> {
        let t = TestERC20::new(token, &self.provider);
        confirm("TestERC20.approve", t.approve(spender, amount).from(owner))
            .await
            .map(drop)
    }

    /// `token.balanceOf(owner)`.
    pub async fn balance_of(&self, token: Address, owner: Address) -> Result<U256> {
        let t = TestERC20::new(token, &self.provider);
        t.balanceOf(owner)
            .call()
            .await
            .map_err(|source| contract_err("TestERC20.balanceOf", source))
    }

    /// Sends `base_in` and `quote_in` from dev account `from` to a DVM/DSP/GSP pool and calls
    /// `buyShares(from)` as `from`. Works for all three: they share the buyShares ABI.
    pub async fn buy_shares(
        &self,
        from: Address,
        pool: Address,
        base_in: U256,
        quote_in: U256,
    ) -> Result<()> {
        let c = DVM::new(pool, &self.provider);
        let (base, quote) = self.pool_tokens(pool).await?;
        if !base_in.is_zero() {
            self.transfer(from, base, pool, base_in).await?;
        }
        if !quote_in.is_zero() {
            self.transfer(from, quote, pool, quote_in).await?;
        }
        confirm("buyShares", c.buyShares(from).from(from))
            .await
            .map(drop)
    }

    /// Sends `amount` base from dev account `from` into any V2 fixture pool and calls
    /// `sellBase(from)` as `from`. Returns the receipt for event checks.
    pub async fn sell_base(
        &self,
        from: Address,
        pool: Address,
        amount: U256,
    ) -> Result<TransactionReceipt> {
        let (base, _) = self.pool_tokens(pool).await?;
        self.transfer(from, base, pool, amount).await?;
        confirm(
            "sellBase",
            DVM::new(pool, &self.provider).sellBase(from).from(from),
        )
        .await
    }

    /// Sends `amount` quote from dev account `from` into any V2 fixture pool and calls
    /// `sellQuote(from)` as `from`.
    pub async fn sell_quote(
        &self,
        from: Address,
        pool: Address,
        amount: U256,
    ) -> Result<TransactionReceipt> {
        let (_, quote) = self.pool_tokens(pool).await?;
        self.transfer(from, quote, pool, amount).await?;
        confirm(
            "sellQuote",
            DVM::new(pool, &self.provider).sellQuote(from).from(from),
        )
        .await
    }

    /// Owner deposit into a DPP(-Oracle) pool: transfers both amounts from the deployer, then
    /// `reset` keeping the pool's current fee, i and k, so reserves and targets become balances.
    pub async fn dpp_deposit(&self, pool: Address, base_in: U256, quote_in: U256) -> Result<()> {
        let c = DPP::new(pool, &self.provider);
        let (base, quote) = self.pool_tokens(pool).await?;
        let owner = self.deployer();
        self.transfer(owner, base, pool, base_in).await?;
        self.transfer(owner, quote, pool, quote_in).await?;
        let lp = c
            ._LP_FEE_RATE_()
            .call()
            .await
            .map_err(|e| contract_err("DPP._LP_FEE_RATE_", e))?;
        let i = c
            ._I_()
            .call()
            .await
            .map_err(|e| contract_err("DPP._I_", e))?;
        let k = c
            ._K_()
            .call()
            .await
            .map_err(|e| contract_err("DPP._K_", e))?;
        let reset = c.reset(
            owner,
            U256::from(lp),
            U256::from(i),
            U256::from(k),
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
        );
        confirm("DPP.reset", reset).await.map(drop)
    }

    /// Latest block timestamp.
    pub async fn block_timestamp(&self) -> Result<u64> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|source| TestkitError::Rpc {
                what: "eth_getBlockByNumber".into(),
                source: Box::new(source),
            })?;
        block
            .map(|b| b.header.timestamp)
            .ok_or_else(|| TestkitError::AnvilNotReady("no latest block".into()))
    }

    async fn pool_tokens(&self, pool: Address) -> Result<(Address, Address)> {
        let c = DVM::new(pool, &self.provider);
        let base = c
            ._BASE_TOKEN_()
            .call()
            .await
            .map_err(|e| contract_err("_BASE_TOKEN_", e))?;
        let quote = c
            ._QUOTE_TOKEN_()
            .call()
            .await
            .map_err(|e| contract_err("_QUOTE_TOKEN_", e))?;
        Ok((base, quote))
    }
}

fn contract_err(what: &str, source: alloy::contract::Error) -> TestkitError {
    TestkitError::Contract {
        what: what.to_string(),
        source: Box::new(source),
    }
}

/// Sends a transaction through anvil's synchronous send and fails on a revert.
pub async fn confirm<P, D>(what: &str, call: CallBuilder<P, D>) -> Result<TransactionReceipt>
where
    P: Provider<Ethereum>,
    D: CallDecoder,
{
    let receipt = call
        .send_sync()
        .await
        .map_err(|source| contract_err(what, source))?;
    if !receipt.status() {
        return Err(TestkitError::Reverted {
            what: what.to_string(),
            tx_hash: receipt.transaction_hash,
        });
    }
    Ok(receipt)
}

pub(crate) async fn deployed<P, D>(what: &str, call: CallBuilder<P, D>) -> Result<Address>
where
    P: Provider<Ethereum>,
    D: CallDecoder,
{
    let receipt = confirm(&format!("deploy {what}"), call).await?;
    receipt
        .contract_address
        .ok_or_else(|| TestkitError::NoContractAddress(what.to_string()))
}

/// Enough of a key to recognise it in an error, never the whole secret.
fn short(key: &str) -> String {
    key.chars().take(6).collect::<String>() + "..."
}
