//! Element-wise operators with numpy-style broadcasting: arithmetic, comparisons, logic and
//! unary functions.

use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::tensor::{Data, Tensor, Value};

/// The shape two shapes broadcast to.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, OnnxError> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(OnnxError::Shape(format!(
                    "shapes {a:?} and {b:?} do not broadcast"
                )));
            }
        };
    }
    Ok(out)
}

/// For each element of `out`, the index of the element of a tensor of shape `shape` that
/// broadcasts to it.
pub(crate) fn broadcast_indices(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let total: usize = out.iter().product();
    if shape == out {
        return (0..total).collect();
    }
    let offset = out.len() - shape.len();
    let mut strides = vec![0usize; out.len()];
    let mut stride = 1;
    for i in (0..shape.len()).rev() {
        strides[i + offset] = if shape[i] == 1 { 0 } else { stride };
        stride *= shape[i];
    }
    let mut indices = Vec::with_capacity(total);
    let mut counter = vec![0usize; out.len()];
    let mut at = 0usize;
    for _ in 0..total {
        indices.push(at);
        for d in (0..out.len()).rev() {
            counter[d] += 1;
            at += strides[d];
            if counter[d] < out[d] {
                break;
            }
            at -= strides[d] * counter[d];
            counter[d] = 0;
        }
    }
    indices
}

/// Applies `f` to the broadcast pairs of `a` and `b`.
fn zip_broadcast<T: Copy, U>(
    a: &[T],
    sa: &[usize],
    b: &[T],
    sb: &[usize],
    f: impl Fn(T, T) -> U,
) -> Result<(Vec<usize>, Vec<U>), OnnxError> {
    let shape = broadcast_shape(sa, sb)?;
    if sa == sb {
        return Ok((shape, a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()));
    }
    if b.len() == 1 {
        let y = b[0];
        let out = broadcast_indices(sa, &shape)
            .into_iter()
            .map(|i| f(a[i], y))
            .collect();
        return Ok((shape, out));
    }
    let ia = broadcast_indices(sa, &shape);
    let ib = broadcast_indices(sb, &shape);
    Ok((
        shape,
        ia.into_iter().zip(ib).map(|(i, j)| f(a[i], b[j])).collect(),
    ))
}

/// A binary arithmetic operator.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
}

impl Arith {
    fn f64(self, a: f64, b: f64) -> f64 {
        match self {
            Self::Add => a + b,
            Self::Sub => a - b,
            Self::Mul => a * b,
            Self::Div => a / b,
            Self::Pow => a.powf(b),
            Self::Max => a.max(b),
            Self::Min => a.min(b),
        }
    }

    fn f32(self, a: f32, b: f32) -> f32 {
        match self {
            Self::Add => a + b,
            Self::Sub => a - b,
            Self::Mul => a * b,
            Self::Div => a / b,
            Self::Pow => a.powf(b),
            Self::Max => a.max(b),
            Self::Min => a.min(b),
        }
    }

    fn i64(self, a: i64, b: i64) -> Result<i64, OnnxError> {
        Ok(match self {
            Self::Add => a.wrapping_add(b),
            Self::Sub => a.wrapping_sub(b),
            Self::Mul => a.wrapping_mul(b),
            Self::Div => a
                .checked_div(b)
                .ok_or_else(|| OnnxError::Shape("integer division by zero".into()))?,
            Self::Pow => a.wrapping_pow(u32::try_from(b).unwrap_or(0)),
            Self::Max => a.max(b),
            Self::Min => a.min(b),
        })
    }

    /// `a op b`, broadcasting.
    pub(crate) fn apply(self, a: &Tensor, b: &Tensor) -> Result<Tensor, OnnxError> {
        let (sa, sb) = (&a.shape, &b.shape);
        let (shape, data) = match (&a.data, &b.data) {
            (Data::Float(x), Data::Float(y)) => {
                let (s, v) = zip_broadcast(x, sa, y, sb, |p, q| self.f32(p, q))?;
                (s, Data::Float(v))
            }
            (Data::Float(x), Data::Double(_) | Data::Int64(_) | Data::Int32(_))
                if matches!(self, Self::Pow) =>
            {
                let y = b.to_f32()?;
                let (s, v) = zip_broadcast(x, sa, &y, sb, |p, q| self.f32(p, q))?;
                (s, Data::Float(v))
            }
            (Data::Double(x), Data::Double(y)) => {
                let (s, v) = zip_broadcast(x, sa, y, sb, |p, q| self.f64(p, q))?;
                (s, Data::Double(v))
            }
            (Data::Int64(x), Data::Int64(y)) => {
                let (s, v) = zip_broadcast(x, sa, y, sb, |p, q| self.i64(p, q))?;
                (s, Data::Int64(v.into_iter().collect::<Result<_, _>>()?))
            }
            (Data::Int32(x), Data::Int32(y)) => {
                let (s, v) = zip_broadcast(x, sa, y, sb, |p, q| {
                    self.i64(i64::from(p), i64::from(q)).map(|r| r as i32)
                })?;
                (s, Data::Int32(v.into_iter().collect::<Result<_, _>>()?))
            }
            (x, y) => {
                return Err(OnnxError::Shape(format!(
                    "{self:?} of a {} and a {} tensor",
                    x.elem_type(),
                    y.elem_type()
                )));
            }
        };
        Tensor::new(shape, data)
    }
}

