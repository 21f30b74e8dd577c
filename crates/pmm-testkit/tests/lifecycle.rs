//! anvil starts, answers, and is gone after the Devnet is dropped (panics included).

use std::path::Path;

use alloy::primitives::{U256, address};
use alloy::providers::Provider;
use pmm_testkit::Devnet;

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn anvil_starts_answers_and_stops() {
    let devnet = Devnet::start().expect("devnet starts");
    let pid = devnet.anvil_pid();
    assert!(process_exists(pid));
    assert!(devnet.rpc_url().starts_with("http://127.0.0.1:"));

    let chain_id = devnet.provider().get_chain_id().await.expect("chain id");
    assert_eq!(chain_id, 31337);
    assert_eq!(devnet.chain_id(), chain_id);

    assert_eq!(devnet.accounts().len(), 10);
    // anvil's first well-known dev account, derived here from the key it printed.
    assert_eq!(
        devnet.accounts()[0].address,
        address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    );
    assert_eq!(
        devnet.accounts()[0].private_key,
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    );
    let balance = devnet
        .provider()
        .get_balance(devnet.accounts()[9].address)
        .await
        .expect("balance");
    assert_eq!(
        balance,
        U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64))
    );

    drop(devnet);
    assert!(!process_exists(pid), "anvil {pid} still running after drop");
}

#[test]
fn anvil_is_stopped_when_the_owner_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let devnet = Devnet::start().expect("devnet starts");
        tx.send(devnet.anvil_pid()).expect("send pid");
        panic!("simulated test failure while the devnet is alive");
    })
    .join();
    assert!(joined.is_err(), "the thread panicked");
    let pid = rx.recv().expect("pid was sent");
    assert!(!process_exists(pid), "anvil {pid} survived the panic");
}

#[test]
fn a_missing_anvil_binary_is_a_typed_error() {
    let options = pmm_testkit::DevnetOptions {
        anvil: Some("/nonexistent/anvil".into()),
        ..Default::default()
    };
    let err = Devnet::start_with(options).expect_err("cannot start");
    assert!(
        matches!(err, pmm_testkit::TestkitError::AnvilSpawn { .. }),
        "{err}"
    );
}
