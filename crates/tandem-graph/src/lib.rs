//! tandem-graph: the model as tandem sees it.
//!
//! [`Graph::load`] reads an ONNX file through tract-onnx, fixes its input shapes and optimises it. The
//! optimised tract graph is what runs; [`Graph::ops`] groups its nodes into ops (one per source
//! operator, never separated where tract passes packed tensors) with cost features ([`OpCost`]) and the
//! axes each can be split along. From there:
//!
//! - [`Graph::stage`] turns any convex set of ops into a runnable tract model ([`Stage`]); chaining the
//!   stages of a cut reproduces the whole model bit for bit ([`Graph::run_stages`]).
//! - [`Graph::split`] cuts one op, or a short chain, into parts along output channels, spatial rows or
//!   other carried axes ([`Split`]), whose joined outputs equal the unsplit op.
//! - [`zoo`] writes standard architectures with seeded weights as real ONNX files, so everything above
//!   can be tested without downloading a model.
#![deny(missing_docs)]

mod cost;
mod cut;
mod error;
mod graph;
mod load;
mod run;
mod split;
pub mod zoo;

pub use cost::OpCost;
pub use cut::Stage;
pub use error::{GraphError, Result};
pub use graph::{Edge, Graph, Op, OpId, ValueId, REGION_INPUTS};
pub use load::InputShape;
pub use run::{compare, compile, run, Runnable};
pub use split::{boundaries, Part, Split, SplitSpec};
pub use tract_onnx::prelude::{TValue, TVec, Tensor, TypedModel};
