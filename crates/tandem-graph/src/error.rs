//! The one error type of tandem-graph.

use std::path::PathBuf;

/// Everything that can go wrong while loading, cutting or splitting a model.
///
/// Messages are written for the person at the terminal: each says what was wrong and, where there is
/// one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The model file does not exist or cannot be read.
    #[error("cannot read model {path}: {error}")]
    Io {
        /// The path given.
        path: PathBuf,
        /// The OS error. Not a `source`: the message already says it, and an error chain would say
        /// it twice.
        error: std::io::Error,
    },
    /// The bytes are not an ONNX protobuf (or the file was cut short).
    #[error("{path} is not a valid ONNX model ({reason}); is the file complete and really ONNX?")]
    NotOnnx {
        /// The path given.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The model uses an operator tract cannot run.
    #[error("{path} uses operator{} tract cannot run: {}", if .ops.len() > 1 { "s" } else { "" }, .ops.join(", "))]
    UnsupportedOperator {
        /// The path given.
        path: PathBuf,
        /// `OpType (node name)` for each offending node kind.
        ops: Vec<String>,
    },
    /// An input has a symbolic or unknown dimension and no `--input-shape` fixed it.
    #[error("input '{input}' has a symbolic dimension ({shape}); fix it with --input-shape {input}=DIMS, e.g. --input-shape {input}={example}")]
    SymbolicInput {
        /// Input name.
        input: String,
        /// The shape as the model declares it.
        shape: String,
        /// A suggested concrete shape.
        example: String,
    },
    /// An `--input-shape` names an input the model does not have.
    #[error("--input-shape names input '{given}', but the model's inputs are: {valid}")]
    UnknownInput {
        /// What the user wrote.
        given: String,
        /// The valid names and positions.
        valid: String,
    },
    /// An `--input-shape` has the wrong rank for its input.
    #[error("--input-shape {input}: the model's input has rank {expected} ({declared}), got {got} dimensions")]
    InputRank {
        /// Input name.
        input: String,
        /// Rank the model declares.
        expected: usize,
        /// The declared shape.
        declared: String,
        /// Rank the user gave.
        got: usize,
    },
    /// An `--input-shape` argument that does not parse.
    #[error("bad --input-shape '{given}': {reason} (expected NAME=1,3,224,224 or POSITION=1,3,224,224)")]
    InputShapeSyntax {
        /// What the user wrote.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// tract refused the model for another reason.
    #[error("tract cannot prepare {path}: {reason}")]
    Tract {
        /// The path given.
        path: PathBuf,
        /// tract's error chain, on one line.
        reason: String,
    },
    /// A set of ops that does not make a stage.
    #[error("invalid cut: {0}")]
    InvalidCut(String),
    /// A split that cannot be made.
    #[error("cannot split op {op}: {reason}")]
    InvalidSplit {
        /// The op's name.
        op: String,
        /// Why.
        reason: String,
    },
    /// Running a model (a stage, a part) failed.
    #[error("running {what} failed: {reason}")]
    Run {
        /// What was being run.
        what: String,
        /// tract's error chain, on one line.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;

/// tract's anyhow chain on one line ("outer: inner: root").
pub(crate) fn chain(e: &tract_onnx::prelude::TractError) -> String {
    let mut parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ")
}
