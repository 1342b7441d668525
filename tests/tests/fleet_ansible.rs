//! The fleet through Ansible (deploy/ansible/): `tpm-setup/fleet-demo.sh 4
//! --tamper` enrols four swtpm hosts, runs transfer.yml in its two halves
//! with one host's evidence replaced by another TPM's in between (that host
//! gets no package and the summary names it; the others get the key), runs
//! it again to deliver to that host, a third time to change nothing, then
//! receipts.yml, and each host signs with the key for OpenSSL to check.

use byok_tests::workspace_root;
use std::process::Command;
use tempfile::TempDir;

#[test]
fn four_hosts_one_tampered_then_nothing_left_to_change() {
    let work = TempDir::new().unwrap();
    let out = Command::new(workspace_root().join("tpm-setup/fleet-demo.sh"))
        .args(["4", "--tamper", "--work"])
        .arg(work.path())
        // The test build's binaries (built before the tests run).
        .env("BYOK_PROFILE", "dev")
        .output()
        .expect("run tpm-setup/fleet-demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fleet-demo.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "\"msg\": \"3 wrapped, 2 failed; host-1 (host-4.evidence): evidence's nonce field is not the operator's nonce; host-4: no evidence from host",
        "world eu: this run delivered the key to host-1, host-2, host-3 (receipts checked); not to host-4",
        "\"msg\": \"1 wrapped, 0 failed\"",
        "changed=0 on every host",
        "world eu: the key is held by host-1, host-2, host-3, host-4; not by any other enrolled host",
        "host-1: Verified OK",
        "host-4: Verified OK",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let deliver = std::fs::read_to_string(work.path().join("deliver.log")).unwrap();
    assert!(
        deliver.contains("fatal: [host-4]: FAILED! => {\"changed\": false, \"msg\": \"no package for host-4; host-4.evidence (the EK of host-1)"),
        "{deliver}"
    );
    // Only the tampered host failed.
    assert!(deliver.contains("failed=1"), "{deliver}");
    assert_eq!(deliver.matches("failed=1").count(), 1, "{deliver}");
}
