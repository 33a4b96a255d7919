//! Growing one tree on binned features.
//!
//! Every row carries `k` gradient values and one hessian (a weight); a node's score is
//! `sum_j G_j^2 / (H + l2)` over its sums `G`, `H`, and a split's gain is the children's scores
//! less the parent's. That single rule is scikit-learn's criteria in three costumes: with
//! one-hot class indicators as gradients and a weight of 1 it is the Gini impurity decrease,
//! with the target as gradient it is the squared-error (variance) decrease, and with the loss
//! gradients and hessians of boosting it is the second-order gain of gradient boosting.
//!
//! Nodes are split best-gain first, so `max_leaf_nodes` keeps the best splits, and without it
//! the tree is the same as depth-first growing would give. Each node's histogram (sums per
//! bin) is built from its rows, or, when every feature is examined, the larger child's is the
//! parent's less the smaller child's. Ties keep the first feature and the lowest bin, so a
//! tree depends only on its data, specification and seed.

use rayon::prelude::*;

use super::Node;
use super::bins::Binned;
use crate::rng::Rng;

/// Rows a node needs for its histogram to be built on several threads.
const PARALLEL_ROWS: usize = 4096;

/// How far a tree grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrowSpec {
    /// Deepest level (the root is level 0); 0 for no limit.
    pub max_depth: usize,
    /// Most leaves; 0 for no limit.
    pub max_leaf_nodes: usize,
    /// Fewest rows in a node that is split.
    pub min_samples_split: usize,
    /// Fewest rows in a leaf.
    pub min_samples_leaf: usize,
    /// Smallest hessian sum in a leaf.
    pub min_hessian: f64,
    /// L2 regularisation of leaf values.
    pub l2: f64,
    /// Features examined per node, drawn at random when fewer than all.
    pub max_features: usize,
    /// Whether to build histograms on several threads.
    pub parallel: bool,
}

/// Per-row statistics.
#[derive(Debug, Clone, Copy)]
pub struct Stats<'a> {
    /// Gradient values per row.
    pub k: usize,
    /// `k` values per row, row after row.
    pub grad: &'a [f64],
    /// One hessian (weight) per row.
    pub hess: &'a [f64],
}

/// A grown tree.
#[derive(Debug, Clone)]
pub struct Grown {
    /// Its nodes, the root first.
    pub nodes: Vec<Node>,
    /// The feature and gain of every split.
    pub gains: Vec<(usize, f64)>,
    /// Each leaf's node index with the rows that reached it.
    pub leaves: Vec<(usize, Vec<u32>)>,
}

/// A split worth making.
#[derive(Debug, Clone)]
struct Candidate {
    gain: f64,
    feature: usize,
    bin: u8,
    /// The left child's sums (`k` gradients, hessian, rows).
    left: Vec<f64>,
}

/// A leaf that may still be split.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    sums: Vec<f64>,
    hist: Option<Vec<f64>>,
    best: Option<Candidate>,
}

/// Where each feature's bins sit in a histogram.
struct Layout {
    offsets: Vec<usize>,
    total: usize,
    stride: usize,
}

impl Layout {
    fn new(binned: &Binned, k: usize) -> Layout {
        let mut offsets = Vec::with_capacity(binned.features());
        let mut total = 0;
        for f in 0..binned.features() {
            offsets.push(total);
            total += binned.bins(f);
        }
        Layout {
            offsets,
            total,
            stride: k + 2,
        }
    }

    fn range(&self, binned: &Binned, f: usize) -> std::ops::Range<usize> {
        self.offsets[f] * self.stride..(self.offsets[f] + binned.bins(f)) * self.stride
    }
}

struct Grower<'a> {
    binned: &'a Binned,
    stats: Stats<'a>,
    spec: GrowSpec,
    layout: Layout,
    rows: Vec<u32>,
    subtract: bool,
}

