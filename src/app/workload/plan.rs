//! `collbench workload`'s command line checked before MPI starts: the model, its phases, the layouts
//! asked for and the router's options, as one plan every rank derives alike.

use crate::backend::BackendRequest;
use crate::cli::workload::WorkloadArgs;
use crate::engine::EngineSettings;
use crate::error::{Error, Result};
use crate::size::parse_size;
use crate::workload::candidates;
use crate::workload::messages::{Load, Phase, PhaseKind, StepOptions};
use crate::workload::model::{self, ModelSpec};

/// Everything the command needs that does not depend on the job, validated before MPI starts.
pub(super) struct WorkloadPlan {
    pub(super) args: WorkloadArgs,
    pub(super) request: BackendRequest,
    pub(super) timeout_s: Option<f64>,
    pub(super) settings: EngineSettings,
    pub(super) model: ModelSpec,
    pub(super) phases: Vec<Phase>,
    pub(super) tp: Option<Vec<usize>>,
    pub(super) ep: Option<Vec<usize>>,
    pub(super) pp: Option<Vec<usize>>,
    pub(super) options: StepOptions,
    /// Tokens per sequence in the KV cache.
    pub(super) context: u64,
}

/// How EP traffic is routed, for the notes.
pub(super) fn router_note(options: &StepOptions) -> String {
    format!(
        "EP dispatch and combine are all_to_allv with the MoE router's matrices (skew {}, seed {}): every rank routes ceil(tokens/k) tokens, so a batch smaller than k routes one token on every rank",
        options.skew, options.seed
    )
}

pub(super) fn validate(args: WorkloadArgs) -> Result<WorkloadPlan> {
    if let Some(path) = &args.json {
        // Every rank refuses a folder alike, before MPI starts.
        crate::report::json::Target::of(path)?;
    }
    let model = model::load(&args.model)?;
    if !(args.skew.is_finite() && args.skew >= 1.0) {
        return Err(Error::usage(format!(
            "--skew {}: give a hot-rank ratio of at least 1 (1 is uniform routing)",
            args.skew
        )));
    }
    let options = StepOptions {
        dp_attention: args.dp_attention,
        skew: args.skew,
        seed: args.seed,
    };
    let mut phases = token_list("--batch", &args.batch, PhaseKind::Decode, Load::PerReplica)?;
    phases.extend(token_list(
        "--prefill",
        &args.prefill,
        PhaseKind::Prefill,
        Load::PerReplica,
    )?);
    for (flag, text, kind) in [
        ("--job-batch", &args.job_batch, PhaseKind::Decode),
        ("--job-prefill", &args.job_prefill, PhaseKind::Prefill),
    ] {
        if let Some(text) = text {
            phases.extend(token_list(flag, text, kind, Load::PerJob)?);
        }
    }
    if phases.is_empty() {
        return Err(Error::usage(
            "--batch none --prefill none: nothing to measure: give decode batches or prefill chunks",
        ));
    }
    let context = match parse_size(&args.context) {
        Ok(t) if t > 0 => t,
        _ => {
            return Err(Error::usage(format!(
                "--context {}: give the tokens each sequence holds in the KV cache, such as 8K or 32768",
                args.context
            )))
        }
    };
    if let Some(gb) = args.gpu_memory {
        if !(gb.is_finite() && gb > 0.0) {
            return Err(Error::usage(format!(
                "--gpu-memory {gb}: give the memory of one GPU in GB (1e9 bytes), such as 80 or 141"
            )));
        }
    }
    let tp = args
        .tp
        .as_deref()
        .map(|t| candidates::parse_sizes("--tp", t))
        .transpose()?;
    let ep = args
        .ep
        .as_deref()
        .map(|t| candidates::parse_sizes("--ep", t))
        .transpose()?;
    let pp = args
        .pp
        .as_deref()
        .map(|t| candidates::parse_sizes("--pp", t))
        .transpose()?;
    let timeout_s = crate::plan::timeout(args.timeout)?;
    let request = args.library.backend_request(timeout_s)?;
    // Sizes come from the model; the timing is a sweep's, with its default fewest auto iterations.
    let settings = EngineSettings::plain(
        crate::plan::iterations(
            &args.iters,
            args.ci_target,
            crate::plan::DEFAULT_MIN_ITERS,
            args.size_time_cap,
        )?,
        args.warmup_iters,
        args.check,
    );
    Ok(WorkloadPlan {
        args,
        request,
        timeout_s,
        settings,
        model,
        phases,
        tp,
        ep,
        pp,
        options,
        context,
    })
}

/// "1,8,64" or "2K,8K" as token counts; "none" for no phase of this kind.
fn token_list(flag: &str, text: &str, kind: PhaseKind, load: Load) -> Result<Vec<Phase>> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|t| match parse_size(t) {
            Ok(tokens) if tokens > 0 => Ok(Phase { kind, tokens, load }),
            Ok(_) => Err(Error::usage(format!(
                "{flag} {text}: 0 tokens: give at least one token per step, or none"
            ))),
            Err(e) => Err(Error::usage(format!(
                "{flag} {text}: {t:?}: {e}: give token counts such as 1,8,64 or 2K,8K"
            ))),
        })
        .collect()
}
