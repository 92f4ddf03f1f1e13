//! tandem-graph: the model as tandem sees it.
pub mod zoo;
