//! The life of a world on this host: `init` (EK choice, AK, KEK of a chosen
//! type, optionally PCR-bound, optional compat KEK), finding the KEK a key
//! lives under (re-creating an evicted KEK, recognising a cleared TPM),
//! `worlds list`, `kek rotate` and `world destroy`.

use crate::cli::RotatePcrs;
use crate::context::{intend, kek_parent, kek_spec, settle_intents, world_kek, Ctx};
use crate::error::{AgentError, Result};
use crate::state::{KekRecord, KeyState, StateDir, WorldState};
use crate::tpm::{EkKind, KekAt, Parent, Tpm};
use byok_protocol::policy::PcrSpec;
use byok_protocol::public::TpmtPublic;
use byok_protocol::templates::{compat_kek_template, kek_template, KekAlg, KekSpec};
use byok_protocol::world::pcr_bound_kek_policy;
use byok_protocol::world::WorldId;
use serde_bytes::ByteBuf;

/// The world's compat KEK, created under the KEK (TPM2_Create).
fn create_compat(tpm: &mut Tpm, kek: &Parent) -> Result<(TpmtPublic, ByteBuf)> {
    let (public, private) = tpm.create_child(kek, &compat_kek_template())?;
    Ok((public, ByteBuf::from(private)))
}

/// A KEK's `--pcrs`: warns about PCRs software can reset (a binding to
/// them alone holds in any boot state, and verifiers that require a binding
/// refuse it).
fn warn_resettable(spec: Option<&PcrSpec>) {
    if let Some(spec) = spec {
        let resettable: Vec<String> = spec
            .pcrs
            .iter()
            .filter(|i| byok_protocol::policy::resettable_pcr(**i, false))
            .map(|i| i.to_string())
            .collect();
        if !resettable.is_empty() {
            eprintln!(
                "byok-agent: warning: --pcrs {}: PCR(s) {} can be reset by software (16 and 23 at any time, 17-22 by a dynamic launch) and then extended to any value: they do not pin the boot state, and a verifier that requires a PCR-bound KEK (require_kek_pcrs) will not count them; bind to PCRs 0-15 (e.g. sha256:0,2,4,7)",
                spec.describe(),
                resettable.join(",")
            );
        }
    }
}

/// A new KEK for `world`, persistent, with its intent recorded (the caller
/// deletes the intent once a world record names the KEK): returns its record
/// (handle, public, template inputs).
fn new_kek(
    tpm: &mut Tpm,
    state: &StateDir,
    world: &WorldId,
    alg: KekAlg,
    generation: u32,
    pcrs: Option<&PcrSpec>,
) -> Result<KekRecord> {
    let values = match pcrs {
        Some(s) => tpm.pcr_values(s)?,
        None => Vec::new(),
    };
    let spec = KekSpec {
        alg,
        generation,
        auth_policy: pcrs.map(|s| pcr_bound_kek_policy(world, s, &values)),
    };
    let (handle, public) = tpm.create_kek(&kek_template(world, &spec), |handle, public| {
        intend(state, world, handle, public)
    })?;
    Ok(KekRecord {
        handle,
        public,
        alg: Some(alg),
        generation,
        pcrs: pcrs.cloned(),
        pcr_values: values.into_iter().map(ByteBuf::from).collect(),
        compat_public: None,
    })
}

pub struct InitOptions<'a> {
    pub compat: bool,
    pub kek_alg: KekAlg,
    /// None: the first EK whose certificate is in NV.
    pub ek: Option<EkKind>,
    pub pcrs: Option<&'a PcrSpec>,
    /// The EK certificate is not in NV (`evidence --ek-cert` brings it).
    pub ek_cert_elsewhere: bool,
    /// Report the world as JSON.
    pub json: bool,
}

