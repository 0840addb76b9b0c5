//! The typed results of `collbench workload`: the model, the layouts and their groups, every measured
//! message, and each phase's ranking. What `-J` writes (docs/schema/workload.schema.json, docs/JSON.md).

use super::fit::GpuMemory;
use super::messages::{LayoutChoice, MessageKey, Phase, StepOptions};
use super::model::ModelSpec;
use super::ranking::PhaseRanking;
use crate::dtype::DataType;
use crate::report::document::{Document, DocumentHeader, Group, Measurement};
use crate::report::growing::Growing;
use serde::{Deserialize, Serialize};

/// Names the document among collbench's JSON files.
pub const KIND: &str = crate::report::document::kind::WORKLOAD;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadDocument {
    /// kind "workload", versions, command line, start, life (running while messages are still coming),
    /// environment, backend and ranks, at the top level.
    #[serde(flatten)]
    pub header: DocumentHeader,
    pub model: ModelSpec,
    /// What the step model counts and what it leaves out, in words.
    pub counted: Vec<String>,
    pub not_counted: Vec<String>,
    /// What the fit figures (weights and KV cache per GPU) count and leave out, in words.
    #[serde(default)]
    pub fit_counted: Vec<String>,
    #[serde(default)]
    pub fit_not_counted: Vec<String>,
    /// Anything that qualifies these numbers (a stand-in collective, a type measured as another).
    pub notes: Vec<String>,
    /// Tokens each sequence holds in the KV cache (--context).
    #[serde(default)]
    pub context_tokens: u64,
    /// The GPU memory each layout's fit is judged against, or why it is not judged.
    #[serde(default)]
    pub gpu_memory: Option<GpuMemory>,
    /// Each rank's GPU telemetry source and limits, the power limit in force among them (collbench
    /// never changes it); null with --no-telemetry.
    #[serde(default)]
    pub telemetry: Option<crate::report::gpu_readings::TelemetryHeader>,
    pub phases: Vec<Phase>,
    pub layouts: Vec<LayoutEntry>,
    /// Every distinct message, in the order measured; `measurement` is null until it has been.
    pub messages: Vec<MeasuredMessage>,
    /// The message being measured when the document was written (null once complete).
    pub in_flight: Option<String>,
    /// Each phase's layouts, fastest first; empty until every message is measured.
    pub ranking: Vec<PhaseRanking>,
    /// --dp-attention, and the MoE router's skew and seed.
    pub step_options: StepOptions,
}

impl Document for WorkloadDocument {
    fn header(&self) -> &DocumentHeader {
        &self.header
    }
    fn header_mut(&mut self) -> &mut DocumentHeader {
        &mut self.header
    }
}

/// Messages are listed before they are measured and measured in order: those measured have settled, the
/// rest are written again at every save (a few lines each, no per-rank figures).
impl Growing for WorkloadDocument {
    type Item = MeasuredMessage;
    const LIST: &'static str = "messages";
    fn items(&self) -> &[MeasuredMessage] {
        &self.messages
    }
    fn items_mut(&mut self) -> &mut Vec<MeasuredMessage> {
        &mut self.messages
    }
    fn settled(&self) -> usize {
        self.messages
            .iter()
            .take_while(|m| m.measurement.is_some())
            .count()
    }
}

/// A layout as measured: its groups (members and hosts), every group running at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayoutEntry {
    #[serde(flatten)]
    pub choice: LayoutChoice,
    /// "TP4", "EP8".
    pub name: String,
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasuredMessage {
    #[serde(flatten)]
    pub key: MessageKey,
    /// The element type it was measured in: the model's, or one of the same bytes where the backend
    /// cannot reduce the model's (notes say so).
    pub dtype: DataType,
    /// The bytes the collective moved in nccl-tests' size sense (the request rounded to whole
    /// 16-byte chunks per rank where the collective splits the buffer).
    pub measured_bytes: u64,
    /// The collective actually run for it, e.g. "all_to_allv, MoE router dispatch".
    pub measured_as: String,
    /// all_to_allv: the busiest rank's bytes over the mean (1 for balanced routing).
    pub imbalance: Option<f64>,
    pub measurement: Option<Measurement>,
}