/// Grows one tree on `rows` (distinct row indices, ascending) of `binned`; `leaf` turns a leaf's sums
/// (gradients, hessian) into its value.
pub fn grow(
    binned: &Binned,
    stats: Stats,
    rows: Vec<u32>,
    spec: GrowSpec,
    rng: &mut Rng,
    leaf: &dyn Fn(&[f64], f64) -> Vec<f64>,
) -> Grown {
    let k = stats.k;
    let subtract = spec.max_features >= binned.features();
    let mut g = Grower {
        binned,
        stats,
        spec,
        layout: Layout::new(binned, k),
        rows,
        subtract,
    };
    let n = g.rows.len();
    let sums = g.sums(0, n);
    let mut nodes = vec![Node::Leaf {
        value: leaf(&sums[..k], sums[k]),
    }];
    let mut gains = Vec::new();
    let mut root = Open {
        node: 0,
        start: 0,
        end: n,
        depth: 0,
        sums,
        hist: None,
        best: None,
    };
    if g.splittable(&root) {
        if g.subtract {
            root.hist = Some(g.histogram(0, n, Vec::new()));
        }
        root.best = g.best_split(&root, rng);
    }
    let mut open = vec![root];
    let mut closed: Vec<Open> = Vec::new();
    // Histograms of nodes no longer split, to fill again.
    let mut spare: Vec<Vec<f64>> = Vec::new();
    loop {
        let pick = open
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.best.as_ref().map(|b| (i, b.gain, o.node)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)));
        let Some((i, _, _)) = pick else { break };
        if spec.max_leaf_nodes > 0 && open.len() + closed.len() >= spec.max_leaf_nodes {
            break;
        }
        let mut parent = open.swap_remove(i);
        let Some(best) = parent.best.take() else {
            break;
        };
        let mid = g.partition(parent.start, parent.end, best.feature, best.bin);
        let right_sums: Vec<f64> = parent
            .sums
            .iter()
            .zip(&best.left)
            .map(|(p, l)| p - l)
            .collect();
        let (left, right) = (nodes.len(), nodes.len() + 1);
        nodes[parent.node] = Node::Split {
            feature: best.feature,
            threshold: binned.edges[best.feature][usize::from(best.bin)],
            left,
            right,
        };
        gains.push((best.feature, best.gain));
        let mut children = [
            Open {
                node: left,
                start: parent.start,
                end: mid,
                depth: parent.depth + 1,
                sums: best.left,
                hist: None,
                best: None,
            },
            Open {
                node: right,
                start: mid,
                end: parent.end,
                depth: parent.depth + 1,
                sums: right_sums,
                hist: None,
                best: None,
            },
        ];
        for c in &children {
            nodes.push(Node::Leaf {
                value: leaf(&c.sums[..k], c.sums[k]),
            });
        }
        if g.subtract && children.iter().any(|c| g.splittable(c)) {
            let small = usize::from(children[1].end - children[1].start < mid - parent.start);
            let spare_buffer = spare.pop().unwrap_or_default();
            let built = g.histogram(children[small].start, children[small].end, spare_buffer);
            let rest = match parent.hist.take() {
                Some(mut h) => {
                    for (r, s) in h.iter_mut().zip(&built) {
                        *r -= s;
                    }
                    h
                }
                None => {
                    let spare_buffer = spare.pop().unwrap_or_default();
                    g.histogram(
                        children[1 - small].start,
                        children[1 - small].end,
                        spare_buffer,
                    )
                }
            };
            children[small].hist = Some(built);
            children[1 - small].hist = Some(rest);
        }
        for c in &mut children {
            if g.splittable(c) {
                c.best = g.best_split(c, rng);
            }
        }
        for mut c in children {
            if c.best.is_none()
                && let Some(h) = c.hist.take()
            {
                spare.push(h);
            }
            if c.best.is_some() {
                open.push(c);
            } else {
                closed.push(c);
            }
        }
    }
    let mut leaves: Vec<(usize, Vec<u32>)> = open
        .into_iter()
        .chain(closed)
        .map(|o| (o.node, g.rows[o.start..o.end].to_vec()))
        .collect();
    leaves.sort_unstable_by_key(|l| l.0);
    Grown {
        nodes,
        gains,
        leaves,
    }
}