pub fn init(ctx: &Ctx, world: &WorldId, opts: &InitOptions) -> Result<()> {
    let kek_alg = opts.kek_alg;
    let ek_kind = opts.ek;
    let pcrs = opts.pcrs.cloned();
    warn_resettable(pcrs.as_ref());
    let state = ctx.state()?;
    let mut tpm = ctx.tpm(&state)?;

    if state.has_world(world) {
        return reinit(&state, &mut tpm, world, opts, pcrs.as_ref());
    }

    let ek_kind = match (ek_kind, opts.ek_cert_elsewhere) {
        (Some(k), _) => k,
        (None, false) => tpm.choose_ek()?,
        (None, true) => {
            return Err(AgentError::InvalidArgument {
                what: "--ek-cert-elsewhere",
                detail: "name the EK its certificate is for: --ek rsa, ecc-p256 or ecc-p384".into(),
            })
        }
    };
    // The EK certificate must be there (or come with each evidence):
    // evidence without it cannot be verified.
    if !opts.ek_cert_elsewhere {
        tpm.ek_certificate(ek_kind)?;
    }
    let ek = tpm.ek(ek_kind)?;
    let (ak_public, ak_private) = tpm.create_ak(ek)?;
    let kek = new_kek(&mut tpm, &state, world, kek_alg, 0, pcrs.as_ref())?;
    let (compat_public, compat_private) = if opts.compat {
        let parent = kek_parent(&mut tpm, &state, world, &kek)?;
        let (p, k) = create_compat(&mut tpm, &parent)?;
        (Some(p), Some(k))
    } else {
        (None, None)
    };
    let w = WorldState {
        world: world.clone(),
        ek_handle: ek_kind.handle(),
        ak_public,
        ak_private: ByteBuf::from(ak_private),
        kek: KekRecord {
            compat_public,
            ..kek
        },
        compat_private,
        retired: Vec::new(),
    };
    state.put_world(&w)?;
    state.delete_intent(w.kek.handle)?;
    report_world(&w, true, opts.json)
}

