//! Reductions over axes (`ReduceSum`, `ReduceSumSquare`, `ReduceMean`, `ReduceMax`, ...),
//! `ArgMax`/`ArgMin` and `Softmax`/`LogSoftmax`.

use super::shape::{axis, ints_from};
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::tensor::{Data, Tensor, Value};

/// What a reduction computes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reduction {
    Sum,
    SumSquare,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSumExp,
}

/// A reduction operator: axes from the attribute (older operator sets) or the second input.
pub(crate) struct Reduce {
    pub(crate) what: Reduction,
    pub(crate) axes: Option<Vec<i64>>,
    pub(crate) keep_dims: bool,
    pub(crate) noop_with_empty_axes: bool,
}

/// The output shape and, for every input element, the output element it folds into.
fn fold_map(shape: &[usize], reduced: &[bool], keep_dims: bool) -> (Vec<usize>, Vec<usize>) {
    let out_dims: Vec<usize> = shape
        .iter()
        .zip(reduced)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect();
    let mut out_strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        out_strides[d] = out_strides[d + 1] * out_dims[d + 1];
    }
    let total: usize = shape.iter().product();
    let mut target = Vec::with_capacity(total);
    let mut counter = vec![0usize; shape.len()];
    for _ in 0..total {
        target.push(
            counter
                .iter()
                .enumerate()
                .map(|(d, &c)| if reduced[d] { 0 } else { c * out_strides[d] })
                .sum(),
        );
        for d in (0..shape.len()).rev() {
            counter[d] += 1;
            if counter[d] < shape[d] {
                break;
            }
            counter[d] = 0;
        }
    }
    let shape_out = if keep_dims {
        out_dims
    } else {
        shape
            .iter()
            .zip(reduced)
            .filter(|(_, r)| !**r)
            .map(|(&d, _)| d)
            .collect()
    };
    (shape_out, target)
}

impl Kernel for Reduce {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let rank = x.shape.len();
        let axes = ints_from(inputs, 1, &self.axes)?.unwrap_or_default();
        if axes.is_empty() && self.noop_with_empty_axes {
            return Ok(vec![x.clone().into()]);
        }
        let mut reduced = vec![axes.is_empty(); rank];
        for &a in &axes {
            reduced[axis(a, rank)?] = true;
        }
        let (shape, target) = fold_map(&x.shape, &reduced, self.keep_dims);
        let n_out: usize = shape.iter().product::<usize>().max(1);
        let count = x.len() / n_out.max(1);
        let values: Vec<f64> = match &x.data {
            Data::Float(v) => v.iter().map(|&v| f64::from(v)).collect(),
            Data::Double(v) => v.clone(),
            Data::Int64(v) => v.iter().map(|&v| v as f64).collect(),
            Data::Int32(v) => v.iter().map(|&v| f64::from(v)).collect(),
            other => return Err(OnnxError::Type("a number tensor".into(), other.elem_type())),
        };
        let (init, step): (f64, fn(f64, f64) -> f64) = match self.what {
            Reduction::Sum | Reduction::Mean => (0.0, |a, v| a + v),
            Reduction::SumSquare | Reduction::L2 => (0.0, |a, v| a + v * v),
            Reduction::L1 => (0.0, |a, v| a + v.abs()),
            Reduction::Max => (f64::NEG_INFINITY, f64::max),
            Reduction::Min => (f64::INFINITY, f64::min),
            Reduction::Prod => (1.0, |a, v| a * v),
            Reduction::LogSumExp => (0.0, |a, v| a + v.exp()),
        };
        let mut acc = vec![init; n_out];
        for (v, &t) in values.iter().zip(&target) {
            acc[t] = step(acc[t], *v);
        }
        for a in &mut acc {
            *a = match self.what {
                Reduction::Mean => *a / count as f64,
                Reduction::L2 => a.sqrt(),
                Reduction::LogSumExp => a.ln(),
                _ => *a,
            };
        }
        let data = match &x.data {
            Data::Float(_) => Data::Float(acc.into_iter().map(|v| v as f32).collect()),
            Data::Double(_) => Data::Double(acc),
            Data::Int32(_) => Data::Int32(acc.into_iter().map(|v| v as i32).collect()),
            _ => Data::Int64(acc.into_iter().map(|v| v as i64).collect()),
        };
        Ok(vec![Tensor::new(shape, data)?.into()])
    }
}

