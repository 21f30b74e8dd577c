//! DODO, ERC20 and Chainlink interfaces, written from the published function signatures.
//!
//! Return types wider on one pool type than another (`_K_` is uint256 on DVM, uint64 on DPP)
//! are declared as `uint256`: the ABI pads every static value to one 32-byte word, so one
//! declaration decodes both.
//!
//! The `#[sol(rpc)]` bindings generate one method per function with every argument as a
//! parameter (DPP's `reset` takes eight), hence the lint allowance.
#![allow(clippy::too_many_arguments)]

use alloy::sol;

sol! {
    /// Getters shared by every DODO V2 pool type (DVM, DSP, DPP*, GSP).
    #[sol(rpc)]
    interface IDODOV2Pool {
        function version() external pure returns (string memory);
        function getMidPrice() external view returns (uint256 midPrice);
        function getPMMStateForCall() external view returns (uint256 i, uint256 K, uint256 B, uint256 Q, uint256 B0, uint256 Q0, uint256 R);
        function getVaultReserve() external view returns (uint256 baseReserve, uint256 quoteReserve);
        function getUserFeeRate(address user) external view returns (uint256 lpFeeRate, uint256 mtFeeRate);
        function _BASE_TOKEN_() external view returns (address);
        function _QUOTE_TOKEN_() external view returns (address);
        function _MAINTAINER_() external view returns (address);
        function _MT_FEE_RATE_MODEL_() external view returns (address);
        function _BASE_RESERVE_() external view returns (uint256);
        function _QUOTE_RESERVE_() external view returns (uint256);
        function _LP_FEE_RATE_() external view returns (uint256);
        function _K_() external view returns (uint256);
        function _I_() external view returns (uint256);
    }

    /// The TWAP state of the pools with LP shares (DVM, DSP, GSP).
    #[sol(rpc)]
    interface IDODOV2Twap {
        function _IS_OPEN_TWAP_() external view returns (bool);
        function _BLOCK_TIMESTAMP_LAST_() external view returns (uint32);
    }

    /// Getters present on DSP, DPP* and GSP but not on DVM.
    #[sol(rpc)]
    interface IDODOV2Targets {
        function _BASE_TARGET_() external view returns (uint256);
        function _QUOTE_TARGET_() external view returns (uint256);
        function _RState_() external view returns (uint256);
    }

    /// DPPOracle: the guide price comes from an oracle contract.
    #[sol(rpc)]
    interface IDPPOracle {
        function _O_() external view returns (address);
        function _IS_ORACLE_ENABLED() external view returns (bool);
    }

    /// The price oracle a DPPOracle pool reads its guide price from.
    #[sol(rpc)]
    interface IDODOPriceOracle {
        function prices(address base) external view returns (uint256);
    }

    /// DVM quotes return two values.
    #[sol(rpc)]
    interface IDVMQuote {
        function querySellBase(address trader, uint256 payBaseAmount) external view returns (uint256 receiveQuoteAmount, uint256 mtFee);
        function querySellQuote(address trader, uint256 payQuoteAmount) external view returns (uint256 receiveBaseAmount, uint256 mtFee);
    }

    /// DSP, DPP* and GSP quotes return four values; the fourth is the adjusted target.
    #[sol(rpc)]
    interface IDSPQuote {
        function querySellBase(address trader, uint256 payBaseAmount) external view returns (uint256 receiveQuoteAmount, uint256 mtFee, uint8 newRState, uint256 newBaseTarget);
        function querySellQuote(address trader, uint256 payQuoteAmount) external view returns (uint256 receiveBaseAmount, uint256 mtFee, uint8 newRState, uint256 newQuoteTarget);
    }

    /// LP shares on DVM, DSP and GSP.
    #[sol(rpc)]
    interface IDODOV2Shares {
        function totalSupply() external view returns (uint256);
        function balanceOf(address owner) external view returns (uint256);
        function buyShares(address to) external returns (uint256 shares, uint256 baseInput, uint256 quoteInput);
        function sellShares(uint256 shareAmount, address to, uint256 baseMinAmount, uint256 quoteMinAmount, bytes calldata data, uint256 deadline) external returns (uint256 baseAmount, uint256 quoteAmount);
    }

    /// DPP liquidity: owner-only reset after transferring tokens in.
    #[sol(rpc)]
    interface IDPPAdmin {
        function reset(address assetTo, uint256 newLpFeeRate, uint256 newI, uint256 newK, uint256 baseOutAmount, uint256 quoteOutAmount, uint256 minBaseReserve, uint256 minQuoteReserve) external returns (bool);
    }

    /// The ERC20 subset the hub reads and moves.
    #[sol(rpc)]
    interface IERC20 {
        function symbol() external view returns (string memory);
        function decimals() external view returns (uint8);
        function totalSupply() external view returns (uint256);
        function balanceOf(address owner) external view returns (uint256);
        function transfer(address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
    }

    /// Chainlink AggregatorV3 feed.
    #[sol(rpc)]
    interface IChainlinkFeed {
        function decimals() external view returns (uint8);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    }

    /// DODO V1 (classic) pool getters.
    #[sol(rpc)]
    interface IDODOV1Pool {
        function version() external pure returns (uint256);
        function _BASE_TOKEN_() external view returns (address);
        function _QUOTE_TOKEN_() external view returns (address);
        function _ORACLE_() external view returns (address);
        function _BASE_BALANCE_() external view returns (uint256);
        function _QUOTE_BALANCE_() external view returns (uint256);
        function _TARGET_BASE_TOKEN_AMOUNT_() external view returns (uint256);
        function _TARGET_QUOTE_TOKEN_AMOUNT_() external view returns (uint256);
        function _K_() external view returns (uint256);
        function _LP_FEE_RATE_() external view returns (uint256);
        function _MT_FEE_RATE_() external view returns (uint256);
        function _R_STATUS_() external view returns (uint8);
        function getOraclePrice() external view returns (uint256);
        function getExpectedTarget() external view returns (uint256 baseTarget, uint256 quoteTarget);
        function getMidPrice() external view returns (uint256 midPrice);
        function querySellBaseToken(uint256 amount) external view returns (uint256 receiveQuote);
        function queryBuyBaseToken(uint256 amount) external view returns (uint256 payQuote);
    }
}