/// `init` of a world that exists: reload it (re-creating an evicted KEK)
/// and add a compat KEK if asked; an existing KEK never changes (its type,
/// PCR binding or EK differing from the options is an error).
fn reinit(
    state: &StateDir,
    tpm: &mut Tpm,
    world: &WorldId,
    opts: &InitOptions,
    pcrs: Option<&PcrSpec>,
) -> Result<()> {
    let mut w = state.world(world)?;
    let recorded_alg = w.kek.alg.unwrap_or(KekAlg::Rsa2048).name();
    let differs = |what: &'static str, detail: String| AgentError::InvalidArgument { what, detail };
    if recorded_alg != opts.kek_alg.name() {
        return Err(differs(
            "--kek-alg",
            format!("world {world} exists with a {recorded_alg} KEK; a world's KEK type does not change (destroy and re-create the world)"),
        ));
    }
    if pcrs.is_some_and(|p| Some(p) != w.kek.pcrs.as_ref()) {
        return Err(differs(
            "--pcrs",
            format!("world {world} exists; change its KEK's PCR binding with `byok-agent kek rotate --world {world} --pcrs ...`"),
        ));
    }
    if opts.ek.is_some_and(|k| k.handle() != w.ek_handle) {
        return Err(differs(
            "--ek",
            format!("world {world} exists with the EK at {:#010x}", w.ek_handle),
        ));
    }
    let kek = world_kek(tpm, state, &w)?;
    if !opts.json {
        byok_protocol::say!(
            "world {world}: already initialised, KEK at {:#010x}",
            w.kek.handle
        );
    }
    if opts.compat && w.kek.compat_public.is_none() {
        let (public, private) = create_compat(tpm, &kek)?;
        w.kek.compat_public = Some(public);
        w.compat_private = Some(private);
        state.put_world(&w)?;
        if !opts.json {
            byok_protocol::say!("world {world}: compat KEK (RSA-3072 decryption) added");
        }
    }
    if opts.json {
        return report_world(&w, false, true);
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct ObjectReport {
    handle: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    name: String,
}

#[derive(serde::Serialize)]
struct EkReport {
    handle: String,
    kind: &'static str,
}

/// `init --json`: the world's objects.
#[derive(serde::Serialize)]
struct InitReport<'a> {
    world: &'a str,
    /// False when the world existed (init changed nothing but a compat KEK).
    created: bool,
    /// The EK's persistent handle and kind (rsa, ecc-p256, ecc-p384).
    ek: EkReport,
    kek: ObjectReport,
    kek_pcrs: Option<String>,
    ak: ObjectReport,
    compat_kek: Option<ObjectReport>,
    compat_kid: Option<String>,
}

/// What `init` reports of a world: text lines for a new one, or JSON.
fn report_world(w: &WorldState, created: bool, json: bool) -> Result<()> {
    if !json {
        let kind = EkKind::from_handle(w.ek_handle).unwrap_or(EkKind::Rsa2048);
        return print_world(w, kind);
    }
    let object = |handle: Option<u32>, p: &TpmtPublic| ObjectReport {
        handle: handle.map(|h| format!("{h:#010x}")),
        kind: p.describe_key(),
        name: hex::encode(p.name()),
    };
    let world = w.world.as_str();
    crate::report::print_json(&InitReport {
        world,
        created,
        ek: EkReport {
            handle: format!("{:#010x}", w.ek_handle),
            kind: EkKind::from_handle(w.ek_handle)
                .map(|k| k.name())
                .unwrap_or("unknown"),
        },
        kek: object(Some(w.kek.handle), &w.kek.public),
        kek_pcrs: w.kek.pcrs.as_ref().map(|p| p.describe()),
        ak: object(None, &w.ak_public),
        compat_kek: w.kek.compat_public.as_ref().map(|c| object(None, c)),
        compat_kid: w
            .kek
            .compat_public
            .as_ref()
            .map(|c| byok_protocol::world::compat_kid(world, &c.name())),
    })
}

/// What `init` prints of a new world.
fn print_world(w: &WorldState, ek_kind: EkKind) -> Result<()> {
    let world = w.world.as_str();
    let kek_public = &w.kek.public;
    let ak = &w.ak_public;
    byok_protocol::say!("world {world}: initialised");
    byok_protocol::say!("  EK   {:#010x}  {}", ek_kind.handle(), ek_kind.name());
    byok_protocol::say!(
        "  KEK  {:#010x}  {}  name {}",
        w.kek.handle,
        kek_public.describe_key(),
        hex::encode(kek_public.name())
    );
    if let Some(p) = &w.kek.pcrs {
        byok_protocol::say!(
            "       bound to PCRs {p}: usable only while they keep their current values"
        );
    }
    byok_protocol::say!(
        "  AK   {}  name {}",
        ak.describe_key(),
        hex::encode(ak.name())
    );
    if let Some(p) = &w.kek.compat_public {
        let c = p;
        byok_protocol::say!(
            "  compat KEK  {}  kid {}",
            c.describe_key(),
            byok_protocol::world::compat_kid(world, &c.name())
        );
    }
    Ok(())
}

/// What the TPM holds at a world's KEK handle.
#[derive(Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum KekStatus {
    Ok,
    /// Evicted; the template re-creates it on next use.
    Evicted,
    /// The template gives another key: the owner seed changed.
    Lost,
    OtherObject,
}

impl KekStatus {
    fn describe(self) -> &'static str {
        match self {
            KekStatus::Ok => "ok",
            KekStatus::Evicted => "KEK evicted (re-created on next use)",
            KekStatus::Lost => "LOST: the TPM's owner seed changed (TPM cleared)",
            KekStatus::OtherObject => "KEK handle holds another object",
        }
    }
}

fn kek_status(tpm: &mut Tpm, world: &WorldId, rec: &KekRecord) -> Result<KekStatus> {
    Ok(match tpm.kek(rec.handle, &rec.public)? {
        KekAt::Recorded(_) => KekStatus::Ok,
        KekAt::Other => KekStatus::OtherObject,
        KekAt::Missing => {
            let template = kek_template(world, &kek_spec(world, rec)?);
            let (k, p) = tpm.create_primary(&template)?;
            tpm.flush(k);
            if p == rec.public {
                KekStatus::Evicted
            } else {
                KekStatus::Lost
            }
        }
    })
}