impl Grower<'_> {
    /// Gradient, hessian and row sums of `rows[start..end]`.
    fn sums(&self, start: usize, end: usize) -> Vec<f64> {
        let k = self.stats.k;
        let mut s = vec![0.0; k + 2];
        for &r in &self.rows[start..end] {
            let r = r as usize;
            for (t, g) in s.iter_mut().zip(&self.stats.grad[r * k..(r + 1) * k]) {
                *t += g;
            }
            s[k] += self.stats.hess[r];
        }
        s[k + 1] = (end - start) as f64;
        s
    }

    fn splittable(&self, o: &Open) -> bool {
        let n = o.end - o.start;
        (self.spec.max_depth == 0 || o.depth < self.spec.max_depth)
            && n >= self.spec.min_samples_split.max(2)
            && n >= 2 * self.spec.min_samples_leaf.max(1)
    }

    /// The histogram of every feature over `rows[start..end]`, in `hist` (a used buffer of
    /// the right size, or an empty one).
    fn histogram(&self, start: usize, end: usize, mut hist: Vec<f64>) -> Vec<f64> {
        hist.clear();
        hist.resize(self.layout.total * self.layout.stride, 0.0);
        let rows = &self.rows[start..end];
        // With one gradient, the rows' (gradient, hessian) pairs side by side, read once per
        // feature in row order.
        let ordered: Vec<[f64; 2]> = if self.stats.k == 1 {
            rows.iter()
                .map(|&r| [self.stats.grad[r as usize], self.stats.hess[r as usize]])
                .collect()
        } else {
            Vec::new()
        };
        let mut slices: Vec<(usize, &mut [f64])> = Vec::with_capacity(self.binned.features());
        let mut rest: &mut [f64] = &mut hist;
        for f in 0..self.binned.features() {
            let (mine, tail) = rest.split_at_mut(self.binned.bins(f) * self.layout.stride);
            slices.push((f, mine));
            rest = tail;
        }
        let fill = |(f, out): (usize, &mut [f64])| {
            if ordered.is_empty() {
                self.fill(f, rows, out);
            } else {
                let codes = &self.binned.codes[f];
                let out: &mut [[f64; 3]] = out.as_chunks_mut().0;
                let mut add = |code: u8, gh: &[f64; 2]| {
                    let bin = &mut out[usize::from(code)];
                    bin[0] += gh[0];
                    bin[1] += gh[1];
                    bin[2] += 1.0;
                };
                if rows.len() == codes.len() {
                    // Every row, in order: the codes as they lie.
                    for (&code, gh) in codes.iter().zip(&ordered) {
                        add(code, gh);
                    }
                } else {
                    for (&r, gh) in rows.iter().zip(&ordered) {
                        add(codes[r as usize], gh);
                    }
                }
            }
        };
        let threads = rayon::current_num_threads();
        if self.spec.parallel && threads > 1 && rows.len() >= PARALLEL_ROWS {
            // One group of features per thread: smaller nodes are not worth waking threads for.
            let per = slices.len().div_ceil(threads);
            let mut groups: Vec<Vec<(usize, &mut [f64])>> = Vec::new();
            let mut it = slices.into_iter().peekable();
            while it.peek().is_some() {
                groups.push(it.by_ref().take(per).collect());
            }
            groups
                .into_par_iter()
                .for_each(|group| group.into_iter().for_each(fill));
        } else {
            slices.into_iter().for_each(fill);
        }
        hist
    }

    /// Adds `rows` into feature `f`'s bins `out`.
    fn fill(&self, f: usize, rows: &[u32], out: &mut [f64]) {
        let k = self.stats.k;
        let stride = self.layout.stride;
        let codes = &self.binned.codes[f];
        if k == 1 {
            for &r in rows {
                let r = r as usize;
                let b = usize::from(codes[r]) * 3;
                out[b] += self.stats.grad[r];
                out[b + 1] += self.stats.hess[r];
                out[b + 2] += 1.0;
            }
            return;
        }
        for &r in rows {
            let r = r as usize;
            let b = usize::from(codes[r]) * stride;
            let g = &self.stats.grad[r * k..(r + 1) * k];
            for (o, v) in out[b..b + k].iter_mut().zip(g) {
                *o += v;
            }
            out[b + k] += self.stats.hess[r];
            out[b + k + 1] += 1.0;
        }
    }

    fn score(&self, s: &[f64]) -> f64 {
        let k = self.stats.k;
        let h = s[k] + self.spec.l2;
        if h <= 0.0 {
            return 0.0;
        }
        s[..k].iter().map(|g| g * g).sum::<f64>() / h
    }

    /// The best split of node `o`, if any split is allowed and gains.
    fn best_split(&self, o: &Open, rng: &mut Rng) -> Option<Candidate> {
        let nf = self.binned.features();
        let parent = self.score(&o.sums);
        // Gains below this are rounding noise, not a split.
        let floor = 1e-10 * parent.abs().max(1e-300);
        if let Some(hist) = &o.hist
            && self.spec.parallel
            && rayon::current_num_threads() > 1
        {
            // Every feature from its histogram, in groups on the pool's threads; the most gain
            // wins and ties go to the lower feature, as in the loop below, whatever the grouping.
            let per = nf.div_ceil(rayon::current_num_threads());
            return (0..nf)
                .into_par_iter()
                .with_min_len(per.max(1))
                .filter_map(|f| {
                    self.best_in(f, &hist[self.layout.range(self.binned, f)], &o.sums, parent)
                        .filter(|c| c.gain > floor)
                })
                .reduce_with(|a, b| {
                    if b.gain > a.gain || (b.gain == a.gain && b.feature < a.feature) {
                        b
                    } else {
                        a
                    }
                });
        }
        let mut order: Vec<usize> = (0..nf).collect();
        if !self.subtract {
            rng.shuffle(&mut order);
        }
        let mut best: Option<Candidate> = None;
        let mut scratch = Vec::new();
        for (examined, &f) in order.iter().enumerate() {
            if examined >= self.spec.max_features && best.is_some() {
                break;
            }
            let hist: &[f64] = match &o.hist {
                Some(h) => &h[self.layout.range(self.binned, f)],
                None => {
                    scratch.clear();
                    scratch.resize(self.binned.bins(f) * self.layout.stride, 0.0);
                    self.fill(f, &self.rows[o.start..o.end], &mut scratch);
                    &scratch
                }
            };
            if let Some(c) = self.best_in(f, hist, &o.sums, parent)
                && c.gain > floor
                && best.as_ref().is_none_or(|b| c.gain > b.gain)
            {
                best = Some(c);
            }
        }
        best
    }

    /// The best split of feature `f` given its histogram.
    fn best_in(&self, f: usize, hist: &[f64], total: &[f64], parent: f64) -> Option<Candidate> {
        let k = self.stats.k;
        let stride = self.layout.stride;
        let bins = hist.len() / stride;
        let min_leaf = self.spec.min_samples_leaf.max(1) as f64;
        if k == 1 {
            return self.best_in_one(f, hist, total, parent, min_leaf);
        }
        let mut left = vec![0.0; stride];
        let mut right = vec![0.0; stride];
        let mut best: Option<(f64, usize)> = None;
        let mut best_left = Vec::new();
        for b in 0..bins.saturating_sub(1) {
            for (l, h) in left.iter_mut().zip(&hist[b * stride..(b + 1) * stride]) {
                *l += h;
            }
            if left[k + 1] < min_leaf || left[k] < self.spec.min_hessian {
                continue;
            }
            for ((r, t), l) in right.iter_mut().zip(total).zip(&left) {
                *r = t - l;
            }
            if right[k + 1] < min_leaf {
                break;
            }
            if right[k] < self.spec.min_hessian {
                continue;
            }
            let gain = self.score(&left) + self.score(&right) - parent;
            if best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, b));
                best_left.clone_from(&left);
            }
        }
        best.map(|(gain, bin)| Candidate {
            gain,
            feature: f,
            bin: bin as u8,
            left: best_left,
        })
    }

    /// [`Grower::best_in`] for one gradient, on plain numbers.
    fn best_in_one(
        &self,
        f: usize,
        hist: &[f64],
        total: &[f64],
        parent: f64,
        min_leaf: f64,
    ) -> Option<Candidate> {
        let (l2, min_hessian) = (self.spec.l2, self.spec.min_hessian);
        let (gt, ht, ct) = (total[0], total[1], total[2]);
        let (mut gl, mut hl, mut cl) = (0.0, 0.0, 0.0);
        let mut best: Option<(f64, usize, [f64; 3])> = None;
        for (b, bin) in hist.chunks_exact(3).enumerate().take(hist.len() / 3 - 1) {
            if bin[2] == 0.0 {
                continue;
            }
            gl += bin[0];
            hl += bin[1];
            cl += bin[2];
            if cl < min_leaf || hl < min_hessian {
                continue;
            }
            let (gr, hr, cr) = (gt - gl, ht - hl, ct - cl);
            if cr < min_leaf {
                break;
            }
            if hr < min_hessian || hl + l2 <= 0.0 || hr + l2 <= 0.0 {
                continue;
            }
            let gain = gl * gl / (hl + l2) + gr * gr / (hr + l2) - parent;
            if best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, b, [gl, hl, cl]));
            }
        }
        best.map(|(gain, bin, left)| Candidate {
            gain,
            feature: f,
            bin: bin as u8,
            left: left.to_vec(),
        })
    }

    /// Puts the rows of `rows[start..end]` whose bin of `f` is at most `bin` first, both
    /// parts in their former order; returns where the second begins.
    fn partition(&mut self, start: usize, end: usize, f: usize, bin: u8) -> usize {
        let codes = &self.binned.codes[f];
        let mut right = Vec::new();
        let mut w = start;
        for i in start..end {
            let r = self.rows[i];
            if codes[r as usize] <= bin {
                self.rows[w] = r;
                w += 1;
            } else {
                right.push(r);
            }
        }
        self.rows[w..end].copy_from_slice(&right);
        w
    }
}
