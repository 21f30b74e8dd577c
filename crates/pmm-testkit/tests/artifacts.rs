//! The committed fixture artifacts (which the bindings are generated from) must match the
//! Solidity sources: recompile with the pinned solcjs and compare.

use std::process::Command;

#[test]
fn committed_artifacts_match_the_sources() {
    let script = pmm_testkit::anvil::repo_root().join("tests/fixtures/build.js");
    let out = Command::new("node")
        .arg(&script)
        .arg("--check")
        .output()
        .expect("node must be installed to check the fixture artifacts");
    assert!(
        out.status.success(),
        "{} --check failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
