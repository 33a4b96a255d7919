//! Operators that move, select or convert elements without arithmetic: `Identity`, `Cast`,
//! `Constant`, `Reshape`, `Flatten`, `Unsqueeze`, `Squeeze`, `Concat`, `Shape`, `Gather`,
//! `Slice` and `Transpose`.

use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::proto::NodeProto;
use crate::tensor::{Data, ElemType, Tensor, Value};

/// An axis attribute (negative counts from the end) as an index below `rank`.
pub(crate) fn axis(axis: i64, rank: usize) -> Result<usize, OnnxError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank.max(1))
        .ok_or_else(|| OnnxError::Shape(format!("axis {axis} out of range for rank {rank}")))
}

/// Integers from an optional input, or from an attribute when the input is absent.
pub(crate) fn ints_from(
    inputs: &[Option<&Value>],
    i: usize,
    attr: &Option<Vec<i64>>,
) -> Result<Option<Vec<i64>>, OnnxError> {
    match inputs.get(i).copied().flatten() {
        Some(v) => Ok(Some(v.tensor()?.to_i64()?.into_owned())),
        None => Ok(attr.clone()),
    }
}

/// `Identity` (and `Dropout` at inference).
pub(crate) struct Identity;

impl Kernel for Identity {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let v = inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| OnnxError::Shape("Identity without an input".into()))?;
        Ok(vec![v.clone()])
    }
}

/// `Constant`: its value attribute.
pub(crate) struct Constant(pub(crate) Tensor);

impl Constant {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        if let Some(t) = a.tensor("value")? {
            return Ok(Self(t));
        }
        let t = if a.has("value_float") {
            Tensor::float(vec![], vec![a.float("value_float", 0.0)])?
        } else if a.has("value_floats") {
            let v = a.floats("value_floats");
            Tensor::float(vec![v.len()], v)?
        } else if a.has("value_int") {
            Tensor::new(vec![], Data::Int64(vec![a.int("value_int", 0)]))?
        } else if a.has("value_ints") {
            let v = a.ints("value_ints");
            Tensor::new(vec![v.len()], Data::Int64(v))?
        } else if a.has("value_string") {
            Tensor::new(vec![], Data::String(vec![a.string("value_string", "")]))?
        } else if a.has("value_strings") {
            let v = a.strings("value_strings");
            Tensor::new(vec![v.len()], Data::String(v))?
        } else {
            return Err(OnnxError::Model("Constant without a value".into()));
        };
        Ok(Self(t))
    }
}

impl Kernel for Constant {
    fn run(&self, _inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        Ok(vec![self.0.clone().into()])
    }
}

/// `Cast` to the `to` type.
pub(crate) struct Cast(pub(crate) ElemType);

