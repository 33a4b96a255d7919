//! `MatMul` (with broadcast batch dimensions) and `Gemm`.

use super::elementwise::{broadcast_indices, broadcast_shape};
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::tensor::{Data, ElemType, Tensor, Value};

/// `c[m, n] += a[m, k] · b[k, n]` on row-major slices.
fn gemm_into<T>(a: &[T], b: &[T], c: &mut [T], m: usize, k: usize, n: usize)
where
    T: Copy + std::ops::Mul<Output = T> + std::ops::AddAssign,
{
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let av = a[i * k + p];
            let brow = &b[p * n..(p + 1) * n];
            for (cv, &bv) in row.iter_mut().zip(brow) {
                *cv += av * bv;
            }
        }
    }
}

/// Floats of a pair of tensors of one type, as f32 or f64.
enum Pair<'a> {
    F32(&'a [f32], &'a [f32]),
    F64(&'a [f64], &'a [f64]),
}

fn pair<'a>(a: &'a Tensor, b: &'a Tensor) -> Result<Pair<'a>, OnnxError> {
    match (&a.data, &b.data) {
        (Data::Float(x), Data::Float(y)) => Ok(Pair::F32(x, y)),
        (Data::Double(x), Data::Double(y)) => Ok(Pair::F64(x, y)),
        (x, y) => Err(OnnxError::Shape(format!(
            "matrix product of a {} and a {} tensor",
            x.elem_type(),
            y.elem_type()
        ))),
    }
}

/// `MatMul`, numpy's `matmul`.
pub(crate) struct MatMul;

impl Kernel for MatMul {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        let mut sa = a.shape.clone();
        let mut sb = b.shape.clone();
        let (a_vec, b_vec) = (sa.len() == 1, sb.len() == 1);
        if a_vec {
            sa.insert(0, 1);
        }
        if b_vec {
            sb.push(1);
        }
        if sa.len() < 2 || sb.len() < 2 {
            return Err(OnnxError::Shape("MatMul of scalars".into()));
        }
        let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
        if k != k2 {
            return Err(OnnxError::Shape(format!(
                "MatMul of {:?} and {:?}",
                a.shape, b.shape
            )));
        }
        let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        let batch = broadcast_shape(ba, bb)?;
        let (ia, ib) = (broadcast_indices(ba, &batch), broadcast_indices(bb, &batch));
        let count: usize = batch.iter().product();
        let data = match pair(a, b)? {
            Pair::F32(x, y) => {
                let mut out = vec![0.0f32; count * m * n];
                for (t, (i, j)) in ia.iter().zip(&ib).enumerate() {
                    gemm_into(
                        &x[i * m * k..(i + 1) * m * k],
                        &y[j * k * n..(j + 1) * k * n],
                        &mut out[t * m * n..(t + 1) * m * n],
                        m,
                        k,
                        n,
                    );
                }
                Data::Float(out)
            }
            Pair::F64(x, y) => {
                let mut out = vec![0.0f64; count * m * n];
                for (t, (i, j)) in ia.iter().zip(&ib).enumerate() {
                    gemm_into(
                        &x[i * m * k..(i + 1) * m * k],
                        &y[j * k * n..(j + 1) * k * n],
                        &mut out[t * m * n..(t + 1) * m * n],
                        m,
                        k,
                        n,
                    );
                }
                Data::Double(out)
            }
        };
        let mut shape = batch;
        if !a_vec {
            shape.push(m);
        }
        if !b_vec {
            shape.push(n);
        }
        Ok(vec![Tensor::new(shape, data)?.into()])
    }
}

/// `Gemm`: `alpha · A' · B' + beta · C`.
pub(crate) struct Gemm {
    pub(crate) alpha: f32,
    pub(crate) beta: f32,
    pub(crate) trans_a: bool,
    pub(crate) trans_b: bool,
}

fn transposed<T: Copy>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    for c in 0..cols {
        for r in 0..rows {
            out.push(x[r * cols + c]);
        }
    }
    out
}

impl Kernel for Gemm {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        if a.shape.len() != 2 || b.shape.len() != 2 {
            return Err(OnnxError::Shape(format!(
                "Gemm of {:?} and {:?}",
                a.shape, b.shape
            )));
        }
        let (m, k) = if self.trans_a {
            (a.shape[1], a.shape[0])
        } else {
            (a.shape[0], a.shape[1])
        };
        let (k2, n) = if self.trans_b {
            (b.shape[1], b.shape[0])
        } else {
            (b.shape[0], b.shape[1])
        };
        if k != k2 {
            return Err(OnnxError::Shape(format!(
                "Gemm of {:?} and {:?}",
                a.shape, b.shape
            )));
        }
        let c = inputs
            .get(2)
            .copied()
            .flatten()
            .map(|v| v.tensor())
            .transpose()?;
        let c_idx = c.map(|c| broadcast_indices(&c.shape, &[m, n]));
        if let Some(c) = c {
            broadcast_shape(&c.shape, &[m, n])?;
        }
        let (a32, b32) = (a.to_f32()?, b.to_f32()?);
        let av = if self.trans_a {
            transposed(&a32, a.shape[0], a.shape[1])
        } else {
            a32.into_owned()
        };
        let bv = if self.trans_b {
            transposed(&b32, b.shape[0], b.shape[1])
        } else {
            b32.into_owned()
        };
        let mut out = vec![0.0f32; m * n];
        gemm_into(&av, &bv, &mut out, m, k, n);
        let cv = c.map(|c| c.to_f32()).transpose()?;
        for (i, o) in out.iter_mut().enumerate() {
            *o *= self.alpha;
            if let (Some(cv), Some(idx)) = (&cv, &c_idx) {
                *o += self.beta * cv[idx[i]];
            }
        }
        let out = Tensor::float(vec![m, n], out)?;
        let out = match a.elem_type() {
            ElemType::Double => super::shape::cast(&out, ElemType::Double)?,
            _ => out,
        };
        Ok(vec![out.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_and_gemm_multiply_matrices() {
        let a = Tensor::float(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let b = Tensor::float(vec![3, 1], vec![1., 0., -1.]).unwrap();
        let (va, vb) = (Value::from(a.clone()), Value::from(b));
        let out = MatMul.run(&[Some(&va), Some(&vb)]).unwrap();
        assert_eq!(out[0].tensor().unwrap().data, Data::Float(vec![-2., -2.]));
        let c = Value::from(Tensor::float(vec![1], vec![10.]).unwrap());
        let gemm = Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        };
        let bt = Value::from(Tensor::float(vec![1, 3], vec![1., 0., -1.]).unwrap());
        let out = gemm.run(&[Some(&va), Some(&bt), Some(&c)]).unwrap();
        assert_eq!(out[0].tensor().unwrap().data, Data::Float(vec![8., 8.]));
    }
}
