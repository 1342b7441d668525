//! PCR-bound KEKs built with a real TPM: they verify only with the PCR values
//! their policy was made from, the policy's requirements, and no userWithAuth.

#[path = "support/forged_tpm.rs"]
mod forged_tpm;

use byok_protocol::hash::HashAlg;
use byok_protocol::tpm::attr;
use byok_verifier::error::VerifyError;
use byok_verifier::policy::KekPcrRequirement;
use byok_verifier::verify::verify_evidence;
use forged_tpm::*;
use tss_esapi::interface_types::resource_handles::Hierarchy;

// Long on purpose: one swtpm per test costs seconds, so the checks that share a host share a test, in order.
#[test]
fn pcr_bound_keks_verify_only_with_the_values_their_policy_was_made_from() {
    let s = setup();
    let values = vec![vec![0u8; 32], vec![0x23u8; 32]];
    let mut ev = with_tpm_kek(
        &s,
        Hierarchy::Owner,
        &pcr_bound_kek(STORAGE & !attr::USER_WITH_AUTH, &values),
    )
    .unwrap();
    // Without the values the authPolicy binds no world we can recognise.
    let r = verify(&s, &ev);
    assert!(
        matches!(r, Err(VerifyError::KekWorldMismatch { .. })),
        "{r:?}"
    );
    ev.kek.pcr_binding = Some(binding(&values));
    let v = verify_evidence(&ev, &s.store, &s.opts).expect("PCR-bound KEK verifies");
    let b = v.kek_pcr_binding.expect("binding reported");
    assert_eq!(b.pcrs.describe(), "sha256:16,23");
    assert_eq!(b.values, values);

    // Each reported value is checked through the signed authPolicy.
    for (i, byte) in [(0usize, 0usize), (1, 31)] {
        let mut other = values.clone();
        other[i][byte] ^= 1;
        let mut forged = ev.clone();
        forged.kek.pcr_binding = Some(binding(&other));
        let r = verify(&s, &forged);
        assert!(
            matches!(r, Err(VerifyError::KekWorldMismatch { .. })),
            "{r:?}"
        );
    }
    // Malformed bindings: two banks; a wrong value size.
    let mut forged = ev.clone();
    let mut two = binding(&values);
    two.insert(HashAlg::Sha1, Default::default());
    forged.kek.pcr_binding = Some(two);
    assert!(matches!(
        verify(&s, &forged),
        Err(VerifyError::KekPcrBindingMalformed(_))
    ));
    let mut forged = ev.clone();
    forged.kek.pcr_binding = Some(binding(&[vec![0u8; 32], vec![0u8; 20]]));
    assert!(matches!(
        verify(&s, &forged),
        Err(VerifyError::KekPcrBindingMalformed(_))
    ));

    // PCR indices beyond 23, and an empty bank.
    let mut forged = ev.clone();
    let mut high = binding(&values);
    let v = high.get_mut(&HashAlg::Sha256).unwrap().remove(&23).unwrap();
    high.get_mut(&HashAlg::Sha256).unwrap().insert(24, v);
    forged.kek.pcr_binding = Some(high);
    assert!(matches!(
        verify(&s, &forged),
        Err(VerifyError::KekPcrBindingMalformed(_))
    ));
    let mut forged = ev.clone();
    forged.kek.pcr_binding = Some(
        [(HashAlg::Sha256, Default::default())]
            .into_iter()
            .collect(),
    );
    assert!(matches!(
        verify(&s, &forged),
        Err(VerifyError::KekPcrBindingMalformed(_))
    ));

    // The policy's reference values fix the bound values.
    let mut opts = s.opts.clone();
    opts.policy.reference_pcrs.insert(
        HashAlg::Sha256,
        [(23u32, vec![0x24u8; 32])].into_iter().collect(),
    );
    let r = verify_evidence(&ev, &s.store, &opts).map(|_| ());
    assert!(
        matches!(
            &r,
            Err(VerifyError::KekPcrBindingMismatch { index: 23, .. })
        ),
        "{r:?}"
    );
    // A policy that requires a PCR-bound KEK refuses the plain one, and one
    // bound only to PCRs software can reset (16 and 23), even with reference
    // values for both.
    let mut opts = s.opts.clone();
    opts.policy.require_kek_pcrs = KekPcrRequirement::Any;
    let r = verify_evidence(&s.ev, &s.store, &opts).map(|_| ());
    assert!(matches!(r, Err(VerifyError::KekNotPcrBound)), "{r:?}");
    opts.policy.reference_pcrs.insert(
        HashAlg::Sha256,
        [(16u32, values[0].clone()), (23, values[1].clone())]
            .into_iter()
            .collect(),
    );
    let r = verify_evidence(&ev, &s.store, &opts).map(|_| ());
    assert!(
        matches!(&r, Err(VerifyError::KekPcrResettable { bound }) if bound == "sha256:16,23"),
        "{r:?}"
    );
}

