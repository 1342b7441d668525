//! The life of a world on this host: `init` (EK choice, AK, KEK of a chosen
//! type, optionally PCR-bound, optional compat KEK), finding the KEK a key
//! lives under (re-creating an evicted KEK, recognising a cleared TPM),
//! `worlds list`, `kek rotate` and `world destroy`.

use crate::cli::RotatePcrs;
use crate::context::{kek_parent, kek_spec, world_kek, Ctx};
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

/// A new KEK for `world`: returns its record (handle, public, template inputs).
fn new_kek(
    tpm: &mut Tpm,
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
    let (handle, public) = tpm.create_kek(&kek_template(world, &spec))?;
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
}

pub fn init(ctx: &Ctx, world: &WorldId, opts: &InitOptions) -> Result<()> {
    let kek_alg = opts.kek_alg;
    let ek_kind = opts.ek;
    let pcrs = opts.pcrs.cloned();
    warn_resettable(pcrs.as_ref());
    let state = ctx.state()?;
    let mut tpm = ctx.tpm()?;

    if state.has_world(world) {
        return reinit(&state, &mut tpm, world, opts, pcrs.as_ref());
    }

    let ek_kind = match ek_kind {
        Some(k) => k,
        None => tpm.choose_ek()?,
    };
    // The EK certificate must be there: evidence without it cannot be verified.
    tpm.ek_certificate(ek_kind)?;
    let ek = tpm.ek(ek_kind)?;
    let (ak_public, ak_private) = tpm.create_ak(ek)?;
    let kek = new_kek(&mut tpm, world, kek_alg, 0, pcrs.as_ref())?;
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
    print_world(&w, ek_kind)
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
    println!(
        "world {world}: already initialised, KEK at {:#010x}",
        w.kek.handle
    );
    if opts.compat && w.kek.compat_public.is_none() {
        let (public, private) = create_compat(tpm, &kek)?;
        w.kek.compat_public = Some(public);
        w.compat_private = Some(private);
        state.put_world(&w)?;
        println!("world {world}: compat KEK (RSA-3072 decryption) added");
    }
    Ok(())
}

/// What `init` prints of a new world.
fn print_world(w: &WorldState, ek_kind: EkKind) -> Result<()> {
    let world = w.world.as_str();
    let kek_public = &w.kek.public;
    let ak = &w.ak_public;
    println!("world {world}: initialised");
    println!("  EK   {:#010x}  {}", ek_kind.handle(), ek_kind.name());
    println!(
        "  KEK  {:#010x}  {}  name {}",
        w.kek.handle,
        kek_public.describe_key(),
        hex::encode(kek_public.name())
    );
    if let Some(p) = &w.kek.pcrs {
        println!("       bound to PCRs {p}: usable only while they keep their current values");
    }
    println!(
        "  AK   {}  name {}",
        ak.describe_key(),
        hex::encode(ak.name())
    );
    if let Some(p) = &w.kek.compat_public {
        let c = p;
        println!(
            "  compat KEK  {}  kid {}",
            c.describe_key(),
            byok_protocol::world::compat_kid(world, &c.name())
        );
    }
    Ok(())
}

/// `worlds list`: each world, its KEK(s), its keys and what the TPM says.
pub fn worlds_list(ctx: &Ctx) -> Result<()> {
    let state = ctx.state()?;
    let worlds = state.worlds()?;
    let keys = state.keys()?;
    let mut tpm = ctx.tpm()?;
    println!("WORLD\tKEK\tTYPE\tGENERATION\tPCRS\tKEYS\tSTATUS");
    for w in &worlds {
        let rec = w.kek.clone();
        let status = match tpm.kek(rec.handle, &rec.public)? {
            KekAt::Recorded(_) => "ok".to_string(),
            KekAt::Other => "KEK handle holds another object".to_string(),
            KekAt::Missing => {
                let template = kek_template(&w.world, &kek_spec(&w.world, &rec)?);
                let (k, p) = tpm.create_primary(&template)?;
                tpm.flush(k);
                if p == rec.public {
                    "KEK evicted (re-created on next use)".to_string()
                } else {
                    "LOST: the TPM's owner seed changed (TPM cleared)".to_string()
                }
            }
        };
        let described = rec.public.describe_key();
        println!(
            "{}\t{:#010x}\t{}\t{}\t{}\t{}\t{}{}",
            w.world,
            rec.handle,
            described,
            rec.generation,
            rec.pcrs
                .as_ref()
                .map(|p| p.describe())
                .unwrap_or_else(|| "-".into()),
            keys.iter().filter(|k| k.world == w.world).count(),
            status,
            if w.retired.is_empty() {
                String::new()
            } else {
                format!(" ({} retired KEK(s) kept for older keys)", w.retired.len())
            }
        );
    }
    if worlds.is_empty() {
        println!("(no worlds: run `byok-agent init --world W`)");
    }
    Ok(())
}

/// `kek rotate`: a new KEK for the world (next generation; same type; bound to
/// `pcrs`, or to the current values of the PCRs the old one was bound to,
/// "none" for no binding). The old KEK stays persistent for the keys stored
/// under them, which keep working; packages wrapped for it are refused.
pub fn kek_rotate(ctx: &Ctx, world: &WorldId, pcrs: Option<&RotatePcrs>) -> Result<()> {
    let (state, mut w) = ctx.world(world)?;
    let mut tpm = ctx.tpm()?;
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
    for mut k in state.keys()?.into_iter().filter(|k| k.world == *world) {
        if k.kek_handle.is_none() {
            k.kek_handle = Some(old.handle);
            state.put_key(&k)?;
            pinned += 1;
        }
    }
    let mut new = new_kek(&mut tpm, world, alg, generation, pcrs.as_ref())?;
    if old.compat_public.is_some() {
        let parent = kek_parent(&mut tpm, &state, world, &new)?;
        let (p, k) = create_compat(&mut tpm, &parent)?;
        new.compat_public = Some(p);
        w.compat_private = Some(k);
    }
    w.retired.push(old.clone());
    w.kek = new.clone();
    state.put_world(&w)?;
    let p = &w.kek.public;
    println!(
        "world {world}: KEK rotated to generation {generation} at {:#010x} ({}, name {}){}",
        new.handle,
        p.describe_key(),
        hex::encode(p.name()),
        new.pcrs
            .as_ref()
            .map(|s| format!(", bound to PCRs {s}"))
            .unwrap_or_default()
    );
    println!(
        "  the previous KEK at {:#010x} stays for the {pinned} key(s) stored under it and refuses new packages; fetch new evidence before wrapping",
        old.handle
    );
    Ok(())
}

/// `world destroy`: evict the world's KEKs from the TPM and delete its keys
/// and state. Irreversible, so it asks for `--yes`.
pub fn world_destroy(ctx: &Ctx, world: &WorldId, yes: bool) -> Result<()> {
    let (state, w) = ctx.world(world)?;
    let keys: Vec<KeyState> = state
        .keys()?
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
    let mut tpm = ctx.tpm()?;
    let mut evicted = 0;
    for rec in &keks {
        // Only the recorded KEK is evicted, never whatever else sits at its handle.
        if matches!(tpm.kek(rec.handle, &rec.public)?, KekAt::Recorded(_)) {
            tpm.evict(rec.handle)?;
            evicted += 1;
        }
    }
    for k in &keys {
        state.delete_key(&k.name)?;
    }
    state.delete_world(world)?;
    println!(
        "world {world} destroyed: {evicted} KEK(s) evicted from the TPM, {} key(s) deleted",
        keys.len()
    );
    Ok(())
}
