//! Read tools: `dodo.get_pool_state`, `dodo.identify_pool_interface`, `dodo.quote_add_liquidity`,
//! and the one pool read every tool goes through.

use std::sync::Arc;

use alloy::primitives::{Address, U256};
use pmm_chain::{InterfaceReport, PoolRead, PoolType, ReadSpec};
use pmm_core::config::PoolEntry;
use pmm_core::math::{self, LiquidityState, ONE, PmmState};
use pmm_core::policy::balanced_deposit;
use pmm_core::schema::{Amount, OracleKind, PoolState, normalize};
use pmm_core::templates::check_pin;

use super::{AddLiquidityQuote, PoolParams, QuoteAddParams, parse_address};
use crate::error::ToolError;
use crate::hub::{Hub, PoolIdentity};

impl Hub {
    /// `dodo.get_pool_state`: one batched read, normalized.
    pub async fn get_pool_state(&self, p: &PoolParams) -> Result<PoolState, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        let head = self.current_head().await?;
        Ok(self.read_state_at(pool, head.number).await?.1)
    }

    /// `dodo.identify_pool_interface`: the probed interface plus the generation the chain's
    /// template table names (a note says why, when it names none).
    pub async fn identify(&self, p: &PoolParams) -> Result<InterfaceReport, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        let mut report = self.inner.chain.identify_pool_interface(pool).await?;
        if let Some(kind) = report.detected_profile.kind() {
            match self
                .inner
                .templates
                .generation_of(kind, report.template_code())
            {
                Ok(generation) => report.generation = generation,
                Err(e) => report.notes.push(format!("generation: {e}")),
            }
        }
        Ok(report)
    }

    /// `dodo.quote_add_liquidity`: exact `buyShares` outcome of depositing the amounts.
    pub async fn quote_add_liquidity(
        &self,
        p: &QuoteAddParams,
    ) -> Result<AddLiquidityQuote, ToolError> {
        let pool = parse_address("pool", &p.pool)?;
        if p.base_amount.is_zero() {
            return Err(ToolError::InvalidParams(
                "base_amount: must be greater than 0 (buyShares needs base input)".into(),
            ));
        }
        let head = self.current_head().await?;
        let (read, _, _) = self.read_state_at(pool, head.number).await?;
        let generation = self.generation_of(&read)?;
        let (kind, liq) = liquidity_of(&read)?;
        let base_balance = add(read.base_balance, p.base_amount.0, "base_amount")?;
        let quote_balance = add(read.quote_balance, p.quote_amount.0, "quote_amount")?;
        let bs = math::buy_shares(kind, generation, &liq, base_balance, quote_balance)?;
        let after = state_after(
            kind,
            &pmm_of(&read)?,
            base_balance,
            quote_balance,
            bs.targets.map(|t| (t.base, t.quote)),
        );
        twap_check(&read, generation, &after)?;
        let mid = math::mid_price(generation, &after).ok();
        let (balanced_base, balanced_quote) = balanced_deposit(
            liq.base_reserve,
            liq.quote_reserve,
            p.base_amount.0,
            p.quote_amount.0,
        );
        Ok(AddLiquidityQuote {
            pool,
            balanced_base_amount: Amount(balanced_base),
            balanced_quote_amount: Amount(balanced_quote),
            block_number: read.block.number,
            shares: Amount(bs.received),
            minted: Amount(bs.minted),
            base_taken: Amount(bs.base_input.saturating_sub(bs.donated_base)),
            quote_taken: Amount(bs.quote_input.saturating_sub(bs.donated_quote)),
            base_donated: Amount(bs.donated_base),
            quote_donated: Amount(bs.donated_quote),
            base_input: Amount(bs.base_input),
            quote_input: Amount(bs.quote_input),
            new_total_supply: Amount(bs.new_total_supply),
            resulting_inventory_ratio: mid
                .and_then(|m| inventory_ratio(base_balance, quote_balance, m)),
            resulting_mid_price_raw: mid.map(Amount),
        })
    }

    /// Family and generation: established at start for allowlisted pools, else probed once
    /// and remembered. A V2 pool whose template the chain's table does not know, or whose
    /// template runs another generation than its allowlist entry pins, is refused.
    pub(crate) async fn pool_identity(
        &self,
        pool: Address,
    ) -> Result<(PoolIdentity, Option<&PoolEntry>), ToolError> {
        let entry = self.inner.allowlist.pool(pool);
        if let Some(id) = self.cached_identity(pool) {
            return Ok((id, entry));
        }
        let report = self.inner.chain.identify_pool_interface(pool).await?;
        let kind = match entry {
            Some(e) => e.pool_type,
            None => report.detected_profile.kind().ok_or_else(|| {
                ToolError::Unsupported(format!(
                    "{pool} is not a recognised DODO pool: {}",
                    report.notes.join("; ")
                ))
            })?,
        };
        let generation = self
            .inner
            .templates
            .generation_of(kind, report.template_code())
            .and_then(|g| check_pin(g, entry.and_then(|e| e.generation)).map(|()| g))
            .map_err(|e| ToolError::Unsupported(format!("{pool}: {e}")))?;
        let id = PoolIdentity { kind, generation };
        if let Ok(mut m) = self.inner.identities.lock() {
            m.insert(pool, id);
        }
        Ok((id, entry))
    }

    fn cached_identity(&self, pool: Address) -> Option<PoolIdentity> {
        self.inner
            .identities
            .lock()
            .ok()
            .and_then(|m| m.get(&pool).copied())
    }

    /// The template generation whose rules price a pool already read.
    pub(crate) fn generation_of(&self, read: &PoolRead) -> Result<math::Generation, ToolError> {
        self.cached_identity(read.pool)
            .and_then(|id| id.generation)
            .ok_or_else(|| {
                ToolError::Unsupported(format!(
                    "{}: {} pools have no template generation for the V2 math",
                    read.pool, read.kind
                ))
            })
    }

    /// One batched read at the latest block, checked against the allowlist and normalized.
    pub async fn read_state(
        &self,
        pool: Address,
    ) -> Result<(Arc<PoolRead>, PoolState, Option<&PoolEntry>), ToolError> {
        let number = self.inner.chain.block_number().await?;
        self.read_state_at(pool, number).await
    }

    /// [`Hub::read_state`] at block `number`: the pool monitor's sweep of that block has
    /// cached it, so a tool call in the same block reads no pool state over RPC.
    pub async fn read_state_at(
        &self,
        pool: Address,
        number: u64,
    ) -> Result<(Arc<PoolRead>, PoolState, Option<&PoolEntry>), ToolError> {
        let (read, state, entry) = self.read_unchecked_at(pool, number).await?;
        if let Some(e) = entry {
            read.check_entry(e)?;
        }
        Ok((read, state, entry))
    }

    /// [`Hub::read_state_at`] without refusing a pool that differs from its allowlist entry:
    /// the policy's `allowlist` rule judges that itself and denies under its name.
    pub(crate) async fn read_unchecked_at(
        &self,
        pool: Address,
        number: u64,
    ) -> Result<(Arc<PoolRead>, PoolState, Option<&PoolEntry>), ToolError> {
        let (id, entry) = self.pool_identity(pool).await?;
        let spec = self.read_spec(pool, id.kind, entry);
        let read = self.inner.chain.read_pool_at(&spec, number).await?;
        let profile = entry.map_or_else(|| format!("detected:{}", id.kind), |e| e.profile.clone());
        let raw = read.to_raw(
            self.inner.chain_name.clone(),
            &profile,
            id.generation,
            entry.map(|e| &e.oracle),
        )?;
        let state = normalize(raw)?;
        Ok((read, state, entry))
    }
}