/// Converts a tensor's elements to `to`.
pub(crate) fn cast(x: &Tensor, to: ElemType) -> Result<Tensor, OnnxError> {
    if x.elem_type() == to {
        return Ok(x.clone());
    }
    let as_f64: Option<Vec<f64>> = match &x.data {
        Data::Float(v) => Some(v.iter().map(|&v| f64::from(v)).collect()),
        Data::Double(v) => Some(v.clone()),
        Data::Int64(v) => Some(v.iter().map(|&v| v as f64).collect()),
        Data::Int32(v) => Some(v.iter().map(|&v| f64::from(v)).collect()),
        Data::Bool(v) => Some(v.iter().map(|&v| f64::from(u8::from(v))).collect()),
        Data::String(_) => None,
    };
    let data = match (to, as_f64, &x.data) {
        (ElemType::String, _, d) => Data::String(match d {
            Data::Float(v) => v.iter().map(|v| v.to_string()).collect(),
            Data::Double(v) => v.iter().map(|v| v.to_string()).collect(),
            Data::Int64(v) => v.iter().map(|v| v.to_string()).collect(),
            Data::Int32(v) => v.iter().map(|v| v.to_string()).collect(),
            Data::Bool(v) => v.iter().map(|&v| i32::from(v).to_string()).collect(),
            Data::String(v) => v.clone(),
        }),
        (to, None, Data::String(v)) => {
            let parsed = v
                .iter()
                .map(|s| {
                    s.trim().parse::<f64>().map_err(|_| {
                        OnnxError::Shape(format!("cannot cast the string {s:?} to {to}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            return cast(&Tensor::new(x.shape.clone(), Data::Double(parsed))?, to);
        }
        (ElemType::Float, Some(v), _) => Data::Float(v.into_iter().map(|v| v as f32).collect()),
        (ElemType::Double, Some(v), _) => Data::Double(v),
        (ElemType::Int64, Some(v), _) => Data::Int64(v.into_iter().map(|v| v as i64).collect()),
        (ElemType::Int32, Some(v), _) => Data::Int32(v.into_iter().map(|v| v as i32).collect()),
        (ElemType::Bool, Some(v), _) => Data::Bool(v.into_iter().map(|v| v != 0.0).collect()),
        (to, _, _) => {
            return Err(OnnxError::Shape(format!("Cast to {to} is not supported")));
        }
    };
    Tensor::new(x.shape.clone(), data)
}

impl Kernel for Cast {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        Ok(vec![cast(input(inputs, 0)?, self.0)?.into()])
    }
}

fn reshaped(x: &Tensor, shape: Vec<usize>) -> Result<Vec<Value>, OnnxError> {
    Ok(vec![Tensor::new(shape, x.data.clone())?.into()])
}

/// `Reshape`: 0 keeps a dimension (unless `allowzero`), -1 takes what is left.
pub(crate) struct Reshape {
    pub(crate) allow_zero: bool,
}

impl Kernel for Reshape {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let spec = input(inputs, 1)?.to_i64()?;
        let mut shape = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            shape.push(match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                0 if !self.allow_zero => *x.shape.get(i).ok_or_else(|| {
                    OnnxError::Shape(format!("Reshape copies dimension {i} of {:?}", x.shape))
                })?,
                d => usize::try_from(d)
                    .map_err(|_| OnnxError::Shape(format!("Reshape to {spec:?}")))?,
            });
        }
        if let Some(i) = infer {
            let known: usize = shape.iter().product();
            if known == 0 || x.len() % known != 0 {
                return Err(OnnxError::Shape(format!(
                    "cannot reshape {:?} to {spec:?}",
                    x.shape
                )));
            }
            shape[i] = x.len() / known;
        }
        reshaped(x, shape)
    }
}

/// `Flatten`: `[prod(shape[..axis]), prod(shape[axis..])]`.
pub(crate) struct Flatten(pub(crate) i64);

impl Kernel for Flatten {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let rank = x.shape.len();
        let a = if self.0 < 0 {
            self.0 + rank as i64
        } else {
            self.0
        };
        let a = usize::try_from(a)
            .ok()
            .filter(|&a| a <= rank)
            .ok_or_else(|| OnnxError::Shape(format!("Flatten axis {} for rank {rank}", self.0)))?;
        let outer: usize = x.shape[..a].iter().product();
        let inner: usize = x.shape[a..].iter().product();
        reshaped(x, vec![outer, inner])
    }
}

/// `Unsqueeze`: axes from the attribute (operator set < 13) or the second input.
pub(crate) struct Unsqueeze(pub(crate) Option<Vec<i64>>);

impl Kernel for Unsqueeze {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let axes = ints_from(inputs, 1, &self.0)?
            .ok_or_else(|| OnnxError::Shape("Unsqueeze without axes".into()))?;
        let rank = x.shape.len() + axes.len();
        let mut at = axes
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<Vec<_>, _>>()?;
        at.sort_unstable();
        let mut shape = x.shape.clone();
        for a in at {
            shape.insert(a.min(shape.len()), 1);
        }
        reshaped(x, shape)
    }
}

/// `Squeeze`: drops the given axes of size 1, or every axis of size 1.
pub(crate) struct Squeeze(pub(crate) Option<Vec<i64>>);

impl Kernel for Squeeze {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let rank = x.shape.len();
        let drop: Vec<usize> = match ints_from(inputs, 1, &self.0)? {
            Some(axes) if !axes.is_empty() => axes
                .iter()
                .map(|&a| axis(a, rank))
                .collect::<Result<Vec<_>, _>>()?,
            _ => (0..rank).filter(|&d| x.shape[d] == 1).collect(),
        };
        if let Some(&d) = drop.iter().find(|&&d| x.shape[d] != 1) {
            return Err(OnnxError::Shape(format!(
                "Squeeze of axis {d} of size {}",
                x.shape[d]
            )));
        }
        let shape = (0..rank)
            .filter(|d| !drop.contains(d))
            .map(|d| x.shape[d])
            .collect();
        reshaped(x, shape)
    }
}