/// `Add`, `Sub`, `Mul`, `Div`, `Pow`, and the variadic `Max`, `Min`, `Sum`.
pub(crate) struct Binary(pub(crate) Arith);

impl Kernel for Binary {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let mut acc = input(inputs, 0)?.clone();
        for i in 1..inputs.len() {
            acc = self.0.apply(&acc, input(inputs, i)?)?;
        }
        Ok(vec![acc.into()])
    }
}

/// A comparison or logical operator (boolean result).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
}

impl Compare {
    fn test<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Self::Equal => a == b,
            Self::Less => a < b,
            Self::LessOrEqual => a <= b,
            Self::Greater => a > b,
            Self::GreaterOrEqual => a >= b,
            Self::And | Self::Or | Self::Xor => false,
        }
    }
}

impl Kernel for Compare {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        let (sa, sb) = (&a.shape, &b.shape);
        let (shape, out) = match (&a.data, &b.data) {
            (Data::Bool(x), Data::Bool(y)) => zip_broadcast(x, sa, y, sb, |p, q| match self {
                Self::And => p && q,
                Self::Or => p || q,
                Self::Xor => p != q,
                _ => self.test(p, q),
            })?,
            (Data::Float(x), Data::Float(y)) => {
                zip_broadcast(x, sa, y, sb, |p, q| self.test(p, q))?
            }
            (Data::Double(x), Data::Double(y)) => {
                zip_broadcast(x, sa, y, sb, |p, q| self.test(p, q))?
            }
            (Data::Int64(x), Data::Int64(y)) => {
                zip_broadcast(x, sa, y, sb, |p, q| self.test(p, q))?
            }
            (Data::Int32(x), Data::Int32(y)) => {
                zip_broadcast(x, sa, y, sb, |p, q| self.test(p, q))?
            }
            (Data::String(x), Data::String(y)) if matches!(self, Self::Equal) => {
                let shape = broadcast_shape(sa, sb)?;
                let (ia, ib) = (broadcast_indices(sa, &shape), broadcast_indices(sb, &shape));
                let out = ia.into_iter().zip(ib).map(|(i, j)| x[i] == y[j]).collect();
                (shape, out)
            }
            (x, y) => {
                return Err(OnnxError::Shape(format!(
                    "{self:?} of a {} and a {} tensor",
                    x.elem_type(),
                    y.elem_type()
                )));
            }
        };
        Ok(vec![Tensor::new(shape, Data::Bool(out))?.into()])
    }
}

/// `Where(condition, x, y)`.
pub(crate) struct Where;

impl Kernel for Where {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let (c, x, y) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let Data::Bool(cond) = &c.data else {
            return Err(OnnxError::Type("a bool condition".into(), c.elem_type()));
        };
        if x.elem_type() != y.elem_type() {
            return Err(OnnxError::Shape("Where of tensors of two types".into()));
        }
        let shape = broadcast_shape(&broadcast_shape(&c.shape, &x.shape)?, &y.shape)?;
        let (ic, ix, iy) = (
            broadcast_indices(&c.shape, &shape),
            broadcast_indices(&x.shape, &shape),
            broadcast_indices(&y.shape, &shape),
        );
        // Gather from x and y, then pick per element.
        let from_x = x.data.gather(ix.into_iter());
        let from_y = y.data.gather(iy.into_iter());
        let mut out = from_x.empty_like(shape.iter().product());
        for (k, &ci) in ic.iter().enumerate() {
            out.extend_from(if cond[ci] { &from_x } else { &from_y }, k..k + 1);
        }
        Ok(vec![Tensor::new(shape, out)?.into()])
    }
}

/// A unary function on floats.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unary {
    Abs,
    Neg,
    Exp,
    Log,
    Sqrt,
    Sigmoid,
    Tanh,
    Relu,
    Reciprocal,
    Floor,
    Ceil,
    Round,
    Erf,
    /// 1, -1 or the value itself (zero, NaN).
    Sign,
}