impl Hub {
    /// What a read of `pool` asks for; the monitor's batched reads and the tools' reads use
    /// the same spec, so they share cache entries.
    pub(crate) fn read_spec(
        &self,
        pool: Address,
        kind: PoolType,
        entry: Option<&PoolEntry>,
    ) -> ReadSpec {
        let feed = entry.and_then(|e| match e.oracle.kind {
            OracleKind::Chainlink => e.oracle.address,
            _ => None,
        });
        ReadSpec {
            pool,
            kind,
            feed,
            fee_trader: self.fee_trader(),
        }
    }
}

pub(crate) fn add(a: U256, b: U256, field: &str) -> Result<U256, ToolError> {
    a.checked_add(b).ok_or_else(|| {
        ToolError::InvalidParams(format!("{field}: pool balance plus amount exceeds 2^256-1"))
    })
}

/// Share math inputs of a pool with LP shares.
pub(crate) fn liquidity_of(read: &PoolRead) -> Result<(math::PoolKind, LiquidityState), ToolError> {
    let kind = match read.kind {
        PoolType::Dvm => math::PoolKind::Dvm,
        PoolType::Dsp | PoolType::Gsp => math::PoolKind::Dsp,
        other => {
            return Err(ToolError::Unsupported(format!(
                "{other} pools have no LP shares: liquidity is owner-managed (reset)"
            )));
        }
    };
    let (base_reserve, quote_reserve) = read
        .vault_reserve
        .ok_or_else(|| ToolError::Unsupported("no vault reserve".into()))?;
    let (b0, q0) = read.stored_targets.unwrap_or_default();
    Ok((
        kind,
        LiquidityState {
            total_supply: read.total_shares.unwrap_or_default(),
            base_reserve,
            quote_reserve,
            i: read.stored_i.unwrap_or_default(),
            b0,
            q0,
        },
    ))
}

