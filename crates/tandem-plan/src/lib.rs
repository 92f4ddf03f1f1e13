//! tandem-plan: where each op of a model runs, and how long that is predicted to take.
//!
//! Two types carry the crate:
//!
//! - [`Problem`] is what the search sees: the op DAG reduced to numbers (per-op cost on each
//!   processor, `None` where a processor cannot run the op; bytes on each edge; split options with
//!   the cost of each part), the processors with the cores they own, and transfer and stage costs.
//!   It holds no tract types, so the search is fast and can be tested on random DAGs and cost tables
//!   against exhaustive enumeration. [`build::problem`] fills it from a graph and fitted cost models.
//! - [`Plan`] is what the search returns and the executor runs: stages (ops on one processor, or one
//!   part of a split), the splits, dependencies and transfers, and the predicted timeline. It is plain
//!   serde JSON, stored in the results database with the model, device and cost-model version it was
//!   made for, so a plan can be refused when any of them changed.
//!
//! Between them: [`search()`] scores candidates (a [`Choice`] per op: a processor, or a two-way split
//! with a ratio) with an [`Evaluator`], which forms stages by one fixed rule and schedules them
//! ([`evaluate`] explains the rule), and returns the best with the single-processor baselines;
//! [`SearchResult::plan`] writes it as a [`Plan`]; [`simulate`] predicts any plan's [`Timeline`];
//! [`exhaustive()`] enumerates every candidate of small problems, the reference the search is checked
//! against.
//!
//! A device is not always idle: [`robust_search`] ([`robust`]) picks the plan whose predicted latency
//! has the lowest p90 over availability [`Scenario`]s (each core idle, half available or heavily
//! loaded, each processor slowed as its slowest core, [`Problem::slowed`]), against the idle-optimal
//! plan and every processor alone; [`exhaustive_p90`] is its reference on small problems.
//!
//! ```text
//! Graph + CostModels --build::problem--> Problem --search--> SearchResult --plan--> Plan --simulate--> Timeline
//! ```
#![deny(missing_docs)]

pub mod build;
pub mod evaluate;
pub mod exhaustive;
pub mod plan;
pub mod problem;
pub mod robust;
mod schedule;
pub mod search;
pub mod synthetic;
pub mod timeline;

pub use evaluate::{alternatives, Choice, Evaluator, Score};
pub use exhaustive::{candidate_count, enumerate, exhaustive, Exhaustive};
pub use plan::{ModelRef, Objective, Part, Plan, PlanError, Span, Split, Stage, Timeline, Transfer};
pub use problem::{OpInput, OpNode, ProcessorSpec, Problem, SplitOption, StageCost, TransferCost};
pub use robust::{exhaustive_p90, p90, robust_search, scenarios, RobustBaseline, RobustExhaustive, RobustResult, Scenario};
pub use search::{configurations, search, Baseline, SearchOptions, SearchResult, Solution, SetAside};
pub use timeline::{simulate, transfers};