#[test]
fn required_kek_pcr_bindings_need_fixed_pcrs_with_reference_values() {
    let s = setup();
    // PCRs 6 and 7 as swtpm quotes them (zeros), so the quoted values and
    // the references agree. (Resettable PCRs: the test above.)
    let values = vec![vec![0u8; 32], vec![0u8; 32]];
    let mut ev = with_tpm_kek(
        &s,
        Hierarchy::Owner,
        &pcr_bound_kek_on("sha256:6,7", STORAGE & !attr::USER_WITH_AUTH, &values),
    )
    .unwrap();
    ev.kek.pcr_binding = Some(binding_on(&[6, 7], &values));
    let with = |req: KekPcrRequirement, refs: &[(u32, &Vec<u8>)]| {
        let mut opts = s.opts.clone();
        opts.policy.require_kek_pcrs = req;
        opts.policy.reference_pcrs.insert(
            HashAlg::Sha256,
            refs.iter().map(|(i, v)| (*i, v.to_vec())).collect(),
        );
        verify_evidence(&ev, &s.store, &opts).map(|_| ())
    };
    let all = [(6u32, &values[0]), (7, &values[1])];
    // Bound to fixed PCRs with every bound PCR referenced: accepted.
    with(KekPcrRequirement::Any, &all).expect("PCRs 6 and 7 make the binding");
    with(KekPcrRequirement::These(vec![7]), &all).expect("PCR 7 required and bound");
    // A bound PCR without a reference value.
    let r = with(KekPcrRequirement::Any, &all[1..]);
    assert!(
        matches!(r, Err(VerifyError::KekPcrUnreferenced { index: 6, .. })),
        "{r:?}"
    );
    // A required PCR the KEK is not bound to.
    let r = with(KekPcrRequirement::These(vec![0, 7]), &all);
    assert!(
        matches!(&r, Err(VerifyError::KekPcrsMissing { missing, .. }) if missing == "0"),
        "{r:?}"
    );
    // Not required: reported, and reference values where the policy has them
    // are still compared.
    with(KekPcrRequirement::None, &[]).expect("binding reported only");
    let other = vec![0x11u8; 32];
    let r = with(KekPcrRequirement::None, &[(6, &other)]);
    assert!(
        matches!(r, Err(VerifyError::KekPcrBindingMismatch { index: 6, .. })),
        "{r:?}"
    );
}

#[test]
fn pcr_bound_kek_with_user_with_auth_is_refused() {
    // userWithAuth set: the empty auth value works and the PCR policy binds nothing.
    let s = setup();
    let values = vec![vec![0u8; 32], vec![0u8; 32]];
    let mut ev = with_tpm_kek(&s, Hierarchy::Owner, &pcr_bound_kek(STORAGE, &values)).unwrap();
    ev.kek.pcr_binding = Some(binding(&values));
    let r = verify(&s, &ev);
    assert!(
        matches!(r, Err(VerifyError::KekPcrBindingNotEnforced)),
        "{r:?}"
    );
}