/// The pool's V2 PMM state; a pool without one, or with an R state outside 0..=2, is a pool
/// these tools do not handle.
pub(crate) fn pmm_of(read: &PoolRead) -> Result<PmmState, ToolError> {
    read.pmm
        .ok_or_else(|| ToolError::Unsupported("pool has no V2 PMM state".into()))?
        .to_pmm_state(read.pool)
        .map_err(|e| ToolError::Unsupported(e.to_string()))
}

/// The mid price once a deposit leaves the pool holding `base` and `quote`, `None` where the
/// math defines none.
pub(crate) fn mid_after_deposit(
    kind: math::PoolKind,
    generation: math::Generation,
    before: &PmmState,
    base: U256,
    quote: U256,
    targets: Option<(U256, U256)>,
) -> Option<U256> {
    math::mid_price(generation, &state_after(kind, before, base, quote, targets)).ok()
}

/// The PMM state a share mint or burn leaves the pool holding `base` and `quote` in: reserves
/// become the balances; a DVM re-derives its targets, a DSP stores the new ones the share
/// math computed.
pub(crate) fn state_after(
    kind: math::PoolKind,
    before: &PmmState,
    base: U256,
    quote: U256,
    targets: Option<(U256, U256)>,
) -> PmmState {
    match (kind, targets) {
        (math::PoolKind::Dvm, _) => PmmState::dvm(before.i, before.k, base, quote),
        (math::PoolKind::Dsp, Some((b0, q0))) => PmmState {
            b: base,
            q: quote,
            b0,
            q0,
            ..*before
        },
        (math::PoolKind::Dsp, None) => PmmState {
            b: base,
            q: quote,
            ..*before
        },
    }
}

/// The check a pool with TWAP on runs inside the write that leaves it in `after`: the
/// state's mid price, times the seconds since its last update, must compute, or the write
/// reverts with that error. The write lands in a block no earlier than the one read, so at
/// least one second is counted: a later block only adds time, and refusing a write that the
/// read's own second would let through is the safe side.
pub(crate) fn twap_check(
    read: &PoolRead,
    generation: math::Generation,
    after: &PmmState,
) -> Result<(), math::MathError> {
    let Some(last) = read.twap_last_update else {
        return Ok(());
    };
    // The pool keeps `uint32(block.timestamp)`: compare in the same wrapping arithmetic.
    let now = u32::try_from(read.block.timestamp & u64::from(u32::MAX)).unwrap_or(u32::MAX);
    let elapsed = now.wrapping_sub(last).max(1);
    math::twap_update(generation, after, elapsed).map(drop)
}

/// base value / (base value + quote), base valued at `mid` (1e18 on raw units).
pub(crate) fn inventory_ratio(base: U256, quote: U256, mid: U256) -> Option<f64> {
    let base_value = base.checked_mul(mid)? / ONE;
    let total = base_value.checked_add(quote)?;
    if total.is_zero() {
        return None;
    }
    Some(f64::from(base_value) / f64::from(total))
}