#[derive(serde::Serialize)]
struct KekReport {
    handle: String,
    #[serde(rename = "type")]
    kind: String,
    generation: u32,
    pcrs: Option<String>,
    keys: usize,
}

#[derive(serde::Serialize)]
struct WorldReport {
    world: WorldId,
    kek: KekReport,
    status: KekStatus,
    retired: Vec<KekReport>,
    keys: usize,
}

#[derive(serde::Serialize)]
struct WorldsReport {
    worlds: Vec<WorldReport>,
    /// Persistent handles in the KEK range no readable record names.
    orphans: Vec<String>,
    unreadable: Vec<String>,
}

/// How many stored keys live under the KEK at `handle` of world `w`.
fn keys_under(keys: &[KeyState], w: &WorldState, handle: u32) -> usize {
    keys.iter()
        .filter(|k| k.world == w.world && k.kek_handle.unwrap_or(w.kek.handle) == handle)
        .count()
}

/// `worlds list`: each world, its KEK(s), its keys and what the TPM says;
/// persistent objects in the KEK range no record names; unreadable records
/// by name (the others are listed, and the command then fails).
// Long on purpose: one report, gathered and then printed as text or JSON.
pub fn worlds_list(ctx: &Ctx, json: bool) -> Result<()> {
    let state = ctx.state()?;
    let worlds = state.worlds()?;
    let keys = state.keys()?;
    let mut unreadable: Vec<String> = worlds.corrupt.iter().map(|e| e.to_string()).collect();
    unreadable.extend(keys.corrupt.iter().map(|e| e.to_string()));
    let (worlds, keys) = (worlds.items, keys.items);
    let mut tpm = ctx.tpm(&state)?;
    let report_kek = |w: &WorldState, rec: &KekRecord| KekReport {
        handle: format!("{:#010x}", rec.handle),
        kind: rec.public.describe_key(),
        generation: rec.generation,
        pcrs: rec.pcrs.as_ref().map(|p| p.describe()),
        keys: keys_under(&keys, w, rec.handle),
    };
    let mut report = WorldsReport {
        worlds: Vec::new(),
        orphans: Vec::new(),
        unreadable,
    };
    let mut named = Vec::new();
    for w in &worlds {
        named.extend(std::iter::once(&w.kek).chain(&w.retired).map(|k| k.handle));
        report.worlds.push(WorldReport {
            world: w.world.clone(),
            kek: report_kek(w, &w.kek),
            status: kek_status(&mut tpm, &w.world, &w.kek)?,
            retired: w.retired.iter().map(|r| report_kek(w, r)).collect(),
            keys: keys.iter().filter(|k| k.world == w.world).count(),
        });
    }
    report.orphans = tpm
        .kek_range_handles()?
        .into_iter()
        .filter(|h| !named.contains(h))
        .map(|h| format!("{h:#010x}"))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| AgentError::Protocol(e.to_string()))?
        );
    } else {
        print_worlds(&report);
    }
    // Listed first, then the most serious condition decides the exit:
    // worlds lost to a TPM clear (11), then unreadable records (4).
    let lost: Vec<WorldId> = report
        .worlds
        .iter()
        .filter(|w| w.status == KekStatus::Lost)
        .map(|w| w.world.clone())
        .collect();
    if !lost.is_empty() {
        let keys = lost
            .iter()
            .map(|l| {
                report
                    .worlds
                    .iter()
                    .find(|w| &w.world == l)
                    .map_or(0, |w| w.keys)
            })
            .sum();
        return Err(AgentError::OwnerSeedChanged { worlds: lost, keys });
    }
    if report.unreadable.is_empty() {
        Ok(())
    } else {
        Err(AgentError::CorruptRecords(report.unreadable))
    }
}