impl Unary {
    fn f64(self, x: f64) -> f64 {
        match self {
            Self::Abs => x.abs(),
            Self::Neg => -x,
            Self::Exp => x.exp(),
            Self::Log => x.ln(),
            Self::Sqrt => x.sqrt(),
            Self::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Self::Tanh => x.tanh(),
            Self::Relu => x.max(0.0),
            Self::Reciprocal => 1.0 / x,
            Self::Floor => x.floor(),
            Self::Ceil => x.ceil(),
            Self::Round => x.round_ties_even(),
            Self::Erf => erf(x),
            Self::Sign if x > 0.0 => 1.0,
            Self::Sign if x < 0.0 => -1.0,
            Self::Sign => x,
        }
    }
}

/// The error function (Abramowitz and Stegun 7.1.26 refined by one Newton-free series term;
/// absolute error below 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

impl Kernel for Unary {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let data = match &x.data {
            Data::Float(v) => {
                Data::Float(v.iter().map(|&v| self.f64(f64::from(v)) as f32).collect())
            }
            Data::Double(v) => Data::Double(v.iter().map(|&v| self.f64(v)).collect()),
            Data::Int64(v) if matches!(self, Self::Abs | Self::Neg | Self::Relu | Self::Sign) => {
                Data::Int64(
                    v.iter()
                        .map(|&v| match self {
                            Self::Abs => v.wrapping_abs(),
                            Self::Neg => v.wrapping_neg(),
                            Self::Sign => v.signum(),
                            _ => v.max(0),
                        })
                        .collect(),
                )
            }
            other => {
                return Err(OnnxError::Type(
                    format!("a float tensor for {self:?}"),
                    other.elem_type(),
                ));
            }
        };
        Ok(vec![Tensor::new(x.shape.clone(), data)?.into()])
    }
}

/// `Not`.
pub(crate) struct Not;

impl Kernel for Not {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let Data::Bool(v) = &x.data else {
            return Err(OnnxError::Type("a bool tensor".into(), x.elem_type()));
        };
        Ok(vec![
            Tensor::new(x.shape.clone(), Data::Bool(v.iter().map(|b| !b).collect()))?.into(),
        ])
    }
}

/// `Clip`: bounds from attributes (operator set < 11) or from optional inputs.
pub(crate) struct Clip {
    pub(crate) min: Option<f32>,
    pub(crate) max: Option<f32>,
}

impl Kernel for Clip {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let bound = |i: usize, attr: Option<f32>| -> Result<Option<f64>, OnnxError> {
            match inputs.get(i).copied().flatten() {
                Some(v) => Ok(v.tensor()?.to_f32()?.first().map(|&b| f64::from(b))),
                None => Ok(attr.map(f64::from)),
            }
        };
        let (lo, hi) = (bound(1, self.min)?, bound(2, self.max)?);
        let clip = |v: f64| {
            let v = lo.map_or(v, |l| v.max(l));
            hi.map_or(v, |h| v.min(h))
        };
        let data = match &x.data {
            Data::Float(v) => Data::Float(v.iter().map(|&v| clip(f64::from(v)) as f32).collect()),
            Data::Double(v) => Data::Double(v.iter().map(|&v| clip(v)).collect()),
            Data::Int64(v) => Data::Int64(v.iter().map(|&v| clip(v as f64) as i64).collect()),
            other => return Err(OnnxError::Type("a number tensor".into(), other.elem_type())),
        };
        Ok(vec![Tensor::new(x.shape.clone(), data)?.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape(&[2, 3], &[3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast_shape(&[2, 1], &[1, 3]).unwrap(), vec![2, 3]);
        {
            let e = broadcast_shape(&[2, 3], &[2])
                .expect_err("an error")
                .to_string();
            assert!(e.contains("do not broadcast"), "{e}");
        }
        assert_eq!(broadcast_indices(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_indices(&[3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
        let a = Tensor::float(vec![2, 1], vec![1.0, 2.0]).unwrap();
        let b = Tensor::float(vec![3], vec![10.0, 20.0, 30.0]).unwrap();
        let c = Arith::Add.apply(&a, &b).unwrap();
        assert_eq!(c.shape, vec![2, 3]);
        assert_eq!(
            c.data,
            Data::Float(vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0])
        );
    }

    #[test]
    fn erf_is_close_to_its_known_values() {
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 2e-7);
        assert!((erf(-1.0) + 0.842_700_792_9).abs() < 2e-7);
    }
}