/// `Concat` along an axis.
pub(crate) struct Concat(pub(crate) i64);

impl Kernel for Concat {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let parts = (0..inputs.len())
            .map(|i| input(inputs, i))
            .collect::<Result<Vec<_>, _>>()?;
        let first = parts
            .first()
            .ok_or_else(|| OnnxError::Shape("Concat of nothing".into()))?;
        let rank = first.shape.len();
        let ax = axis(self.0, rank)?;
        for p in &parts {
            let same = p.shape.len() == rank
                && (0..rank).all(|d| d == ax || p.shape[d] == first.shape[d])
                && p.elem_type() == first.elem_type();
            if !same {
                return Err(OnnxError::Shape(format!(
                    "Concat of {:?} and {:?} along axis {ax}",
                    first.shape, p.shape
                )));
            }
        }
        let outer: usize = first.shape[..ax].iter().product();
        let total: usize = parts.iter().map(|p| p.shape[ax]).sum();
        let mut shape = first.shape.clone();
        shape[ax] = total;
        let mut out = first.data.empty_like(shape.iter().product());
        for o in 0..outer {
            for p in &parts {
                let chunk: usize = p.shape[ax..].iter().product();
                out.extend_from(&p.data, o * chunk..(o + 1) * chunk);
            }
        }
        Ok(vec![Tensor::new(shape, out)?.into()])
    }
}

/// `Shape`, with the `start` and `end` of operator set 15.
pub(crate) struct ShapeOf {
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
}

impl Kernel for ShapeOf {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let rank = x.shape.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let (s, e) = (clamp(self.start), clamp(self.end.unwrap_or(rank)));
        let dims: Vec<i64> = x.shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
        Ok(vec![
            Tensor::new(vec![dims.len()], Data::Int64(dims))?.into(),
        ])
    }
}

/// The elements of `x` at the cartesian product of per-axis index lists, row-major.
fn take(x: &Tensor, picks: &[Vec<usize>]) -> Result<Tensor, OnnxError> {
    let shape: Vec<usize> = picks.iter().map(Vec::len).collect();
    let total: usize = shape.iter().product();
    let mut strides = vec![1usize; x.shape.len()];
    for d in (0..x.shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * x.shape[d + 1];
    }
    let mut flat = Vec::with_capacity(total);
    if total > 0 {
        let mut counter = vec![0usize; shape.len()];
        'outer: loop {
            flat.push(
                counter
                    .iter()
                    .enumerate()
                    .map(|(d, &c)| picks[d][c] * strides[d])
                    .sum(),
            );
            for d in (0..shape.len()).rev() {
                counter[d] += 1;
                if counter[d] < shape[d] {
                    continue 'outer;
                }
                counter[d] = 0;
            }
            break;
        }
    }
    Tensor::new(shape, x.data.gather(flat.into_iter()))
}

/// `Gather` along an axis (negative indices count from the end).
pub(crate) struct Gather(pub(crate) i64);

impl Kernel for Gather {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let idx_t = input(inputs, 1)?;
        let idx = idx_t.to_i64()?;
        let ax = axis(self.0, x.shape.len())?;
        let n = x.shape[ax] as i64;
        let rows = idx
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n } else { i };
                usize::try_from(j)
                    .ok()
                    .filter(|&j| (j as i64) < n)
                    .ok_or_else(|| OnnxError::Shape(format!("Gather index {i} out of range {n}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut picks: Vec<Vec<usize>> = x.shape.iter().map(|&d| (0..d).collect()).collect();
        picks[ax] = rows;
        let t = take(x, &picks)?;
        let mut shape = x.shape[..ax].to_vec();
        shape.extend_from_slice(&idx_t.shape);
        shape.extend_from_slice(&x.shape[ax + 1..]);
        reshaped(&t, shape)
    }
}

/// `Slice`: starts, ends, axes and steps from attributes (operator set < 10) or inputs.
pub(crate) struct Slice {
    pub(crate) starts: Option<Vec<i64>>,
    pub(crate) ends: Option<Vec<i64>>,
    pub(crate) axes: Option<Vec<i64>>,
}

impl Kernel for Slice {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let rank = x.shape.len();
        let starts = ints_from(inputs, 1, &self.starts)?.unwrap_or_default();
        let ends = ints_from(inputs, 2, &self.ends)?.unwrap_or_default();
        let axes =
            ints_from(inputs, 3, &self.axes)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = ints_from(inputs, 4, &None)?.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(OnnxError::Shape(
                "Slice with lists of different lengths".into(),
            ));
        }
        let mut picks: Vec<Vec<usize>> = x.shape.iter().map(|&d| (0..d).collect()).collect();
        for k in 0..starts.len() {
            let d = axis(axes[k], rank)?;
            let n = x.shape[d] as i64;
            let step = steps[k];
            if step == 0 {
                return Err(OnnxError::Shape("Slice step 0".into()));
            }
            let norm = |v: i64| if v < 0 { v + n } else { v };
            let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
            let (s, e) = (norm(starts[k]).clamp(lo, hi), norm(ends[k]).clamp(lo, hi));
            let mut v = Vec::new();
            let mut i = s;
            while (step > 0 && i < e) || (step < 0 && i > e) {
                v.push(i as usize);
                i += step;
            }
            picks[d] = v;
        }
        Ok(vec![take(x, &picks)?.into()])
    }
}