fn print_worlds(report: &WorldsReport) {
    println!("WORLD\tKEK\tTYPE\tGENERATION\tPCRS\tKEYS\tSTATUS");
    for w in &report.worlds {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}{}",
            w.world,
            w.kek.handle,
            w.kek.kind,
            w.kek.generation,
            w.kek.pcrs.as_deref().unwrap_or("-"),
            w.keys,
            w.status.describe(),
            if w.retired.is_empty() {
                String::new()
            } else {
                format!(" ({} retired KEK(s) kept for older keys)", w.retired.len())
            }
        );
    }
    if report.worlds.is_empty() {
        println!("(no worlds: run `byok-agent init --world W`)");
    }
    for h in &report.orphans {
        println!(
            "orphan {h}: a persistent object in the KEK range that no world here names (another state directory's KEK on this TPM, or leaked by an agent without intent records); if neither, `tpm2_evictcontrol -C o -c {h}` frees it"
        );
    }
}

/// `kek rotate`: a new KEK for the world (next generation; same type; bound to
/// `pcrs`, or to the current values of the PCRs the old one was bound to,
/// "none" for no binding). The old KEK stays persistent for the keys stored
/// under it, which keep working, and is evicted when there are none;
/// packages wrapped for it are refused. Crash-consistent: both KEKs have an
/// intent recorded before the world record switches from one to the other.
// Long on purpose: the order of the steps is what makes it crash-consistent.
pub fn kek_rotate(ctx: &Ctx, world: &WorldId, pcrs: Option<&RotatePcrs>) -> Result<()> {
    let (state, mut w) = ctx.world(world)?;
    let mut tpm = ctx.tpm(&state)?;
    world_kek(&mut tpm, &state, &w)?;
    let old = w.kek.clone();
    let pcrs = match pcrs {
        Some(RotatePcrs::Unbound) => None,
        Some(RotatePcrs::Bound(s)) => {
            warn_resettable(Some(s));
            Some(s.clone())
        }
        None => old.pcrs.clone(),
    };
    let alg = kek_spec(world, &old)?.alg;
    let generation = w
        .retired
        .iter()
        .map(|k| k.generation)
        .chain([old.generation])
        .max()
        .unwrap_or(0)
        + 1;
    // Keys under the current KEK are pinned to it first: if anything below
    // fails, they still name the KEK they live under.
    let mut pinned = 0;
    let keys = state.keys()?;
    let all_keys_read = keys.corrupt.is_empty();
    for mut k in keys.warn().into_iter().filter(|k| k.world == *world) {
        if k.kek_handle.is_none() {
            k.kek_handle = Some(old.handle);
            state.put_key(&k)?;
            pinned += 1;
        }
    }
    let mut new = new_kek(&mut tpm, &state, world, alg, generation, pcrs.as_ref())?;
    if old.compat_public.is_some() {
        let parent = kek_parent(&mut tpm, &state, world, &new)?;
        let (p, k) = create_compat(&mut tpm, &parent)?;
        new.compat_public = Some(p);
        w.compat_private = Some(k);
    }
    // An old KEK no key lives under goes; with an unreadable key record
    // it stays (that key may live under it).
    let evict_old = all_keys_read && pinned == 0;
    if evict_old {
        intend(&state, world, old.handle, &old.public)?;
    } else {
        w.retired.push(old.clone());
    }
    w.kek = new.clone();
    state.put_world(&w)?;
    // The switch is durable: settling evicts the old KEK (if no record
    // names it) and keeps the new one.
    settle_intents(&state, &mut tpm)?;
    let p = &w.kek.public;
    byok_protocol::say!(
        "world {world}: KEK rotated to generation {generation} at {:#010x} ({}, name {}){}",
        new.handle,
        p.describe_key(),
        hex::encode(p.name()),
        new.pcrs
            .as_ref()
            .map(|s| format!(", bound to PCRs {s}"))
            .unwrap_or_default()
    );
    if evict_old {
        byok_protocol::say!(
            "  the previous KEK at {:#010x} had no keys under it and was evicted; fetch new evidence before wrapping",
            old.handle
        );
    } else {
        byok_protocol::say!(
            "  the previous KEK at {:#010x} stays for the {pinned} key(s) stored under it and refuses new packages; fetch new evidence before wrapping",
            old.handle
        );
    }
    Ok(())
}