/// `ArgMax` or `ArgMin` along an axis.
pub(crate) struct ArgExtreme {
    pub(crate) max: bool,
    pub(crate) axis: i64,
    pub(crate) keep_dims: bool,
    pub(crate) last: bool,
}

impl Kernel for ArgExtreme {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let rank = x.shape.len();
        let ax = axis(self.axis, rank)?;
        let values = x.to_f32()?;
        let outer: usize = x.shape[..ax].iter().product();
        let n = x.shape.get(ax).copied().unwrap_or(1);
        let inner: usize = x.shape[ax + 1..].iter().product();
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let mut best = 0;
                for k in 1..n {
                    let (v, b) = (
                        values[(o * n + k) * inner + i],
                        values[(o * n + best) * inner + i],
                    );
                    let better = if self.max { v > b } else { v < b };
                    if better || (self.last && v == b) {
                        best = k;
                    }
                }
                out.push(best as i64);
            }
        }
        let mut shape = x.shape.clone();
        if self.keep_dims {
            shape[ax] = 1;
        } else {
            shape.remove(ax);
        }
        Ok(vec![Tensor::new(shape, Data::Int64(out))?.into()])
    }
}

/// `Softmax` or `LogSoftmax`: along one axis (operator set 13 on) or over the flattened
/// trailing axes from `axis` on (before 13).
pub(crate) struct Softmax {
    pub(crate) axis: i64,
    pub(crate) flatten: bool,
    pub(crate) log: bool,
}

impl Kernel for Softmax {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let rank = x.shape.len();
        let ax = axis(self.axis, rank)?;
        let outer: usize = x.shape[..ax].iter().product();
        let (n, inner) = if self.flatten {
            (x.shape[ax..].iter().product(), 1)
        } else {
            (x.shape[ax], x.shape[ax + 1..].iter().product())
        };
        let mut v: Vec<f64> = x.to_f32()?.iter().map(|&v| f64::from(v)).collect();
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * n + k) * inner + i;
                let max = (0..n).map(|k| v[at(k)]).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..n).map(|k| (v[at(k)] - max).exp()).sum();
                for k in 0..n {
                    let e = v[at(k)] - max;
                    v[at(k)] = if self.log {
                        e - sum.ln()
                    } else {
                        e.exp() / sum
                    };
                }
            }
        }
        let data = match &x.data {
            Data::Double(_) => Data::Double(v),
            _ => Data::Float(v.into_iter().map(|v| v as f32).collect()),
        };
        Ok(vec![Tensor::new(x.shape.clone(), data)?.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_fold_the_right_axes() {
        let x = Value::from(Tensor::float(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap());
        let sum = Reduce {
            what: Reduction::SumSquare,
            axes: Some(vec![1]),
            keep_dims: true,
            noop_with_empty_axes: false,
        };
        let out = sum
            .run(&[Some(&x)])
            .unwrap()
            .remove(0)
            .into_tensor()
            .unwrap();
        assert_eq!(out.shape, vec![2, 1]);
        assert_eq!(out.data, Data::Float(vec![14., 77.]));
        let arg = ArgExtreme {
            max: false,
            axis: 0,
            keep_dims: false,
            last: false,
        };
        let out = arg
            .run(&[Some(&x)])
            .unwrap()
            .remove(0)
            .into_tensor()
            .unwrap();
        assert_eq!(out.data, Data::Int64(vec![0, 0, 0]));
    }
}