/// `Transpose` by a permutation (reversed axes by default).
pub(crate) struct Transpose(pub(crate) Option<Vec<i64>>);

impl Kernel for Transpose {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let rank = x.shape.len();
        let perm: Vec<usize> = match &self.0 {
            Some(p) => p.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
            None => (0..rank).rev().collect(),
        };
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..rank).collect::<Vec<_>>() {
            return Err(OnnxError::Shape(format!("Transpose by {perm:?}")));
        }
        let mut strides = vec![1usize; rank];
        for d in (0..rank.saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * x.shape[d + 1];
        }
        let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
        let total = x.len();
        let mut flat = Vec::with_capacity(total);
        let mut counter = vec![0usize; rank];
        for _ in 0..total {
            flat.push(
                counter
                    .iter()
                    .enumerate()
                    .map(|(d, &c)| c * strides[perm[d]])
                    .sum(),
            );
            for d in (0..rank).rev() {
                counter[d] += 1;
                if counter[d] < shape[d] {
                    break;
                }
                counter[d] = 0;
            }
        }
        Ok(vec![
            Tensor::new(shape, x.data.gather(flat.into_iter()))?.into(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(k: &dyn Kernel, inputs: &[&Tensor]) -> Tensor {
        let values: Vec<Value> = inputs.iter().map(|t| (*t).clone().into()).collect();
        let refs: Vec<Option<&Value>> = values.iter().map(Some).collect();
        k.run(&refs).unwrap().remove(0).into_tensor().unwrap()
    }

    #[test]
    fn transpose_slice_and_gather_move_the_right_elements() {
        let x = Tensor::float(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let t = run(&Transpose(None), &[&x]);
        assert_eq!(t.shape, vec![3, 2]);
        assert_eq!(t.data, Data::Float(vec![1., 4., 2., 5., 3., 6.]));
        let starts = Tensor::new(vec![1], Data::Int64(vec![1])).unwrap();
        let ends = Tensor::new(vec![1], Data::Int64(vec![i64::MAX])).unwrap();
        let axes = Tensor::new(vec![1], Data::Int64(vec![1])).unwrap();
        let slice = Slice {
            starts: None,
            ends: None,
            axes: None,
        };
        let s = run(&slice, &[&x, &starts, &ends, &axes]);
        assert_eq!(s.data, Data::Float(vec![2., 3., 5., 6.]));
        let idx = Tensor::new(vec![1], Data::Int64(vec![-1])).unwrap();
        let g = run(&Gather(1), &[&x, &idx]);
        assert_eq!(g.shape, vec![2, 1]);
        assert_eq!(g.data, Data::Float(vec![3., 6.]));
    }

    #[test]
    fn concat_and_reshape_keep_row_major_order() {
        let a = Tensor::float(vec![2, 1], vec![1., 2.]).unwrap();
        let b = Tensor::float(vec![2, 2], vec![3., 4., 5., 6.]).unwrap();
        let c = run(&Concat(1), &[&a, &b]);
        assert_eq!(c.data, Data::Float(vec![1., 3., 4., 2., 5., 6.]));
        let spec = Tensor::new(vec![2], Data::Int64(vec![-1, 2])).unwrap();
        let r = run(&Reshape { allow_zero: false }, &[&c, &spec]);
        assert_eq!(r.shape, vec![3, 2]);
    }
}