/// `kek gc`: evict the retired KEKs of one world (or all) that no stored key
/// lives under. Refused while a key record is unreadable: it might live under
/// one of them, and an evicted KEK's keys are gone for good.
pub fn kek_gc(ctx: &Ctx, only: Option<&WorldId>) -> Result<()> {
    let state = ctx.state()?;
    let worlds = match only {
        Some(world) => vec![state.world(world)?],
        None => state.worlds()?.warn(),
    };
    let mut tpm = ctx.tpm(&state)?;
    for mut w in worlds {
        let keys = state.keys()?;
        if !w.retired.is_empty() {
            // A key under one of them may be among the unreadable.
            keys.corrupt_error()?;
        }
        let unused: Vec<KekRecord> = w
            .retired
            .iter()
            .filter(|r| keys_under(&keys.items, &w, r.handle) == 0)
            .cloned()
            .collect();
        if unused.is_empty() {
            byok_protocol::say!("world {}: no retired KEK without keys", w.world);
            continue;
        }
        for rec in &unused {
            intend(&state, &w.world, rec.handle, &rec.public)?;
        }
        w.retired
            .retain(|r| !unused.iter().any(|u| u.handle == r.handle));
        state.put_world(&w)?;
        settle_intents(&state, &mut tpm)?;
        let handles: Vec<String> = unused
            .iter()
            .map(|r| format!("{:#010x}", r.handle))
            .collect();
        byok_protocol::say!(
            "world {}: {} retired KEK(s) without keys evicted ({})",
            w.world,
            unused.len(),
            handles.join(", ")
        );
    }
    Ok(())
}

/// `world destroy`: evict the world's KEKs from the TPM and delete its keys
/// and state. Irreversible, so it asks for `--yes`. Each KEK's intent is
/// recorded first, so a crash at any step leaves either the world (and a
/// retry finishes) or no record and nothing of it in the TPM.
pub fn world_destroy(ctx: &Ctx, world: &WorldId, yes: bool) -> Result<()> {
    let state = ctx.state()?;
    if !state.has_world(world) && state.intents()?.items.iter().any(|i| i.world == *world) {
        // An interrupted destroy removed the record: settling finishes it.
        let _tpm = ctx.tpm(&state)?;
        byok_protocol::say!("world {world} destroyed (an interrupted destroy was finished)");
        return Ok(());
    }
    let w = state.world(world)?;
    let keys: Vec<KeyState> = state
        .keys()?
        .warn()
        .into_iter()
        .filter(|k| k.world == *world)
        .collect();
    let mut keks = vec![w.kek.clone()];
    keks.extend(w.retired.iter().cloned());
    if !yes {
        return Err(AgentError::InvalidArgument {
            what: "world destroy",
            detail: format!(
                "this evicts {} KEK(s) of world {world} from the TPM and deletes its {} key(s) for good; add --yes",
                keks.len(),
                keys.len()
            ),
        });
    }
    let mut tpm = ctx.tpm(&state)?;
    let mut present = 0;
    for rec in &keks {
        // Only the recorded KEK is evicted, never whatever else sits at its handle.
        if matches!(tpm.kek(rec.handle, &rec.public)?, KekAt::Recorded(_)) {
            present += 1;
        }
        intend(&state, world, rec.handle, &rec.public)?;
    }
    for k in &keys {
        state.delete_key(&k.name)?;
    }
    state.delete_world(world)?;
    settle_intents(&state, &mut tpm)?;
    byok_protocol::say!(
        "world {world} destroyed: {present} KEK(s) evicted from the TPM, {} key(s) deleted",
        keys.len()
    );
    Ok(())
}
