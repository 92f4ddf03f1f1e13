//! Running models, stages and splits on the calling thread: the reference semantics that the executor and
//! the tests compare against.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use tract_onnx::tract_core::internal::*;

use crate::cut::Stage;
use crate::error::{chain, GraphError, Result};
use crate::graph::{Graph, ValueId};
use crate::split::Split;

/// A compiled model ready to run, single-threaded on the calling thread.
pub type Runnable = std::sync::Arc<TypedRunnableModel>;

/// Compiles a model for running.
pub fn compile(model: &TypedModel, what: &str) -> Result<Runnable> {
    model.clone().into_runnable().map_err(|e| GraphError::Run { what: what.into(), reason: chain(&e) })
}

/// Runs a compiled model.
pub fn run(plan: &Runnable, inputs: TVec<TValue>, what: &str) -> Result<TVec<TValue>> {
    plan.run(inputs).map_err(|e| GraphError::Run { what: what.into(), reason: chain(&e) })
}

impl Graph {
    /// Deterministic inputs for the model: uniform in [-1, 1) for floats, zeros otherwise.
    pub fn random_inputs(&self, seed: u64) -> TVec<TValue> {
        let values: Vec<ValueId> = self.optimized.inputs.iter().map(|&o| o.into()).collect();
        self.random_values(&values, seed)
    }

    /// Deterministic tensors shaped like values of the optimised graph (a stage's or a split's inputs):
    /// uniform in [-1, 1) for floats, zeros otherwise.
    pub fn random_values(&self, values: &[ValueId], seed: u64) -> TVec<TValue> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        values
            .iter()
            .map(|&v| {
                let fact = self.optimized.outlet_fact(v.into()).expect("value of the optimised graph");
                let shape = fact.shape.as_concrete().expect("concrete input").to_vec();
                if fact.datum_type == f32::datum_type() {
                    let n = shape.iter().product();
                    let data: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                    tract_ndarray::ArrayD::from_shape_vec(shape, data).unwrap().into_tvalue()
                } else {
                    Tensor::zero_dt(fact.datum_type, &shape).expect("zero tensor").into_tvalue()
                }
            })
            .collect()
    }

    /// Runs the whole optimised model.
    pub fn run_whole(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>> {
        run(&compile(&self.optimized, &self.name)?, inputs, &self.name)
    }

    /// Runs stages in order, passing tensors between them, and returns the model's outputs.
    pub fn run_stages(&self, stages: &[Stage], inputs: TVec<TValue>) -> Result<TVec<TValue>> {
        let mut values: HashMap<ValueId, TValue> = HashMap::new();
        for (&o, v) in self.optimized.inputs.iter().zip(inputs) {
            values.insert(o.into(), v);
        }
        for (ix, stage) in stages.iter().enumerate() {
            let what = format!("stage {ix} of {}", self.name);
            let ins = stage
                .inputs
                .iter()
                .map(|v| values.get(v).cloned().ok_or_else(|| GraphError::Run { what: what.clone(), reason: format!("input {v:?} is not computed by an earlier stage") }))
                .collect::<Result<TVec<_>>>()?;
            let outs = run(&compile(&stage.model, &what)?, ins, &what)?;
            for (v, t) in stage.outputs.iter().zip(outs) {
                values.insert(*v, t);
            }
        }
        self.optimized
            .outputs
            .iter()
            .map(|o| values.remove(&ValueId::from(*o)).ok_or_else(|| GraphError::Run { what: self.name.clone(), reason: "an output was not computed by any stage".into() }))
            .collect()
    }
}

impl Split {
    /// Runs every part on the same inputs and joins their outputs along the split axis.
    pub fn run_joined(&self, inputs: &TVec<TValue>) -> Result<Tensor> {
        let mut outs = vec![];
        for (ix, part) in self.parts.iter().enumerate() {
            let what = format!("split part {ix}");
            let out = run(&compile(&part.model, &what)?, inputs.clone(), &what)?;
            outs.push(out[0].clone().into_tensor());
        }
        Tensor::stack_tensors(self.axis, &outs).map_err(|e| GraphError::Run { what: "joining split parts".into(), reason: chain(&e) })
    }
}

/// Largest difference between two tensors, absolute and relative to the magnitude of `reference`
/// (its largest absolute value): random-weight networks can output values near 1e-9.
pub fn compare(reference: &Tensor, other: &Tensor) -> Result<(f32, f32)> {
    let err = |reason: String| GraphError::Run { what: "comparison".into(), reason };
    if reference.shape() != other.shape() {
        return Err(err(format!("shapes differ: {:?} vs {:?}", reference.shape(), other.shape())));
    }
    let a = reference.cast_to::<f32>().map_err(|e| err(chain(&e)))?;
    let b = other.cast_to::<f32>().map_err(|e| err(chain(&e)))?;
    let a = a.to_plain_array_view::<f32>().map_err(|e| err(chain(&e)))?;
    let b = b.to_plain_array_view::<f32>().map_err(|e| err(chain(&e)))?;
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    let max_abs = a.iter().zip(b).fold(0f32, |m, (x, y)| if x.is_nan() != y.is_nan() { f32::INFINITY } else { m.max((x - y).abs()) });
    let rel = if scale > 0.0 { max_abs / scale } else { max_abs };
    Ok((max_abs, rel))
}
